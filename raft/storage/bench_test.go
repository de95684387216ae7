package storage

import (
	"strconv"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
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
