// Package crashpoint kills the process at named points around persistence,
// for crash-recovery tests. It is compiled in only with the build tag
// crashpoints; otherwise Hit is an empty function the compiler removes, so
// the shipped binary has no crash points.
//
// In a binary built with -tags crashpoints, the environment variable
// SHOAL_CRASHPOINT=NAME[:N] arms one point: the N-th time (default 1) the
// process reaches it, it writes one line to standard error and sends
// itself SIGKILL, so nothing after the point runs and nothing is flushed
// or cleaned up, as in a crash.
//
//	go build -tags crashpoints -o shoal ./cmd/shoal
//	SHOAL_CRASHPOINT=wal-save-after:40 ./shoal manager --state-dir ...
package crashpoint

// EnvVar names the crash point to arm, as NAME or NAME:N.
const EnvVar = "SHOAL_CRASHPOINT"

// The crash points. Each is reached only when there is something to do
// there (entries or a hard state to save, entries to apply).
const (
	// WALSaveBefore and WALSaveAfter surround the WAL write (and fsync)
	// of a Ready's hard state and entries. A leader has already sent the
	// same entries to its followers before WALSaveBefore.
	WALSaveBefore = "wal-save-before"
	WALSaveAfter  = "wal-save-after"
	// SnapshotSaveBefore and SnapshotSaveAfter surround the saving of a
	// snapshot this node took of its own state: before its state file is
	// written, and after its WAL record.
	SnapshotSaveBefore = "snapshot-save-before"
	SnapshotSaveAfter  = "snapshot-save-after"
	// SnapshotReceivedBefore and SnapshotReceivedAfter surround the saving
	// of a snapshot received from the leader (its state file moved into
	// place, its snapshot file and WAL record), before its entries' Ready
	// is saved.
	SnapshotReceivedBefore = "snapshot-received-before"
	SnapshotReceivedAfter  = "snapshot-received-after"
	// SnapshotFileWritten is between a durable snapshot file and the WAL
	// record that names it.
	SnapshotFileWritten = "snapshot-file-written"
	// SnapshotStateInstalled is right after a snapshot's state file was
	// moved into snap/ (file and directory fsynced), before the snapshot
	// file and its WAL record: for a snapshot taken locally and for one
	// received from the leader alike.
	SnapshotStateInstalled = "snapshot-state-installed"
	// SnapshotStateReceived is in a follower, after the state file that
	// came with the leader's snapshot is durable in a temporary file and
	// checked, before the snapshot is handed to Raft.
	SnapshotStateReceived = "snapshot-state-received"
	// ApplyBefore and ApplyAfter surround the application of a Ready's
	// committed entries to the store; ApplyAfter is before Advance.
	ApplyBefore = "apply-before"
	ApplyAfter  = "apply-after"
	// JoinAnswered is between the leader's answer to a join (the new
	// learner is a member now) and the joiner's WAL; JoinWALCreated is
	// right after that WAL is created, before the node runs.
	JoinAnswered   = "join-answered"
	JoinWALCreated = "join-wal-created"
	// InitialStateWritten is in a manager founding a cluster from a
	// backup, once its initial Raft state (state file, snapshot, the
	// HardState committing it) is durable in wal.init and snap/, before
	// the rename that makes it its WAL.
	InitialStateWritten = "initial-state-written"
)

// Names lists every crash point.
var Names = []string{
	WALSaveBefore, WALSaveAfter,
	SnapshotSaveBefore, SnapshotSaveAfter,
	SnapshotReceivedBefore, SnapshotReceivedAfter,
	SnapshotFileWritten, SnapshotStateInstalled, SnapshotStateReceived,
	ApplyBefore, ApplyAfter,
	JoinAnswered, JoinWALCreated,
	InitialStateWritten,
}
