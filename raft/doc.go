// Package raft runs one shoal manager's Raft node on go.etcd.io/raft/v3:
// the Ready loop, proposals and the callers waiting for them, applying
// committed entries to a StateMachine, snapshot triggers, leadership
// notifications, ReadIndex reads and membership changes.
//
// It owns the order in which things become durable, visible and sent. It
// does not open sockets or files itself: disk is reached through
// raft/storage and the network through raft/transport, and it never
// interprets the payloads it applies.
package raft
