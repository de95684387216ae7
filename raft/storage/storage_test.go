package storage

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

func TestSaveThenOpenReturnsWhatWasSaved(t *testing.T) {
	type save struct {
		hs   *raftpb.HardState
		ents []*raftpb.Entry
	}
	tests := []struct {
		name     string
		saves    []save
		wantHS   *raftpb.HardState
		wantEnts []*raftpb.Entry
	}{
		{name: "nothing saved"},
		{
			name:     "entries without a hard state",
			saves:    []save{{ents: entries(1, 3, 1, 10)}},
			wantEnts: entries(1, 3, 1, 10),
		},
		{
			name:   "hard state without entries",
			saves:  []save{{hs: hardState(2, 1, 0)}},
			wantHS: hardState(2, 1, 0),
		},
		{
			name: "several batches, last hard state wins",
			saves: []save{
				{hs: hardState(1, 1, 0), ents: entries(1, 5, 1, 100)},
				{hs: hardState(1, 1, 5), ents: entries(6, 9, 1, 100)},
				{hs: hardState(2, 3, 9), ents: entries(10, 10, 2, 0)},
			},
			wantHS:   hardState(2, 3, 9),
			wantEnts: append(entries(1, 9, 1, 100), entries(10, 10, 2, 0)...),
		},
		{
			name: "commit-only hard state is kept by Close",
			saves: []save{
				{hs: hardState(1, 1, 0), ents: entries(1, 3, 1, 8)},
				{hs: hardState(1, 1, 3)},
			},
			wantHS:   hardState(1, 1, 3),
			wantEnts: entries(1, 3, 1, 8),
		},
		{
			name: "a new leader's entries replace an uncommitted suffix",
			saves: []save{
				{hs: hardState(1, 1, 2), ents: entries(1, 5, 1, 16)},
				{hs: hardState(2, 2, 2), ents: entries(4, 6, 2, 16)},
			},
			wantHS:   hardState(2, 2, 2),
			wantEnts: append(entries(1, 3, 1, 16), entries(4, 6, 2, 16)...),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, filepath.Join(t.TempDir(), "raft"))
			if Exists(cfg.Dir) {
				t.Fatal("Exists before Create")
			}
			s := mustCreate(t, cfg, []byte("node-1"))
			if !Exists(cfg.Dir) {
				t.Fatal("Exists is false after Create")
			}
			for _, sv := range tt.saves {
				mustSave(t, s, sv.hs, sv.ents)
			}
			mustClose(t, s)

			s, loaded := mustOpen(t, cfg)
			defer mustClose(t, s)
			checkLoaded(t, loaded, []byte("node-1"), nil, tt.wantHS, tt.wantEnts)
		})
	}
}

func TestOpenReturnsNewestSnapshotAndOnlyLaterEntries(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	s := mustCreate(t, cfg, []byte("md"))
	mustSave(t, s, hardState(1, 1, 10), entries(1, 10, 1, 64))
	mustSaveSnapshot(t, s, snapshot(5, 1, []byte("state at 5")))
	mustSave(t, s, hardState(2, 1, 20), entries(11, 20, 2, 64))
	snap15 := snapshot(15, 2, []byte("state at 15"))
	mustSaveSnapshot(t, s, snap15)
	mustSave(t, s, hardState(2, 1, 22), entries(21, 25, 2, 64))
	mustClose(t, s)

	s, loaded := mustOpen(t, cfg)
	checkLoaded(t, loaded, []byte("md"), snap15, hardState(2, 1, 22), entries(16, 25, 2, 64))

	// It appends after what it read.
	mustSave(t, s, hardState(2, 1, 26), entries(26, 26, 2, 64))
	mustClose(t, s)
	s, loaded = mustOpen(t, cfg)
	defer mustClose(t, s)
	checkLoaded(t, loaded, []byte("md"), snap15, hardState(2, 1, 26), entries(16, 26, 2, 64))
}

func TestLargeSnapshotRoundTrips(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	s := mustCreate(t, cfg, nil)
	mustSave(t, s, hardState(1, 1, 3), entries(1, 3, 1, 8))
	big := snapshot(3, 1, payload(3, 16<<20+1))
	mustSaveSnapshot(t, s, big)
	mustClose(t, s)

	s, loaded := mustOpen(t, cfg)
	defer mustClose(t, s)
	checkLoaded(t, loaded, nil, big, hardState(1, 1, 3), nil)
}

