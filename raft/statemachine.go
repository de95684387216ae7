package raft

import "io"

// StateMachine is what a Node applies committed entries to. The node does
// not own it and knows nothing of what the payloads mean; the object store
// implements it.
//
// Its methods are called one at a time and in log order, so an
// implementation needs no locking against itself: Apply and ApplyBatch on
// the node's apply goroutine, or on its Ready goroutine once the apply
// goroutine has applied everything queued to it, as Snapshot and Restore
// are. It must lock against its own readers.
type StateMachine interface {
	// Apply applies the payload of one committed entry at the given Raft
	// index. The index grows strictly from call to call. Apply must be
	// deterministic: every manager applies the same entries in the same
	// order and must reach the same state and the same result.
	//
	// The result and error are handed to the ProposeValue call that
	// proposed this entry, if it was proposed on this node. A returned error
	// is a deterministic rejection of this entry (a version conflict, say),
	// not a failure of the node: the node keeps running.
	Apply(index uint64, payload []byte) (result any, err error)

	// Snapshot captures the state as of the last applied entry and returns
	// a function that writes it. Snapshot itself runs between applies and
	// must be cheap (take a consistent read view); the
	// returned function runs on another goroutine while Apply goes on, so
	// it may read only what Snapshot captured.
	Snapshot() (write func(w io.Writer) error, err error)

	// Restore replaces the whole state with the snapshot taken at index,
	// atomically for readers. It is called when the node starts from a
	// snapshot and when a follower receives one from the leader.
	Restore(index uint64, r io.Reader) error
}

// BatchApplier is a StateMachine that applies a run of consecutive committed
// entries at once. The node uses ApplyBatch instead of Apply for the normal
// entries of a Ready that follow each other (a configuration change or an
// empty entry ends a run), and hands the results to their proposers only
// after ApplyBatch returned.
type BatchApplier interface {
	StateMachine
	// ApplyBatch applies payloads, those of the entries at indexes first,
	// first+1, ..., in order, each exactly as Apply would, with the same
	// results, and may make their changes visible to readers together,
	// when it returns. It returns one result and one error per payload.
	ApplyBatch(first uint64, payloads [][]byte) (results []any, errs []error)
}
