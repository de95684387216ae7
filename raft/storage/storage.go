package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"go.etcd.io/etcd/server/v3/etcdserver/api/snap"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/internal/crashpoint"
)

const (
	walDirName     = "wal"
	snapDirName    = "snap"
	snapTmpDirName = "snap.tmp"
	// walInitDirName holds the WAL of CreateInitial until it is whole.
	walInitDirName = "wal.init"
)

// Storage is the on-disk state of one Raft node: a WAL of entries,
// HardStates and snapshot records, and the snapshot files those records
// name.
//
// Save and SaveSnapshot may be called from different goroutines: Save
// usually from the Ready loop and SaveSnapshot from the goroutine that
// wrote the state machine's snapshot. WAL appends are serialized; a
// snapshot file is written without holding up Save. Every method returns
// its error; after a failed WAL write all later writes fail with ErrFailed.
type Storage struct {
	log         *slog.Logger
	keepOld     int
	walDir      string
	snapDir     string
	snapTmpDir  string
	walf        WALFactory
	snapFactory SnapshotterFactory
	snapshotter Snapshotter // for snapDir
	cipher      Cipher      // nil: data in clear

	// snapMu serializes SaveSnapshot calls; it is taken before mu.
	snapMu sync.Mutex

	mu     sync.Mutex
	w      WAL
	closed bool
	failed error // first WAL write error; later writes are refused

	// commit is the highest HardState commit index handed to the WAL.
	commit uint64
	// newest is the newest snapshot with a WAL record.
	newest snapID
	// anchor is the newest snapshot a restart can load: its index is at
	// most a commit index that reached the disk. Garbage collection keeps
	// it, KeepOldSnapshots files older than it, and everything newer.
	anchor snapID
	// keys tracks which key generations the data on disk needs; nil
	// unless the Cipher is a KeyRetirer.
	keys *keyUse
}

// snapID names a snapshot by the term and index of its last entry.
type snapID struct{ term, index uint64 }

// Loaded is what Open read back from disk.
type Loaded struct {
	// Metadata is what Create was given.
	Metadata []byte
	// Snapshot is the newest snapshot the WAL names, or nil if there is
	// none.
	Snapshot *raftpb.Snapshot
	// HardState is the last HardState saved; empty for a node that never
	// saved one.
	HardState *raftpb.HardState
	// Entries are the entries after the snapshot, in index order. Entries
	// above HardState.Commit were not committed and may be replaced.
	Entries []*raftpb.Entry
}

// Exists reports whether dir (STATE_DIR/raft) holds a WAL, that is whether a
// node restarts from it rather than starting new.
func Exists(dir string) bool {
	return wal.Exist(filepath.Join(dir, walDirName))
}