func TestCreateAndOpenErrors(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		call    func(cfg Config) error
		want    error
	}{
		{
			name: "open an empty directory",
			call: func(cfg Config) error { _, _, err := Open(cfg); return err },
			want: ErrNoWAL,
		},
		{
			name:    "open a directory that does not exist",
			prepare: func(t *testing.T, dir string) { os.Remove(dir) },
			call:    func(cfg Config) error { _, _, err := Open(cfg); return err },
			want:    ErrNoWAL,
		},
		{
			name: "create over an existing WAL",
			prepare: func(t *testing.T, dir string) {
				mustClose(t, mustCreate(t, testConfig(t, dir), nil))
			},
			call: func(cfg Config) error { _, err := Create(cfg, nil); return err },
			want: ErrExists,
		},
		{
			name: "create over stray snapshot files",
			prepare: func(t *testing.T, dir string) {
				if err := os.MkdirAll(filepath.Join(dir, snapDirName), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, snapDirName, snapFileName(1, 1)), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			call: func(cfg Config) error { _, err := Create(cfg, nil); return err },
			want: ErrExists,
		},
		{
			name: "negative KeepOldSnapshots",
			call: func(cfg Config) error {
				cfg.KeepOldSnapshots = -1
				_, err := Create(cfg, nil)
				return err
			},
			want: ErrInvalidConfig,
		},
		{
			name: "empty Dir",
			call: func(cfg Config) error {
				cfg.Dir = ""
				_, _, err := Open(cfg)
				return err
			},
			want: ErrInvalidConfig,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.prepare != nil {
				tt.prepare(t, dir)
			}
			err := tt.call(testConfig(t, dir))
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestSaveSnapshotRejectsInvalidSnapshots(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	s := mustCreate(t, cfg, nil)
	defer mustClose(t, s)
	mustSave(t, s, hardState(1, 1, 10), entries(1, 10, 1, 8))
	mustSaveSnapshot(t, s, snapshot(8, 1, []byte("x")))

	noConfState := snapshot(9, 1, []byte("x"))
	noConfState.Metadata.ConfState = nil
	tests := []struct {
		name  string
		snap  *raftpb.Snapshot
		older bool
	}{
		{"nil", nil, false},
		{"empty", &raftpb.Snapshot{}, false},
		{"no ConfState", noConfState, false},
		{"older than the saved one", snapshot(7, 1, []byte("x")), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.SaveSnapshot(tt.snap)
			if !errors.Is(err, ErrInvalidSnapshot) {
				t.Fatalf("error = %v, want ErrInvalidSnapshot", err)
			}
			if errors.Is(err, ErrOlderSnapshot) != tt.older {
				t.Fatalf("error = %v: ErrOlderSnapshot %v, want %v", err, !tt.older, tt.older)
			}
		})
	}
	if n := len(snapshotNames(t, cfg.Dir)); n != 1 {
		t.Fatalf("%d snapshot files, want 1", n)
	}
}

func TestUseAfterClose(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	s := mustCreate(t, cfg, nil)
	mustClose(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Save(hardState(1, 1, 0), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Save after Close: %v, want ErrClosed", err)
	}
	if err := s.SaveSnapshot(snapshot(1, 1, nil)); !errors.Is(err, ErrClosed) {
		t.Fatalf("SaveSnapshot after Close: %v, want ErrClosed", err)
	}
}

// Save and SaveSnapshot run on different goroutines in the raft node: the
// Ready loop appends while a snapshot is written.
func TestSaveWhileSavingSnapshots(t *testing.T) {
	smallSegments(t, 16<<10)
	cfg := testConfig(t, t.TempDir())
	s := mustCreate(t, cfg, nil)

	const last = 400
	committed := make(chan uint64, last)
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(committed)
		for i := uint64(1); i <= last; i++ {
			if err := s.Save(hardState(1, 1, i), entries(i, i, 1, 128)); err != nil {
				t.Errorf("Save %d: %v", i, err)
				return
			}
			committed <- i
		}
	})
	var lastSnap *raftpb.Snapshot
	for i := range committed {
		if i%50 == 0 {
			lastSnap = snapshot(i, 1, payload(i, 4096))
			if err := s.SaveSnapshot(lastSnap); err != nil {
				t.Errorf("SaveSnapshot %d: %v", i, err)
			}
		}
	}
	wg.Wait()
	mustClose(t, s)

	s, loaded := mustOpen(t, cfg)
	defer mustClose(t, s)
	checkLoaded(t, loaded, nil, lastSnap, hardState(1, 1, last), entries(lastSnap.GetMetadata().GetIndex()+1, last, 1, 128))
}
