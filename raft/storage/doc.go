// Package storage keeps the on-disk state of one manager's Raft node: etcd's
// write-ahead log (go.etcd.io/etcd/server/v3/storage/wal) and snapshot files
// (go.etcd.io/etcd/server/v3/etcdserver/api/snap), behind the small WAL and
// Snapshotter interfaces declared here so that tests and a fault-injection
// build can put their own implementations behind a Storage.
//
// It owns, under the directory it is given (STATE_DIR/raft):
//
//	wal/       WAL segments, named <seq>-<first index>.wal
//	snap/      snapshot files, named <term>-<index>.snap, and the state
//	           files beside them, <term>-<index>-<sha256 prefix>.state
//	snap.tmp/  snapshot and state files while they are written or received,
//	           emptied by Create and Open
//	wal.init/  the WAL of CreateInitial (a log that starts with a snapshot)
//	           until it is whole and renamed to wal/
//
// and with them: the order in which a snapshot becomes durable (state
// file, rename, directory fsync; snapshot file, rename, directory fsync;
// then the WAL record), the repair of a torn WAL
// tail after a crash (and the refusal to truncate a log that is damaged
// rather than torn), and the removal of snapshot files and WAL segments no
// kept snapshot needs.
//
// # Encryption at rest
//
// With a Config.Cipher, the data of every entry (normal and configuration
// changes alike: these carry addresses) and of every snapshot is sealed on
// a copy before it is written, and opened when read back; Raft's own
// entries and snapshots are never modified. Each payload is bound to its
// entry's index, term and type, or its snapshot's index and term, so it
// cannot be moved elsewhere in the log. What stays in clear holds no
// payload: the WAL metadata (the node's identity), HardStates (term, vote,
// commit), entry indexes, terms and types, and snapshot metadata (index,
// term, ConfState with Raft IDs). Encryption makes the contents
// unreadable and modifications of them detectable; it does not stop
// someone who can write the directory from removing whole records or
// putting back an older copy of it.
//
// # State files
//
// A snapshot's data is small (the raft package keeps the membership and a
// StateInfo in it); the state machine's bytes are streamed into a state
// file (CreateState, Finish, Install) and back out of it (OpenState), never
// held whole in memory. The file is framed, each frame sealed on its own
// (with a Cipher) and bound to its snapshot, its position and whether it is
// the last, and the reader checks the StateInfo's length and SHA-256 at
// the end (stateformat.go). A state file that cannot be read whole fails
// with ErrStateFile, naming it.
//
// A Cipher that is also a KeyRetirer (keys.Keys) rotates keys: older keys
// stay until every file Open could read that they sealed is gone, which
// Storage establishes after it removes old files (keyuse.go says how) and
// then reports with RetireBefore.
//
// It does not interpret entry or snapshot payloads, does not decide what to
// persist or when (the raft package's Ready loop does), does not own keys
// (it is given a Cipher), and touches nothing outside its directory.
//
// Usage, in a node's start-up and Ready loop (Example runs a full cycle):
//
//	cfg := storage.Config{Dir: filepath.Join(stateDir, "raft"), Logger: logger}
//	var (
//		st     *storage.Storage
//		loaded *storage.Loaded
//		err    error
//	)
//	if storage.Exists(cfg.Dir) {
//		st, loaded, err = storage.Open(cfg)
//		// Restore the state machine from loaded.Snapshot, then ApplySnapshot,
//		// SetHardState(loaded.HardState) and Append(loaded.Entries) on a
//		// raft.MemoryStorage, and RestartNode.
//	} else {
//		st, err = storage.Create(cfg, identity)
//	}
//	...
//	for rd := range node.Ready() {
//		if !raft.IsEmptySnap(rd.Snapshot) {
//			err = st.SaveSnapshot(rd.Snapshot) // before the HardState that commits it
//		}
//		err = st.Save(rd.HardState, rd.Entries) // durable when rd.MustSync
//		// Any error stops the node.
//		...
//	}
package storage
