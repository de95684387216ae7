// Package storage keeps the on-disk state of one manager's Raft node: etcd's
// write-ahead log (go.etcd.io/etcd/server/v3/storage/wal) and snapshot files
// (go.etcd.io/etcd/server/v3/etcdserver/api/snap), behind the small WAL and
// Snapshotter interfaces declared here so that tests and a fault-injection
// build can put their own implementations behind a Storage.
//
// It owns, under the directory it is given (STATE_DIR/raft):
//
//	wal/       WAL segments, named <seq>-<first index>.wal
//	snap/      snapshot files, named <term>-<index>.snap
//	snap.tmp/  a snapshot file while it is being written
//
// and with them: the order in which a snapshot becomes durable (file,
// rename, directory fsync, then the WAL record), the repair of a torn WAL
// tail after a crash (and the refusal to truncate a log that is damaged
// rather than torn), and the removal of snapshot files and WAL segments no
// kept snapshot needs.
//
// It does not interpret entry or snapshot payloads, does not decide what to
// persist or when (the raft package's Ready loop does), and touches nothing
// outside its directory.
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