// Create makes a new, empty WAL in cfg.Dir/wal with metadata at the head of
// every segment, and an empty cfg.Dir/snap. The metadata is opaque here; the
// node keeps its identity in it. Create fails with ErrExists if the
// directory already holds a WAL or snapshot files (but for those of an
// interrupted CreateInitial, which it removes).
func Create(cfg Config, metadata []byte) (*Storage, error) {
	s, err := newStorage(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.discardInterruptedInitial(); err != nil {
		return nil, err
	}
	if err := s.create(metadata); err != nil {
		return nil, err
	}
	return s, nil
}

// create makes the WAL in s.walDir and the snapshot directories.
func (s *Storage) create(metadata []byte) error {
	dir := filepath.Dir(s.snapDir)
	if Exists(dir) {
		return fmt.Errorf("%w: a WAL is in %s", ErrExists, filepath.Join(dir, walDirName))
	}
	if err := os.MkdirAll(s.snapDir, 0o700); err != nil {
		return fmt.Errorf("storage: create snapshot directory: %w", err)
	}
	snaps, err := listSnapshots(s.snapDir)
	if err != nil {
		return err
	}
	states, err := listStateFiles(s.snapDir)
	if err != nil {
		return err
	}
	if len(snaps)+len(states) > 0 {
		return fmt.Errorf("%w: %d snapshot and %d state files without a WAL in %s", ErrExists, len(snaps), len(states), s.snapDir)
	}
	if err := s.resetTmpDir(); err != nil {
		return err
	}
	// The snapshot directory must be durable before the WAL that makes
	// this a node that restarts; etcd's Create syncs dir after it renames
	// the WAL directory into place.
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	w, err := s.walf.Create(s.walDir, metadata)
	if err != nil {
		return fmt.Errorf("storage: create WAL in %s: %w", s.walDir, err)
	}
	s.w = w
	// etcd fsyncs the first segment and, after renaming wal.tmp to wal,
	// the parent directory, but never wal/ itself, whose entry for the
	// segment was made while it was wal.tmp.
	if err := syncDir(s.walDir); err != nil {
		return errors.Join(err, s.w.Close())
	}
	s.log.Info("created raft storage", "dir", dir)
	return nil
}

// CreateInitial makes the Raft state of a node whose log does not start
// empty but with a snapshot: a node that founds a cluster from a state
// taken elsewhere (a backup). fill gets a new Storage and saves the
// snapshot's state file, the snapshot, and a HardState that commits it.
// The WAL is made in cfg.Dir/wal.init and renamed to cfg.Dir/wal (the
// directory then synced) only once fill succeeded and the Storage is
// closed, so a crash leaves either no WAL, and the start is made again
// (what the interrupted one wrote is removed, here or by Create), or the
// whole initial state. The caller then opens it with Open, as a restart
// does. On error, nothing it wrote is left.
func CreateInitial(cfg Config, metadata []byte, fill func(*Storage) error) (err error) {
	s, err := newStorage(cfg)
	if err != nil {
		return err
	}
	if err := s.discardInterruptedInitial(); err != nil {
		return err
	}
	final := s.walDir
	s.walDir = filepath.Join(filepath.Dir(final), walInitDirName)
	if err := s.create(metadata); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = s.Close()
			err = errors.Join(err, s.discardInterruptedInitial())
		}
	}()
	if err := fill(s); err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.InitialStateWritten)
	if err := os.Rename(s.walDir, final); err != nil {
		return fmt.Errorf("storage: installing the initial WAL: %w", err)
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return err
	}
	s.log.Info("created raft storage from an initial snapshot", "dir", filepath.Dir(final))
	return nil
}

// discardInterruptedInitial removes what a CreateInitial that did not
// finish left: its WAL, in wal.init, and the snapshot and state files it
// wrote, which no WAL names.
func (s *Storage) discardInterruptedInitial() error {
	dir := filepath.Dir(s.snapDir)
	initWAL := filepath.Join(dir, walInitDirName)
	if _, err := os.Lstat(initWAL); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if Exists(dir) {
		return fmt.Errorf("%w: %s holds a WAL and an unfinished initial one in %s", ErrExists, dir, initWAL)
	}
	s.log.Warn("removing the Raft state of an initial start that did not finish", "dir", dir)
	for _, p := range []string{initWAL, initWAL + ".tmp", s.snapDir, s.snapTmpDir} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("storage: removing what an unfinished initial start left: %w", err)
		}
	}
	return syncDir(dir)
}

