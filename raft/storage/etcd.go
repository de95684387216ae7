package storage

import (
	"log/slog"

	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/zap"
)

// WAL is the part of etcd's *wal.WAL that Storage depends on. A WAL is
// opened for reading; ReadAll reads it to the end and turns it into one
// that appends. Storage calls it with its own lock held, one call at a
// time.
type WAL interface {
	// ReadAll returns the metadata, the last HardState and the entries
	// after the snapshot the WAL was opened at. A torn last record gives an
	// error matching io.ErrUnexpectedEOF.
	ReadAll() (metadata []byte, state *raftpb.HardState, ents []*raftpb.Entry, err error)
	// Save appends the entries and the HardState. It fsyncs when the
	// entries are not empty or the term or vote changed (raft.MustSync)
	// and when it starts a new segment; a HardState that changes only the
	// commit index may stay in memory until the next sync.
	Save(st *raftpb.HardState, ents []*raftpb.Entry) error
	// SaveSnapshot appends a snapshot record and fsyncs, which also makes
	// everything appended before it durable.
	SaveSnapshot(s *walpb.Snapshot) error
	// ReleaseLockTo unlocks the segments that only hold entries below
	// index, except the last of them.
	ReleaseLockTo(index uint64) error
	// Sync flushes and fsyncs what was appended.
	Sync() error
	// Close syncs and releases the segments.
	Close() error
}

// WALFactory creates, opens and repairs the WAL in a directory.
type WALFactory interface {
	// Create makes a new WAL in dir, which must not hold one, with the
	// metadata at the head of every segment, and makes the directory
	// durable.
	Create(dir string, metadata []byte) (WAL, error)
	// Open opens the WAL in dir for reading from the snapshot record at.
	Open(dir string, at *walpb.Snapshot) (WAL, error)
	// Repair truncates a torn record at the end of the last segment,
	// keeping a copy of the segment with the suffix ".broken". It reports
	// whether the segment can now be read to its end.
	Repair(dir string) bool
	// ValidSnapshotEntries returns the snapshot records in dir whose index
	// is at most the commit index of the last HardState in the log.
	ValidSnapshotEntries(dir string) ([]*walpb.Snapshot, error)
}

// Snapshotter is the part of etcd's *snap.Snapshotter that Storage depends
// on. Files are named "%016x-%016x.snap" by term and index, as etcd names
// them: Storage moves and removes them by those names.
type Snapshotter interface {
	// SaveSnap writes and fsyncs the snapshot file in the Snapshotter's
	// directory.
	SaveSnap(s *raftpb.Snapshot) error
	// LoadNewestAvailable loads the newest snapshot file that one of
	// walSnaps names, or fails with snap.ErrNoSnapshot.
	LoadNewestAvailable(walSnaps []*walpb.Snapshot) (*raftpb.Snapshot, error)
}

// SnapshotterFactory makes a Snapshotter for a directory.
type SnapshotterFactory interface {
	New(dir string) Snapshotter
}

var (
	_ WAL         = (*wal.WAL)(nil)
	_ Snapshotter = (*snap.Snapshotter)(nil)
)

// EtcdWAL returns the WALFactory of etcd's wal package, logging to logger.
func EtcdWAL(logger *slog.Logger) WALFactory {
	return etcdWAL{lg: zapLogger(logger, "wal")}
}

type etcdWAL struct{ lg *zap.Logger }

func (e etcdWAL) Create(dir string, metadata []byte) (WAL, error) {
	return wal.Create(e.lg, dir, metadata)
}

func (e etcdWAL) Open(dir string, at *walpb.Snapshot) (WAL, error) {
	return wal.Open(e.lg, dir, at)
}

func (e etcdWAL) Repair(dir string) bool { return wal.Repair(e.lg, dir) }

func (e etcdWAL) ValidSnapshotEntries(dir string) ([]*walpb.Snapshot, error) {
	return wal.ValidSnapshotEntries(e.lg, dir)
}

// EtcdSnapshotter returns the SnapshotterFactory of etcd's snap package,
// logging to logger.
func EtcdSnapshotter(logger *slog.Logger) SnapshotterFactory {
	return etcdSnap{lg: zapLogger(logger, "snap")}
}

type etcdSnap struct{ lg *zap.Logger }

func (e etcdSnap) New(dir string) Snapshotter { return snap.New(e.lg, dir) }
