// Package membership keeps the list of a cluster's managers as Raft knows
// them (Raft ID, node ID, address, voter or learner), the permanent set of
// removed Raft IDs, and the quorum arithmetic that guards removals,
// demotions and promotions. Only voters count toward a quorum.
//
// It is plain data: it does no IO and proposes nothing. The raft package
// changes it only when it applies a configuration change or restores a
// snapshot.
package membership
