// Package raft runs one shoal manager's Raft node on go.etcd.io/raft/v3:
// the Ready loop, proposals and the callers waiting for them, applying
// committed entries to a StateMachine, snapshot triggers, leadership
// notifications, ReadIndex reads and membership changes: learners first,
// their promotion once caught up, demotion, one Raft ID per node, and one
// change at a time until it is applied.
//
// It owns the order in which things become durable, visible and sent. It
// does not open sockets or files itself: disk is reached through
// raft/storage and the network through raft/transport; it serves and calls
// no gRPC service but Raft traffic (package clusterrpc serves membership
// calls, joins and forwards); and it never interprets the payloads it
// applies.
package raft