// Open loads the node's state from cfg.Dir: the newest snapshot file that
// the WAL has a record of and whose index was committed, then the HardState
// and the entries after that snapshot. A snapshot file that fails its
// checksum is skipped for an older one (etcd renames it *.broken).
//
// A record torn by a crash at the end of the last segment is cut off, once
// (etcd's wal.Repair keeps a ".broken" copy of the segment). Damage is not:
// a checksum mismatch, a missing segment or snapshot file that the log
// needs, or intact records after the point where the log stops fail with
// ErrCorrupt, and nothing is truncated. With no WAL Open fails with
// ErrNoWAL.
//
// With a Cipher, the snapshot's and the entries' data are decrypted; data
// that does not decrypt fails Open with ErrDecrypt.
//
// On success the returned Storage appends after the last record read.
func Open(cfg Config) (*Storage, *Loaded, error) {
	s, err := newStorage(cfg)
	if err != nil {
		return nil, nil, err
	}
	dir := filepath.Dir(s.walDir)
	if !Exists(dir) {
		return nil, nil, fmt.Errorf("%w in %s", ErrNoWAL, s.walDir)
	}
	if err := os.MkdirAll(s.snapDir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("storage: create snapshot directory: %w", err)
	}
	// A snapshot or state file left half-written by a crash, or a state
	// file received but not yet installed, is never moved into snap/, so
	// snap.tmp holds nothing anyone needs.
	if err := s.resetTmpDir(); err != nil {
		return nil, nil, err
	}

	// Before anything reads the WAL: etcd's ReadAll zeroes the last
	// segment after the point where it stops decoding.
	lastSegment, err := checkTornTail(s.walDir)
	if err != nil {
		return nil, nil, err
	}
	walSnaps, err := s.validSnapshotEntries()
	if err != nil {
		return nil, nil, err
	}
	snapshot, err := s.snapshotter.LoadNewestAvailable(walSnaps)
	var missing *walpb.Snapshot // the newest snapshot the WAL names but no file holds
	switch {
	case err == nil:
		// A file that does not decrypt is not skipped for an older one,
		// as a damaged file is: every file would fail the same way with
		// the wrong key, and the error must say so.
		if err := openSnapshot(s.cipher, snapshot); err != nil {
			return nil, nil, err
		}
	case errors.Is(err, snap.ErrNoSnapshot):
		snapshot = nil
		if n := len(walSnaps); n > 0 && walSnaps[n-1].GetIndex() > 0 {
			missing = walSnaps[n-1]
			s.log.Warn("no snapshot file that the WAL names loads; reading the WAL from its start",
				"index", missing.GetIndex(), "term", missing.GetTerm())
		}
	case err != nil:
		return nil, nil, fmt.Errorf("storage: load snapshot from %s: %w", s.snapDir, err)
	}

	at := &walpb.Snapshot{Index: proto.Uint64(0), Term: proto.Uint64(0)}
	if snapshot != nil {
		m := snapshot.GetMetadata()
		at = &walpb.Snapshot{Index: proto.Uint64(m.GetIndex()), Term: proto.Uint64(m.GetTerm()), ConfState: m.GetConfState()}
	}
	w, metadata, hs, ents, err := s.readWAL(at, lastSegment)
	if err != nil && missing != nil {
		return nil, nil, fmt.Errorf("%w (the WAL names a snapshot at index %d, term %d, but %s has no readable file for it)",
			err, missing.GetIndex(), missing.GetTerm(), s.snapDir)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := openEntries(s.cipher, ents); err != nil {
		return nil, nil, errors.Join(err, w.Close())
	}
	s.keys.scanUnknown(s.walDir)
	s.w = w
	s.commit = hs.GetCommit()
	s.newest = snapID{term: at.GetTerm(), index: at.GetIndex()}
	s.anchor = s.newest

	s.log.Info("opened raft storage", "dir", dir,
		"snapshot_index", at.GetIndex(), "snapshot_term", at.GetTerm(),
		"term", hs.GetTerm(), "commit", hs.GetCommit(), "entries", len(ents))
	return s, &Loaded{Metadata: metadata, Snapshot: snapshot, HardState: hs, Entries: ents}, nil
}

func newStorage(cfg Config) (*Storage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	dir := filepath.Clean(cfg.Dir)
	snapDir := filepath.Join(dir, snapDirName)
	return &Storage{
		log:         cfg.Logger,
		keepOld:     cfg.KeepOldSnapshots,
		walDir:      filepath.Join(dir, walDirName),
		snapDir:     snapDir,
		snapTmpDir:  filepath.Join(dir, snapTmpDirName),
		walf:        cfg.WAL,
		snapFactory: cfg.Snapshotter,
		snapshotter: cfg.Snapshotter.New(snapDir),
		cipher:      cfg.Cipher,
		keys:        newKeyUse(cfg.Cipher, cfg.Logger),
	}, nil
}

// validSnapshotEntries lists the WAL's usable snapshot records. etcd
// unmarshals with Must* functions, so a record that passes its checksum but
// does not decode panics; that is damage, reported as ErrCorrupt.
func (s *Storage) validSnapshotEntries() (snaps []*walpb.Snapshot, err error) {
	defer recoverCorrupt(&err, "list WAL snapshot records")
	snaps, err = s.walf.ValidSnapshotEntries(s.walDir)
	if err != nil {
		return nil, fmt.Errorf("%w: list WAL snapshot records in %s: %w", ErrCorrupt, s.walDir, err)
	}
	return snaps, nil
}

// readWAL opens the WAL at the snapshot record at and reads it to the end.
// A torn record at the end of the last segment is repaired once. Open has
// already checked with checkTornTail that the end is torn rather than
// damaged: etcd's decoder cannot tell a torn write from a damaged length
// field, and truncating at the latter would drop acknowledged records.
func (s *Storage) readWAL(at *walpb.Snapshot, lastSegment string) (WAL, []byte, *raftpb.HardState, []*raftpb.Entry, error) {
	for repaired := false; ; repaired = true {
		w, err := s.walf.Open(s.walDir, at)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("%w: open WAL at snapshot index %d: %w", ErrCorrupt, at.GetIndex(), err)
		}
		metadata, hs, ents, err := readAll(w)
		if err == nil {
			return w, metadata, hs, ents, nil
		}
		if cerr := w.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close: %w", cerr))
		}
		if repaired || !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, nil, nil, fmt.Errorf("%w: read WAL in %s: %w", ErrCorrupt, s.walDir, err)
		}
		s.log.Warn("WAL ends in a torn record; truncating it", "file", lastSegment, "error", err)
		if !s.walf.Repair(s.walDir) {
			return nil, nil, nil, nil, fmt.Errorf("%w: torn WAL in %s cannot be repaired: %w", ErrCorrupt, s.walDir, err)
		}
	}
}

