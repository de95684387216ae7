// Package store is shoal's replicated object store: how objects are held
// (encoded, in copy-on-write B-trees: tables.go), transactions, versions,
// the apply of committed entries, snapshots and the watches on it. Every
// manager holds the same store; it changes only when a committed Raft
// entry is applied.
//
// # What it owns and what it must not touch
//
// The store implements the raft package's StateMachine (Apply, Snapshot,
// Restore) without importing raft: it reaches Raft only through the
// Proposer interface it declares, which the raft node satisfies. It knows
// nothing of networking or disk. Watches are built on package watch, which
// in turn knows nothing of objects.
//
// # Writes
//
// Update runs a function that collects creates, updates and deletes,
// validates them and the Config's limits, and proposes them as one Raft
// entry (an api.StoreActions). It holds no lock while the entry travels
// through Raft, so many Updates are in flight at once. Whether an entry
// can be applied is decided by Apply on every manager alike: expected
// versions (optimistic concurrency) and unique names are checked against
// the state in log order, so of two concurrent updates of one object
// expecting the same version exactly one wins, and replicas never diverge.
// A rejected entry changes nothing. Batch splits a large change into
// several entries.
//
// An object's version is the Raft index of the entry that last changed it;
// the store's version is the index of the last entry applied. Timestamps
// are stamped by the proposer, because Apply must be deterministic.
//
// # Reads and watches
//
// View reads one consistent state without blocking Apply. Watch streams
// the events after a version, while that version is in the retained
// history; ViewAndWatch gives a consistent list plus the events after it.
// Restore replaces the whole state atomically and tells watchers to list
// again.
//
// # Formats
//
// An entry's payload is an encoded api.StoreActions: actions of kind
// create, update or delete, each with the whole object (only kind and id
// for a delete) and the expected version (0: none), and optionally the
// write's request ID (UpdateRequest), by which the store recognises a
// repeat of a write it applied and answers it instead of applying it
// again (requests.go). The proposer stamps created_at and updated_at and
// picks the id of a new object.
//
// A snapshot is the 8 bytes "SHOALSNP" and then records, each a uvarint
// length and an encoded api.StoreSnapshotRecord: a header (format 2 and
// the applied index), one record per object in increasing id order, one
// per remembered request in increasing index order, and a trailer with
// the counts and the CRC-32C of every byte before it. Restore refuses
// anything else with ErrCorruptSnapshot (and reads format 1, which has no
// remembered requests). A backup (package backup) holds the same stream:
// Capture takes the state for it with its index and objects per kind, and
// CheckSnapshot runs Restore's checks without a Store.
//
// # Limits
//
// Config's MaxObjectBytes, MaxActions and MaxTxBytes are checked before
// proposing. Apply checks the fixed HardMax constants instead, because
// managers may run with different Configs and an entry must get the same
// verdict on all of them.
//
// # Usage
//
//	s, err := store.New(store.DefaultConfig(), raftNode) // raftNode is a Proposer
//	res, err := s.Update(ctx, func(tx store.Tx) error {
//		_, err := tx.Create(&api.Object{Kind: "service", Name: "web", Spec: spec})
//		return err
//	})
//	// res.Version is the Raft index that created "web".
//	s.View(func(tx store.ReadTx) {
//		web, err := tx.GetByName("service", "web")
//		...
//	})
//	w, err := s.Watch(res.Version, store.Selector{Kind: "service"})
//	defer w.Close()
//	ev, err := w.Next(ctx)
package store
