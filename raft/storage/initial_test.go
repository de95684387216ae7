package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// leftFiles lists the regular files under dir, which may not exist.
func leftFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err == nil && !d.IsDir() {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fillInitial saves the snapshot at index, with a state file, and the
// HardState that commits it, as a node founded from a backup does.
func fillInitial(index uint64) func(*Storage) error {
	return func(s *Storage) error {
		w, err := s.CreateState(1, index)
		if err != nil {
			return err
		}
		if _, err := w.Write([]byte("the state")); err != nil {
			return err
		}
		if _, err := w.Finish(); err != nil {
			return err
		}
		if err := w.Install(); err != nil {
			return err
		}
		if err := s.SaveSnapshot(snapshot(index, 1, []byte("descriptor"))); err != nil {
			return err
		}
		return s.Save(hardState(1, 0, index), nil)
	}
}

// CreateInitial's state reads back with Open as a restart does: the
// snapshot, the HardState that commits it, no entries.
func TestCreateInitial(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "raft")
	cfg := testConfig(t, dir)
	if err := CreateInitial(cfg, []byte("meta"), fillInitial(100)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, walInitDirName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is left: %v", walInitDirName, err)
	}
	s, loaded := mustOpen(t, cfg)
	defer mustClose(t, s)
	if loaded.Snapshot.GetMetadata().GetIndex() != 100 || loaded.HardState.GetCommit() != 100 || len(loaded.Entries) != 0 ||
		string(loaded.Metadata) != "meta" {
		t.Errorf("loaded snapshot %d, commit %d, %d entries, metadata %q", loaded.Snapshot.GetMetadata().GetIndex(),
			loaded.HardState.GetCommit(), len(loaded.Entries), loaded.Metadata)
	}
	if err := CreateInitial(cfg, []byte("meta"), fillInitial(100)); !errors.Is(err, ErrExists) {
		t.Errorf("CreateInitial over a WAL = %v, want ErrExists", err)
	}
}

// A CreateInitial that fails, or stops (a crash) before its WAL is in
// place, leaves no WAL: the next start, from a backup or not, begins
// afresh and finds none of what it wrote.
func TestCreateInitialInterrupted(t *testing.T) {
	failed := errors.New("the backup ends early")
	for _, tt := range []struct {
		name string
		next func(Config) error
		want uint64 // the index of the snapshot loaded after it
	}{
		{"then an initial start again", func(cfg Config) error { return CreateInitial(cfg, []byte("meta"), fillInitial(200)) }, 200},
		{"then an empty start", func(cfg Config) error {
			s, err := Create(cfg, []byte("meta"))
			if err == nil {
				err = s.Close()
			}
			return err
		}, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "raft")
			cfg := testConfig(t, dir)
			err := CreateInitial(cfg, []byte("meta"), func(s *Storage) error {
				if err := fillInitial(100)(s); err != nil {
					return err
				}
				return failed
			})
			if !errors.Is(err, failed) {
				t.Fatalf("CreateInitial = %v, want fill's error", err)
			}
			if Exists(dir) || len(leftFiles(t, dir)) != 0 {
				t.Fatalf("a failed CreateInitial left a WAL or files: %v", leftFiles(t, dir))
			}

			// A crash just before the rename: the whole state, in
			// wal.init.
			if err := CreateInitial(cfg, []byte("meta"), fillInitial(100)); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, walDirName), filepath.Join(dir, walInitDirName)); err != nil {
				t.Fatal(err)
			}
			if Exists(dir) {
				t.Fatal("a WAL in wal.init counts as a WAL")
			}
			if err := tt.next(cfg); err != nil {
				t.Fatal(err)
			}
			s, loaded := mustOpen(t, cfg)
			defer mustClose(t, s)
			if got := loaded.Snapshot.GetMetadata().GetIndex(); got != tt.want {
				t.Errorf("the next start loads a snapshot at %d, want %d", got, tt.want)
			}
			if names := snapshotNames(t, dir); tt.want == 0 && len(names) != 0 {
				t.Errorf("the interrupted start's snapshot files are left: %v", names)
			}
		})
	}
}