func readAll(w WAL) (metadata []byte, hs *raftpb.HardState, ents []*raftpb.Entry, err error) {
	defer recoverCorrupt(&err, "read WAL")
	metadata, hs, ents, err = w.ReadAll()
	if hs == nil {
		hs = &raftpb.HardState{}
	}
	return metadata, hs, ents, err
}

func recoverCorrupt(err *error, what string) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %s: %v", ErrCorrupt, what, r)
	}
}

// Save appends entries and then the HardState to the WAL. It returns once
// they are durable when durability is what Raft needs: etcd's wal.Save
// fsyncs itself exactly when raft.MustSync(hs, previous hs, len(ents))
// holds (entries to append, or a new term or vote), and when it starts a
// new segment, so Ready.MustSync needs no separate call. A HardState that
// changes only the commit index is buffered until the next fsync; Raft can
// learn a lost commit index again. Either argument may be empty.
//
// Calls are serialized with each other and with SaveSnapshot's WAL record;
// a snapshot file being written does not hold Save up.
//
// With a Cipher, the WAL gets copies of the entries with their data
// sealed; ents themselves are not modified.
func (s *Storage) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	gen := s.keys.generation()
	sealed, err := sealEntries(s.cipher, ents)
	if err != nil {
		return err
	}
	// Counted before the write: a failed write may still have reached
	// the disk.
	s.keys.entriesSealed(gen, ents)
	if err := s.w.Save(hs, sealed); err != nil {
		s.failed = err
		return fmt.Errorf("storage: save %d entries and hard state: %w", len(ents), err)
	}
	if c := hs.GetCommit(); c > s.commit {
		s.commit = c
	}
	if s.newest.index > s.anchor.index && s.commit >= s.newest.index {
		// The newest snapshot came from the leader ahead of our commit
		// index. Restart ignores it until a HardState with commit >= its
		// index is on disk, and falls back to the older snapshot; so sync
		// that HardState before collecting the older snapshot.
		if err := s.w.Sync(); err != nil {
			s.failed = err
			return fmt.Errorf("storage: sync WAL: %w", err)
		}
		s.anchor = s.newest
		return s.collect()
	}
	return nil
}

