package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
)

// hookedWALs wraps every WAL that etcd's factory creates or opens.
type hookedWALs struct {
	WALFactory
	wrap func(WAL) WAL
}

func (f hookedWALs) Create(dir string, metadata []byte) (WAL, error) {
	w, err := f.WALFactory.Create(dir, metadata)
	if err != nil {
		return nil, err
	}
	return f.wrap(w), nil
}

func (f hookedWALs) Open(dir string, at *walpb.Snapshot) (WAL, error) {
	w, err := f.WALFactory.Open(dir, at)
	if err != nil {
		return nil, err
	}
	return f.wrap(w), nil
}

// hookedWAL runs a hook before passing a call on.
type hookedWAL struct {
	WAL
	beforeSave         func() error
	beforeSaveSnapshot func(*walpb.Snapshot) error
}

func (w *hookedWAL) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	if w.beforeSave != nil {
		if err := w.beforeSave(); err != nil {
			return err
		}
	}
	return w.WAL.Save(hs, ents)
}

func (w *hookedWAL) SaveSnapshot(s *walpb.Snapshot) error {
	if w.beforeSaveSnapshot != nil {
		if err := w.beforeSaveSnapshot(s); err != nil {
			return err
		}
	}
	return w.WAL.SaveSnapshot(s)
}

type snapshotterFunc func(dir string) Snapshotter

func (f snapshotterFunc) New(dir string) Snapshotter { return f(dir) }

type failingSnapshotter struct {
	Snapshotter
	err error
}

func (s failingSnapshotter) SaveSnap(*raftpb.Snapshot) error { return s.err }

func TestSnapshotFileIsInPlaceBeforeItsWALRecord(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	records := 0
	cfg.WAL = hookedWALs{EtcdWAL(cfg.Logger), func(w WAL) WAL {
		return &hookedWAL{WAL: w, beforeSaveSnapshot: func(ws *walpb.Snapshot) error {
			if ws.GetIndex() == 0 {
				return nil // the record etcd's Create writes
			}
			records++
			name := snapFileName(ws.GetTerm(), ws.GetIndex())
			if _, err := os.Stat(filepath.Join(cfg.Dir, snapDirName, name)); err != nil {
				t.Errorf("WAL record for %s written before the file is in snap/: %v", name, err)
			}
			if left, err := os.ReadDir(filepath.Join(cfg.Dir, snapTmpDirName)); err != nil || len(left) > 0 {
				t.Errorf("%s holds %v (%v) when the WAL record is written", snapTmpDirName, left, err)
			}
			return nil
		}}
	}}
	s := mustCreate(t, cfg, nil)
	defer mustClose(t, s)
	mustSave(t, s, hardState(1, 1, 5), entries(1, 5, 1, 8))
	mustSaveSnapshot(t, s, snapshot(3, 1, []byte("a")))
	mustSaveSnapshot(t, s, snapshot(5, 1, []byte("b")))
	if records != 2 {
		t.Fatalf("%d WAL snapshot records, want 2", records)
	}
}

func TestSnapshotFileErrorLeavesTheWALUntouched(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	diskFull := errors.New("no space left on device")
	etcdSnap := EtcdSnapshotter(cfg.Logger)
	fail := false
	cfg.Snapshotter = snapshotterFunc(func(dir string) Snapshotter {
		if fail {
			return failingSnapshotter{etcdSnap.New(dir), diskFull}
		}
		return etcdSnap.New(dir)
	})
	s := mustCreate(t, cfg, nil)
	mustSave(t, s, hardState(1, 1, 5), entries(1, 5, 1, 8))
	first := snapshot(3, 1, []byte("a"))
	mustSaveSnapshot(t, s, first)

	fail = true
	if err := s.SaveSnapshot(snapshot(5, 1, []byte("b"))); !errors.Is(err, diskFull) {
		t.Fatalf("SaveSnapshot: %v, want the snapshotter's error", err)
	}
	// The WAL is intact and still takes records.
	mustSave(t, s, hardState(1, 1, 6), entries(6, 6, 1, 8))
	mustClose(t, s)

	fail = false
	s, loaded := mustOpen(t, cfg)
	defer mustClose(t, s)
	checkLoaded(t, loaded, nil, first, hardState(1, 1, 6), entries(4, 6, 1, 8))
}

func TestWALWriteErrorFailsLaterWrites(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	ioErr := errors.New("input/output error")
	var failNext bool
	cfg.WAL = hookedWALs{EtcdWAL(cfg.Logger), func(w WAL) WAL {
		return &hookedWAL{WAL: w, beforeSave: func() error {
			if failNext {
				failNext = false
				return ioErr
			}
			return nil
		}}
	}}
	s := mustCreate(t, cfg, nil)
	defer mustClose(t, s)
	mustSave(t, s, hardState(1, 1, 1), entries(1, 1, 1, 8))

	failNext = true
	if err := s.Save(hardState(1, 1, 2), entries(2, 2, 1, 8)); !errors.Is(err, ioErr) {
		t.Fatalf("Save: %v, want the WAL's error", err)
	}
	// The next write would succeed in the WAL, but what reached the disk
	// before it is unknown: it must be refused.
	err := s.Save(hardState(1, 1, 2), entries(2, 2, 1, 8))
	if !errors.Is(err, ErrFailed) || !errors.Is(err, ioErr) {
		t.Fatalf("Save after a failed write: %v, want ErrFailed wrapping the first error", err)
	}
	if err := s.SaveSnapshot(snapshot(1, 1, []byte("x"))); !errors.Is(err, ErrFailed) {
		t.Fatalf("SaveSnapshot after a failed write: %v, want ErrFailed", err)
	}
}
