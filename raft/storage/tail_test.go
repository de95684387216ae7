package storage

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"google.golang.org/protobuf/proto"
)

// segmentBytes writes a small WAL and returns its first segment and the
// offsets of its records.
func segmentBytes(t testing.TB) ([]byte, []int64) {
	t.Helper()
	smallSegments(t, 64<<10)
	dir := t.TempDir()
	s := mustCreate(t, Config{Dir: dir}, []byte("md"))
	for i := uint64(1); i <= 20; i++ {
		mustSave(t, s, hardState(1, 1, i), entries(i, i, 1, 30))
	}
	mustClose(t, s)
	path := filepath.Join(dir, walDirName, segmentNames(t, dir)[0].name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b, recordOffsets(t, path)
}

func TestIntactRecordsAfter(t *testing.T) {
	b, offs := segmentBytes(t)
	end := offs[len(offs)-1]
	mid := offs[len(offs)/2]
	tests := []struct {
		name      string
		b         []byte
		base      int64
		wantFound bool
		wantAt    int64
	}{
		{name: "whole segment", b: b, wantFound: true, wantAt: 0},
		{name: "from a record in the middle", b: b[mid:], base: mid, wantFound: true, wantAt: mid},
		{name: "from inside a record", b: b[mid+3:], base: mid + 3, wantFound: true, wantAt: offs[len(offs)/2+1]},
		{name: "from the last record", b: b[offs[len(offs)-2]:], base: offs[len(offs)-2]},
		{name: "preallocated zeros", b: b[end:], base: end},
		{name: "nothing", b: nil, base: end},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			at, found := intactRecordsAfter(tt.b, tt.base)
			if found != tt.wantFound || found && at != tt.wantAt {
				t.Fatalf("intactRecordsAfter = %d, %v; want %d, %v", at, found, tt.wantAt, tt.wantFound)
			}
		})
	}
}

func TestZeroedSectorBetween(t *testing.T) {
	b := make([]byte, 2048)
	for i := range b {
		b[i] = 1
	}
	zero := func(from, to int) []byte {
		c := append([]byte(nil), b...)
		clear(c[from:to])
		return c
	}
	tests := []struct {
		name     string
		b        []byte
		from, to int64
		want     bool
	}{
		{"no zeros", b, 0, 2048, false},
		{"a whole zeroed sector", zero(512, 1024), 100, 1500, true},
		{"zeros from the start to a sector end", zero(300, 512), 300, 1000, true},
		{"zeros that stop short of a sector end", zero(600, 1000), 100, 2048, false},
		{"zeros that run to the end of the range, not of a sector", zero(1000, 1200), 100, 1200, false},
		{"a zeroed sector outside the range", zero(1024, 1536), 0, 1024, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := zeroedSectorBetween(tt.b, 0, tt.to); tt.from == 0 && got != tt.want {
				t.Fatalf("zeroedSectorBetween = %v, want %v", got, tt.want)
			}
			if got := zeroedSectorBetween(tt.b[tt.from:], tt.from, tt.to); got != tt.want {
				t.Fatalf("zeroedSectorBetween = %v, want %v", got, tt.want)
			}
		})
	}
}

// FuzzIntactRecordsAfter feeds the frame scanner arbitrary bytes, as a
// damaged disk can. It must not panic, and what it reports must be two
// well-formed frames whose checksums chain.
func FuzzIntactRecordsAfter(f *testing.F) {
	b, offs := segmentBytes(f)
	end := offs[len(offs)-1]
	f.Add(b[:end], uint16(0))
	f.Add(b[offs[3]:end], uint16(offs[3]))
	f.Add(b[offs[3]+5:end], uint16(offs[3]+5))
	f.Add([]byte{}, uint16(7))
	f.Add(make([]byte, 1024), uint16(0))
	f.Fuzz(func(t *testing.T, b []byte, base uint16) {
		at, found := intactRecordsAfter(b, int64(base))
		zeroedSectorBetween(b, int64(base), int64(base)+int64(len(b)))
		if !found {
			return
		}
		if at%frameHeaderBytes != 0 || at < int64(base) {
			t.Fatalf("found at %d: not an aligned offset after %d", at, base)
		}
		r1, next, ok := parseFrame(b, at-int64(base))
		if !ok {
			t.Fatalf("no frame at %d", at)
		}
		// What parseFrame accepts, etcd's record type decodes the same.
		var rec walpb.Record
		start := at - int64(base) + frameHeaderBytes
		n := int64(binary.LittleEndian.Uint64(b[at-int64(base):]) &^ (0xff << 56))
		if err := proto.Unmarshal(b[start:start+n], &rec); err != nil ||
			rec.GetType() != r1.typ || rec.GetCrc() != r1.crc || !bytes.Equal(rec.GetData(), r1.data) {
			t.Fatalf("frame at %d: parsed %+v, proto says %v (%v)", at, r1, &rec, err)
		}
		r2, _, ok := parseFrame(b, next)
		if !ok || r2.crc != crc32.Update(r1.crc, crcTable, r2.data) {
			t.Fatalf("frames at %d do not chain", at)
		}
	})
}
