package storage

import (
	"strconv"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// BenchmarkSave measures Save of 256-byte entries with the fsync that etcd's
// WAL does for every batch of entries, on the default 64 MB segments, in
// clear and encrypted.
func BenchmarkSave(b *testing.B) {
	for _, encrypted := range []bool{false, true} {
		for _, batch := range []int{1, 64} {
			name := "encrypted=" + strconv.FormatBool(encrypted) + "/batch=" + strconv.Itoa(batch)
			b.Run(name, func(b *testing.B) {
				cfg := Config{Dir: b.TempDir()}
				if encrypted {
					cfg.Cipher, _ = testKeys(b)
				}
				benchmarkSave(b, cfg, batch)
			})
		}
	}
}

func benchmarkSave(b *testing.B, cfg Config, batch int) {
	s := mustCreate(b, cfg, nil)
	defer mustClose(b, s)
	data := payload(1, 256)
	ents := make([]*raftpb.Entry, batch)
	next := uint64(1)
	b.SetBytes(int64(batch * len(data)))
	for b.Loop() {
		for i := range ents {
			ents[i] = entry(next, 1, data)
			next++
		}
		if err := s.Save(hardState(1, 1, next-1), ents); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(next-1)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkSaveSnapshot measures saving a large snapshot (a store of about
// 300,000 objects of 256 bytes takes some 130 MB) as the node does: the
// state streamed into its state file in 256 KiB writes (framed, sealed,
// fsynced, renamed into place), then the small snapshot file and the WAL
// record. It is the time a snapshot save would hold up whatever goroutine
// runs it; the allocations stay a few frames whatever the size.
func BenchmarkSaveSnapshot(b *testing.B) {
	for _, encrypted := range []bool{false, true} {
		b.Run("encrypted="+strconv.FormatBool(encrypted), func(b *testing.B) {
			cfg := Config{Dir: b.TempDir()}
			if encrypted {
				cfg.Cipher, _ = testKeys(b)
			}
			s := mustCreate(b, cfg, nil)
			defer mustClose(b, s)
			const size = 128 << 20
			chunk := payload(1, 256<<10)
			b.SetBytes(size)
			b.ReportAllocs()
			index := uint64(0)
			for b.Loop() {
				index += 10000
				w, err := s.CreateState(1, index)
				if err != nil {
					b.Fatal(err)
				}
				for range size / len(chunk) {
					if _, err := w.Write(chunk); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := w.Finish(); err != nil {
					b.Fatal(err)
				}
				if err := w.Install(); err != nil {
					b.Fatal(err)
				}
				snap := &raftpb.Snapshot{Data: make([]byte, 200), Metadata: &raftpb.SnapshotMetadata{
					Index: proto.Uint64(index), Term: proto.Uint64(1), ConfState: &raftpb.ConfState{Voters: []uint64{1}}}}
				if err := s.SaveSnapshot(snap); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