// SaveSnapshot makes the snapshot durable and then removes the snapshot
// files and WAL segments that no kept snapshot needs. The snapshot must not
// be empty, must carry a ConfState, and must not be older than one already
// saved.
// Call it before saving the HardState and entries of the same Ready.
//
// With a Cipher, the file holds a copy of the snapshot with its data
// sealed; snapshot itself is not modified.
//
// A snapshot whose index is above the commit index saved so far (one sent
// by the leader) is written, but older files are kept until Save stores a
// commit index that reaches it: until then a restart loads the older one.
//
// An error before the WAL record is written leaves the WAL as it was; an
// error from the WAL record fails the Storage (ErrFailed afterwards); an
// error while removing old files, or from the Cipher's RetireBefore, is
// returned after the snapshot is durable.
func (s *Storage) SaveSnapshot(snapshot *raftpb.Snapshot) error {
	if snapshot == nil || raft.IsEmptySnap(snapshot) {
		return fmt.Errorf("%w: empty snapshot", ErrInvalidSnapshot)
	}
	m := snapshot.GetMetadata()
	if m.GetConfState() == nil {
		return fmt.Errorf("%w: snapshot at index %d has no ConfState", ErrInvalidSnapshot, m.GetIndex())
	}
	id := snapID{term: m.GetTerm(), index: m.GetIndex()}

	s.snapMu.Lock()
	defer s.snapMu.Unlock()

	s.mu.Lock()
	err := s.writable()
	newest := s.newest
	// Read before sealing (see KeyRetirer).
	gen := s.keys.generation()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if id.index < newest.index {
		return fmt.Errorf("%w: snapshot at index %d, the saved one at index %d", ErrOlderSnapshot, id.index, newest.index)
	}

	// Sealed outside s.mu, so a large snapshot does not hold up Save.
	sealed, err := sealSnapshot(s.cipher, snapshot)
	if err != nil {
		return err
	}

	// Ordering: the snapshot file is durable (file fsync, rename, snap/
	// fsync) before the WAL record that names it. A crash in between
	// leaves a file no record names, which Open ignores; the reverse order
	// could leave a record whose file is missing.
	if err := s.writeSnapshotFile(sealed); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.SnapshotFileWritten)

	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys.snapshotSealed(id, gen)
	if err := s.writable(); err != nil {
		return err
	}
	// wal.SaveSnapshot fsyncs, which also makes durable every HardState
	// appended before it: s.commit is on disk after this call.
	ws := &walpb.Snapshot{Index: proto.Uint64(id.index), Term: proto.Uint64(id.term), ConfState: m.GetConfState()}
	if err := s.w.SaveSnapshot(ws); err != nil {
		s.failed = err
		return fmt.Errorf("storage: save WAL snapshot record at index %d: %w", id.index, err)
	}
	s.newest = id
	s.log.Info("saved snapshot", "index", id.index, "term", id.term, "bytes", len(snapshot.GetData()))

	// Only then may older segments be unlocked and removed.
	if err := s.w.ReleaseLockTo(id.index); err != nil {
		return fmt.Errorf("storage: release WAL segments below index %d: %w", id.index, err)
	}
	if id.index > s.commit {
		s.log.Info("snapshot is ahead of the saved commit index; keeping older files until it is committed",
			"index", id.index, "commit", s.commit)
		return nil
	}
	s.anchor = id
	return s.collect()
}

// writeSnapshotFile writes the snapshot file and makes it durable. etcd's
// SaveSnap writes the final name in place and fsyncs the file, but neither
// renames nor fsyncs the directory; so it writes into a directory of its
// own in snap.tmp here (state files being written share snap.tmp), and the
// file is renamed into snap/ and snap/ is fsynced.
func (s *Storage) writeSnapshotFile(snapshot *raftpb.Snapshot) error {
	m := snapshot.GetMetadata()
	scratch, err := os.MkdirTemp(s.snapTmpDir, "snap-")
	if err != nil {
		return fmt.Errorf("storage: create a directory in %s: %w", s.snapTmpDir, err)
	}
	defer os.RemoveAll(scratch)
	if err := s.snapFactory.New(scratch).SaveSnap(snapshot); err != nil {
		return fmt.Errorf("storage: write snapshot file at index %d: %w", m.GetIndex(), err)
	}
	name := snapFileName(m.GetTerm(), m.GetIndex())
	if err := os.Rename(filepath.Join(scratch, name), filepath.Join(s.snapDir, name)); err != nil {
		return fmt.Errorf("storage: move snapshot file into place: %w", err)
	}
	if err := syncDir(s.snapDir); err != nil {
		return err
	}
	if err := os.Remove(scratch); err != nil {
		return fmt.Errorf("storage: remove %s: %w", scratch, err)
	}
	return nil
}

// resetTmpDir empties snap.tmp, at Create and Open, when nothing in it can
// be in use.
func (s *Storage) resetTmpDir() error {
	if err := os.RemoveAll(s.snapTmpDir); err != nil {
		return fmt.Errorf("storage: remove %s: %w", s.snapTmpDir, err)
	}
	if err := os.MkdirAll(s.snapTmpDir, 0o700); err != nil {
		return fmt.Errorf("storage: create %s: %w", s.snapTmpDir, err)
	}
	return nil
}

// Close syncs and closes the WAL. Later calls return nil; other methods
// return ErrClosed.
func (s *Storage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.w.Close(); err != nil {
		return fmt.Errorf("storage: close WAL: %w", err)
	}
	return nil
}

func (s *Storage) writable() error {
	if s.closed {
		return ErrClosed
	}
	if s.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, s.failed)
	}
	return nil
}
