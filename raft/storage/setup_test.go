package storage

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testWriter sends log lines to t.Log, so they show only when a test fails.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testConfig(t testing.TB, dir string) Config {
	t.Helper()
	return Config{
		Dir:    dir,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

func mustCreate(t testing.TB, cfg Config, metadata []byte) *Storage {
	t.Helper()
	s, err := Create(cfg, metadata)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	return s
}

func mustOpen(t testing.TB, cfg Config) (*Storage, *Loaded) {
	t.Helper()
	s, l, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, l
}

func mustClose(t testing.TB, s *Storage) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func mustSave(t testing.TB, s *Storage, hs *raftpb.HardState, ents []*raftpb.Entry) {
	t.Helper()
	if err := s.Save(hs, ents); err != nil {
		t.Fatalf("Save: %v", err)
	}
}

func mustSaveSnapshot(t testing.TB, s *Storage, snap *raftpb.Snapshot) {
	t.Helper()
	if err := s.SaveSnapshot(snap); err != nil {
		t.Fatalf("SaveSnapshot(index %d): %v", snap.GetMetadata().GetIndex(), err)
	}
}

func entry(index, term uint64, data []byte) *raftpb.Entry {
	return &raftpb.Entry{
		Index: proto.Uint64(index),
		Term:  proto.Uint64(term),
		Type:  raftpb.EntryNormal.Enum(),
		Data:  data,
	}
}

// entries makes entries first..last of the given term, each with size bytes
// of payload that depend on the index.
func entries(first, last, term uint64, size int) []*raftpb.Entry {
	var ents []*raftpb.Entry
	for i := first; i <= last; i++ {
		ents = append(ents, entry(i, term, payload(i, size)))
	}
	return ents
}

func payload(seed uint64, size int) []byte {
	b := make([]byte, size)
	x := seed*0x9e3779b97f4a7c15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
	return b
}

func hardState(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(commit)}
}

func snapshot(index, term uint64, data []byte) *raftpb.Snapshot {
	return &raftpb.Snapshot{
		Data: data,
		Metadata: &raftpb.SnapshotMetadata{
			Index:     proto.Uint64(index),
			Term:      proto.Uint64(term),
			ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}},
		},
	}
}

// smallSegments makes the WAL cut segments of size bytes for this test.
// Tests that call it must not run in parallel.
func smallSegments(t testing.TB, size int64) {
	t.Helper()
	old := wal.SegmentSizeBytes
	wal.SegmentSizeBytes = size
	t.Cleanup(func() { wal.SegmentSizeBytes = old })
}

func checkLoaded(t testing.TB, got *Loaded, metadata []byte, snap *raftpb.Snapshot, hs *raftpb.HardState, ents []*raftpb.Entry) {
	t.Helper()
	if !bytes.Equal(got.Metadata, metadata) {
		t.Errorf("metadata = %q, want %q", got.Metadata, metadata)
	}
	if snap == nil {
		if got.Snapshot != nil {
			t.Errorf("snapshot at index %d, want none", got.Snapshot.GetMetadata().GetIndex())
		}
	} else if !proto.Equal(got.Snapshot, snap) {
		t.Errorf("snapshot = index %d term %d (%d bytes), want index %d term %d (%d bytes)",
			got.Snapshot.GetMetadata().GetIndex(), got.Snapshot.GetMetadata().GetTerm(), len(got.Snapshot.GetData()),
			snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm(), len(snap.GetData()))
	}
	if hs == nil {
		hs = &raftpb.HardState{}
	}
	if !proto.Equal(got.HardState, hs) {
		t.Errorf("hard state = %v, want %v", got.HardState, hs)
	}
	checkEntries(t, got.Entries, ents)
}

func checkEntries(t testing.TB, got, want []*raftpb.Entry) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("got %d entries (%s), want %d (%s)", len(got), span(got), len(want), span(want))
		return
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("entry %d: got index %d term %d, want index %d term %d (or payloads differ)",
				i, got[i].GetIndex(), got[i].GetTerm(), want[i].GetIndex(), want[i].GetTerm())
			return
		}
	}
}

func span(ents []*raftpb.Entry) string {
	if len(ents) == 0 {
		return "none"
	}
	return strconv.FormatUint(ents[0].GetIndex(), 10) + ".." + strconv.FormatUint(ents[len(ents)-1].GetIndex(), 10)
}

// copyDir copies a Storage directory, as a crash would leave it: what the
// WAL had not flushed is not there.
func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", src, dst, err)
	}
}

func segmentNames(t testing.TB, dir string) []segment {
	t.Helper()
	segs, err := listSegments(filepath.Join(dir, walDirName))
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

func snapshotNames(t testing.TB, dir string) []snapFile {
	t.Helper()
	snaps, err := listSnapshots(filepath.Join(dir, snapDirName))
	if err != nil {
		t.Fatal(err)
	}
	return snaps
}

// recordOffsets decodes a WAL segment with etcd's decoder and returns the
// offset where each record starts, followed by the offset where the last
// one ends.
func recordOffsets(t testing.TB, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := wal.NewDecoder(fileutil.NewFileReader(f))
	offs := []int64{0}
	rec := &walpb.Record{}
	for {
		err := dec.Decode(rec)
		if err == io.EOF {
			return offs
		}
		if err != nil {
			t.Fatalf("decode %s: %v", path, err)
		}
		if rec.GetType() == wal.CrcType {
			dec.UpdateCRC(rec.GetCrc())
		}
		offs = append(offs, dec.LastOffset())
	}
}
