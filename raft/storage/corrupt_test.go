package storage

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// A flipped bit in a record that was written whole is damage, not a torn
// write: Open must fail with ErrCorrupt, or, where the bit is one nothing
// reads (padding), return everything intact. It must never drop records
// silently, which etcd's repair would do for a damaged length field in the
// last segment.
func TestOpenRefusesACorruptedRecord(t *testing.T) {
	smallSegments(t, 4<<10)
	orig := t.TempDir()
	cfg := testConfig(t, orig)
	s := mustCreate(t, cfg, []byte("md"))
	for i := uint64(1); i <= 160; i++ {
		mustSave(t, s, hardState(1, 1, i), entries(i, i, 1, 40))
	}
	mustClose(t, s)
	s, want := mustOpen(t, cfg)
	mustClose(t, s)
	files := readFiles(t, orig)

	segs := segmentNames(t, orig)
	if len(segs) < 3 {
		t.Fatalf("want 3 segments or more, got %d", len(segs))
	}
	for _, seg := range []segment{segs[1], segs[len(segs)-1]} {
		t.Run(seg.name, func(t *testing.T) {
			rel := filepath.Join(walDirName, seg.name)
			offs := recordOffsets(t, filepath.Join(orig, rel))
			k := len(offs) / 2
			start, end := offs[k], offs[k+1]
			t.Logf("flipping each bit of the record at [%d, %d)", start, end)

			dir := t.TempDir()
			failed, intact := 0, 0
			for bit := start * 8; bit < end*8; bit++ {
				restoreFiles(t, dir, files)
				flipBit(t, filepath.Join(dir, rel), bit)

				s, got, err := Open(Config{Dir: dir, WAL: noSyncWAL{EtcdWAL(nil)}})
				if err != nil {
					if !errors.Is(err, ErrCorrupt) {
						t.Fatalf("bit %d of byte %d: error %v, want ErrCorrupt", bit%8, bit/8, err)
					}
					failed++
					continue
				}
				intact++
				mustClose(t, s)
				checkLoaded(t, got, want.Metadata, nil, want.HardState, want.Entries)
				if t.Failed() {
					t.Fatalf("bit %d of byte %d: Open succeeded without the data", bit%8, bit/8)
				}
			}
			t.Logf("%d flips refused, %d harmless", failed, intact)
			if failed == 0 {
				t.Fatal("no flip was refused")
			}
		})
	}
}

func flipBit(t *testing.T, path string, bit int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, bit/8); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1 << (bit % 8)
	if _, err := f.WriteAt(b, bit/8); err != nil {
		t.Fatal(err)
	}
}
