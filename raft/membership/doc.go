// Package membership keeps the list of a cluster's managers as Raft knows
// them (Raft ID, node ID, address), the permanent set of removed Raft IDs,
// and the quorum arithmetic that guards removals.
//
// It is plain data: it does no IO and proposes nothing. The raft package
// changes it only when it applies a configuration change or restores a
// snapshot.
package membership
