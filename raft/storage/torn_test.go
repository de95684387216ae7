package storage

import (
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
)

// A crash can tear the last record of the WAL. Open must then return every
// record before it intact, the torn one whole or not at all, and leave a WAL
// that takes new records and opens again (etcd #14098).
func TestOpenAfterTornTail(t *testing.T) {
	const (
		before    = 40  // records written before the one torn
		entrySize = 200 // payload of the entries before it
	)
	tests := []struct {
		name string
		// last writes the record that is torn, and returns the entries and
		// hard state Open must return when it is whole.
		last func(t *testing.T, s *Storage) ([]*raftpb.Entry, *raftpb.HardState)
		// zero tears by zeroing the file from the offset on, as a write
		// that never reached some sectors does; otherwise by truncating
		// the file there, as a file system that lost the end of a file
		// does.
		zero bool
	}{
		{
			name: "entry truncated",
			last: func(t *testing.T, s *Storage) ([]*raftpb.Entry, *raftpb.HardState) {
				e := entries(before+1, before+1, 1, 700)
				mustSave(t, s, nil, e)
				return append(entries(1, before, 1, entrySize), e...), hardState(1, 1, before)
			},
		},
		{
			name: "hard state truncated",
			last: func(t *testing.T, s *Storage) ([]*raftpb.Entry, *raftpb.HardState) {
				hs := hardState(2, 2, before)
				mustSave(t, s, hs, nil)
				return entries(1, before, 1, entrySize), hs
			},
		},
		{
			name: "entry zeroed from a sector boundary",
			last: func(t *testing.T, s *Storage) ([]*raftpb.Entry, *raftpb.HardState) {
				e := entries(before+1, before+1, 1, 1500)
				mustSave(t, s, nil, e)
				return append(entries(1, before, 1, entrySize), e...), hardState(1, 1, before)
			},
			zero: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			smallSegments(t, 8<<10)
			orig := t.TempDir()
			cfg := testConfig(t, orig)
			s := mustCreate(t, cfg, []byte("md"))
			for i := uint64(1); i <= before; i++ {
				mustSave(t, s, hardState(1, 1, i), entries(i, i, 1, entrySize))
			}
			wholeEnts, wholeHS := tt.last(t, s)
			mustClose(t, s)
			tornEnts, tornHS := entries(1, before, 1, entrySize), hardState(1, 1, before)

			segs := segmentNames(t, orig)
			if len(segs) < 2 {
				t.Fatalf("want several segments, got %d", len(segs))
			}
			rel := filepath.Join(walDirName, segs[len(segs)-1].name)
			offs := recordOffsets(t, filepath.Join(orig, rel))
			start, end := offs[len(offs)-2], offs[len(offs)-1]
			info, err := os.Stat(filepath.Join(orig, rel))
			if err != nil {
				t.Fatal(err)
			}
			size := info.Size()
			t.Logf("last record of %s spans [%d, %d); file size %d", rel, start, end, size)

			var cuts []int64
			if tt.zero {
				cuts = append(cuts, start)
				for off := (start/sectorBytes + 1) * sectorBytes; off < end; off += sectorBytes {
					cuts = append(cuts, off)
				}
				cuts = append(cuts, end)
			} else {
				// Every byte of the record and of the sector after it,
				// then a stride through the preallocated zeros.
				step := int64(1)
				if testing.Short() {
					step = 13
				}
				for off := start; off <= size; off++ {
					if off <= end+sectorBytes && (off-start)%step == 0 || off%61 == 0 || off == end || off == size {
						cuts = append(cuts, off)
					}
				}
			}
			whole := 0
			files := readFiles(t, orig)
			dir := t.TempDir()
			for _, off := range cuts {
				restoreFiles(t, dir, files)
				tear(t, filepath.Join(dir, rel), off, tt.zero)

				// Thousands of opens: log nothing, fsync nothing.
				cfg := Config{Dir: dir, WAL: noSyncWAL{EtcdWAL(nil)}}
				s, loaded, err := Open(cfg)
				if err != nil {
					t.Fatalf("torn at %d: Open: %v", off, err)
				}
				wantEnts, wantHS := tornEnts, tornHS
				if len(loaded.Entries) == len(wholeEnts) && proto2Equal(loaded.HardState, wholeHS) || off >= end {
					wantEnts, wantHS = wholeEnts, wholeHS
					whole++
				}
				if off == start && len(loaded.Entries) == len(wholeEnts) && proto2Equal(loaded.HardState, wholeHS) {
					t.Errorf("torn at %d: the record starting there was read back", off)
				}
				checkLoaded(t, loaded, []byte("md"), nil, wantHS, wantEnts)

				// The repaired WAL takes new records and opens again.
				next := uint64(len(loaded.Entries)) + 1
				mustSave(t, s, hardState(3, 3, next), entries(next, next, 3, 10))
				mustClose(t, s)
				s, reloaded := mustOpen(t, cfg)
				checkLoaded(t, reloaded, []byte("md"), nil, hardState(3, 3, next), append(wantEnts, entries(next, next, 3, 10)...))
				mustClose(t, s)
				if t.Failed() {
					t.Fatalf("torn at %d", off)
				}
			}
			t.Logf("%d tears, %d left the last record whole", len(cuts), whole)
		})
	}
}

func proto2Equal(a, b *raftpb.HardState) bool {
	return a.GetTerm() == b.GetTerm() && a.GetVote() == b.GetVote() && a.GetCommit() == b.GetCommit()
}

// tear truncates the file at off, or zeroes it from off to its end.
func tear(t *testing.T, path string, off int64, zero bool) {
	t.Helper()
	if !zero {
		if err := os.Truncate(path, off); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, info.Size()-off), off); err != nil {
		t.Fatal(err)
	}
}

// noSyncWAL is etcd's WAL without fsync, for tests that open thousands of
// copies and crash none of them.
type noSyncWAL struct{ WALFactory }

func (f noSyncWAL) Create(dir string, metadata []byte) (WAL, error) {
	w, err := f.WALFactory.Create(dir, metadata)
	if err == nil {
		w.(*wal.WAL).SetUnsafeNoFsync()
	}
	return w, err
}

func (f noSyncWAL) Open(dir string, at *walpb.Snapshot) (WAL, error) {
	w, err := f.WALFactory.Open(dir, at)
	if err == nil {
		w.(*wal.WAL).SetUnsafeNoFsync()
	}
	return w, err
}

// readFiles reads every file under dir, by path relative to dir.
func readFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		files[rel] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// restoreFiles makes dir hold exactly files. It rewrites files in place
// rather than copying a fresh directory: creating and removing directories
// thousands of times is what made this test slow.
func restoreFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if _, ok := files[rel]; !ok && err == nil {
			err = os.Remove(path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel, b := range files {
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}
