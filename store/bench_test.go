package store_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/store"
)

// benchObjects is the size of the snapshot benchmark; SHOAL_BENCH_OBJECTS
// overrides it for a quicker run.
func benchObjects(b *testing.B) int {
	if v := os.Getenv("SHOAL_BENCH_OBJECTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	return 1_000_000
}

// object256 returns object i of n, whose encoding is 256 bytes. Ids grow
// with i but are spread over the key space as random ids are; names follow
// another order (a permutation of i), as they do in life, so that the name
// index is not filled in order.
func object256(i, n int) *api.Object {
	o := &api.Object{
		Kind:      "service",
		Id:        fmt.Sprintf("%016x%010d", uint64(i)*(math.MaxUint64/uint64(n)), i),
		Name:      fmt.Sprintf("svc-%07d", (i*7919)%n),
		Labels:    map[string]string{"shard": strconv.Itoa(i % 16)},
		Version:   uint64(i/1000 + 1),
		CreatedAt: stampOf(time.Unix(1700000000, 0)),
		UpdatedAt: stampOf(time.Unix(1700000000+int64(i), 0)),
	}
	o.Spec = make([]byte, 256-proto.Size(o)-3)
	if n := proto.Size(o); n != 256 {
		o.Spec = o.Spec[:len(o.Spec)+256-n]
	}
	return o
}

// writeSyntheticSnapshot streams a snapshot of n objects of 256 B to path,
// in the documented format, without building a store.
func writeSyntheticSnapshot(b *testing.B, path string, n int) uint64 {
	if n%7919 == 0 {
		b.Fatalf("%d objects: names would not be distinct", n)
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	crc := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	w := bufio.NewWriterSize(io.MultiWriter(f, crc), 1<<20)
	index := uint64(n/1000 + 1)
	w.WriteString("SHOALSNP")
	put := func(rec *api.StoreSnapshotRecord) {
		enc, err := proto.Marshal(rec)
		if err != nil {
			b.Fatal(err)
		}
		w.Write(binary.AppendUvarint(nil, uint64(len(enc))))
		w.Write(enc)
	}
	put(&api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Header{Header: &api.StoreSnapshotHeader{Format: 1, Index: index}}})
	for i := range n {
		put(&api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Object{Object: object256(i, n)}})
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	put(&api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Trailer{Trailer: &api.StoreSnapshotTrailer{Objects: uint64(n), Crc32C: crc.Sum32()}}})
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return index
}

func restoreFile(b *testing.B, s *store.Store, index uint64, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := s.Restore(index, f); err != nil {
		b.Fatal(err)
	}
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// BenchmarkSnapshotRoundTrip writes a snapshot of a store of 1,000,000
// objects of 256 B to a file and restores it into another store. Reported:
// the seconds of each half, the snapshot's size, the bytes allocated while
// writing (streaming: about nothing per object) and restoring, and the
// live heap of one restored store.
//
//	go test -run '^$' -bench SnapshotRoundTrip -benchtime 1x -benchmem ./store/
func BenchmarkSnapshotRoundTrip(b *testing.B) {
	n := benchObjects(b)
	dir := b.TempDir()
	seed := filepath.Join(dir, "seed.snap")
	index := writeSyntheticSnapshot(b, seed, n)
	src, err := store.New(store.DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	before := heapAlloc()
	restoreFile(b, src, index, seed)
	storeHeap := heapAlloc() - before
	_, wantHash := src.Hash()

	path := filepath.Join(dir, "bench.snap")
	var writeTime, restoreTime time.Duration
	var writeAlloc, restoreAlloc uint64
	var size int64
	b.ResetTimer()
	for b.Loop() {
		start, alloc := time.Now(), totalAlloc()
		write, err := src.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(path)
		if err != nil {
			b.Fatal(err)
		}
		if err := write(f); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		writeTime += time.Since(start)
		writeAlloc += totalAlloc() - alloc

		start, alloc = time.Now(), totalAlloc()
		dst, err := store.New(store.DefaultConfig(), nil)
		if err != nil {
			b.Fatal(err)
		}
		restoreFile(b, dst, index, path)
		restoreTime += time.Since(start)
		restoreAlloc += totalAlloc() - alloc

		b.StopTimer()
		if _, got := dst.Hash(); got != wantHash {
			b.Fatal("restored store differs")
		}
		st, _ := os.Stat(path)
		size = st.Size()
		dst.Close()
		b.StartTimer()
	}
	ops := float64(b.N)
	b.ReportMetric(writeTime.Seconds()/ops, "write-s/op")
	b.ReportMetric(restoreTime.Seconds()/ops, "restore-s/op")
	b.ReportMetric(float64(size)/(1<<20), "snapshot-MiB")
	b.ReportMetric(float64(writeAlloc)/ops/(1<<20), "write-alloc-MiB/op")
	b.ReportMetric(float64(restoreAlloc)/ops/(1<<20), "restore-alloc-MiB/op")
	b.ReportMetric(float64(storeHeap)/(1<<20), "store-heap-MiB")
	b.ReportMetric(float64(n), "objects")
}

// BenchmarkUpdate measures accepted single-create Updates through the fake
// log, from one goroutine and from many, with no simulated round trip and
// with 1 ms, where running many at once is what pays.
//
//	go test -run '^$' -bench Update -benchmem ./store/
func BenchmarkUpdate(b *testing.B) {
	for _, latency := range []time.Duration{0, time.Millisecond} {
		for _, parallel := range []bool{false, true} {
			name := fmt.Sprintf("latency=%s/single", latency)
			if parallel {
				name = fmt.Sprintf("latency=%s/concurrent=%d", latency, 64*runtime.GOMAXPROCS(0))
			}
			b.Run(name, func(b *testing.B) {
				cfg := store.DefaultConfig()
				cfg.WatchHistory = 1024
				l := newFakeLog(b, 1, cfg)
				l.latency = latency
				s := l.replicas[0].store
				var seq atomic.Int64
				create := func() {
					i := seq.Add(1)
					_, err := s.Update(context.Background(), func(tx store.Tx) error {
						_, err := tx.Create(&api.Object{Kind: "service", Name: fmt.Sprint("s", i), Spec: make([]byte, 200)})
						return err
					})
					if err != nil {
						b.Error(err)
					}
				}
				start := time.Now()
				if parallel {
					b.SetParallelism(64)
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							create()
						}
					})
				} else {
					for b.Loop() {
						create()
					}
				}
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "writes/s")
			})
		}
	}
}

// BenchmarkView measures read transactions on a store of 100,000 objects
// while nothing else runs.
//
//	go test -run '^$' -bench View -benchmem ./store/
func BenchmarkView(b *testing.B) {
	const n = 100_000
	dir := b.TempDir()
	path := filepath.Join(dir, "seed.snap")
	index := writeSyntheticSnapshot(b, path, n)
	s, err := store.New(store.DefaultConfig(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	restoreFile(b, s, index, path)
	id := object256(n/2, n).GetId()
	name := object256(n/2, n).GetName()
	b.Run("get-by-id", func(b *testing.B) {
		for b.Loop() {
			s.View(func(tx store.ReadTx) {
				if _, err := tx.Get(id); err != nil {
					b.Fatal(err)
				}
			})
		}
	})
	b.Run("get-by-name", func(b *testing.B) {
		for b.Loop() {
			s.View(func(tx store.ReadTx) {
				if _, err := tx.GetByName("service", name); err != nil {
					b.Fatal(err)
				}
			})
		}
	})
	b.Run("get-by-id-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				s.View(func(tx store.ReadTx) {
					if _, err := tx.Get(id); err != nil {
						b.Error(err)
					}
				})
			}
		})
	})
	b.Run("list-prefix-100", func(b *testing.B) {
		sel := store.Selector{Kind: "service", NamePrefix: name[:len(name)-2]}
		for b.Loop() {
			s.View(func(tx store.ReadTx) {
				if objs, err := tx.List(sel); err != nil || len(objs) != 100 {
					b.Fatal(len(objs), err)
				}
			})
		}
	})
	b.Run("list-label-6250", func(b *testing.B) {
		sel := store.Selector{Kind: "service", Labels: map[string]string{"shard": "3"}}
		for b.Loop() {
			s.View(func(tx store.ReadTx) {
				if objs, err := tx.List(sel); err != nil || len(objs) != n/16 {
					b.Fatal(len(objs), err)
				}
			})
		}
	})
}

// BenchmarkApply measures Apply of committed entries, each one action, on a
// store that holds 100,000 objects of 256 B: the CPU, bytes and
// allocations of applying one entry, which every manager pays for every
// write.
//
//	go test -run '^$' -bench Apply -benchmem ./store/
func BenchmarkApply(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "seed.snap")
	index := writeSyntheticSnapshot(b, path, n)
	encode := func(kind api.StoreActionKind, o *api.Object, requestID ...byte) []byte {
		payload, err := proto.Marshal(&api.StoreActions{Actions: []*api.StoreAction{{Kind: kind, Object: o}}, RequestId: requestID})
		if err != nil {
			b.Fatal(err)
		}
		return payload
	}
	for _, tc := range []struct {
		name    string
		payload func(i int) []byte
		fresh   bool // payloads made anew each round: they must not repeat
	}{
		{"update", func(i int) []byte {
			o := object256(i%n, n)
			o.Version = 0
			return encode(api.StoreActionKind_STORE_ACTION_KIND_UPDATE, o)
		}, false},
		{"create", func(i int) []byte {
			o := object256(i%n, n)
			o.Version, o.Id, o.Name = 0, fmt.Sprintf("new%023d", i), fmt.Sprintf("new-%d", i)
			return encode(api.StoreActionKind_STORE_ACTION_KIND_CREATE, o)
		}, true},
		// As a client sends them: with a request ID of 16 bytes, which the
		// store remembers (and, once it holds RememberedRequests, forgets
		// the oldest).
		{"update-with-request-id", func(i int) []byte {
			o := object256(i%n, n)
			o.Version = 0
			return encode(api.StoreActionKind_STORE_ACTION_KIND_UPDATE, o, []byte(fmt.Sprintf("%016d", i))...)
		}, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := store.New(store.DefaultConfig(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			restoreFile(b, s, index, path)
			payloads := make([][]byte, 4096)
			for i := range payloads {
				payloads[i] = tc.payload(i)
			}
			next, made := index, len(payloads)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				next++
				if i == len(payloads) {
					i = 0
					if tc.fresh {
						b.StopTimer()
						for j := range payloads {
							payloads[j] = tc.payload(made + j)
						}
						made += len(payloads)
						b.StartTimer()
					}
				}
				if _, err := s.Apply(next, payloads[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// Updates applied in runs of 64, as the raft node applies the
	// entries of a busy Ready: one op is one entry.
	for _, withIDs := range []bool{false, true} {
		name := "update-runs-of-64"
		if withIDs {
			name += "-with-request-id"
		}
		b.Run(name, func(b *testing.B) {
			s, err := store.New(store.DefaultConfig(), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			restoreFile(b, s, index, path)
			const run = 64
			payloads := make([][]byte, 4096)
			made := 0
			fill := func() {
				for i := range payloads {
					o := object256(i%n, n)
					o.Version = 0
					var id []byte
					if withIDs {
						id = []byte(fmt.Sprintf("%016d", made))
					}
					made++
					payloads[i] = encode(api.StoreActionKind_STORE_ACTION_KIND_UPDATE, o, id...)
				}
			}
			fill()
			next := index + 1
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += run {
				k := min(run, b.N-i)
				from := (i / run * run) % len(payloads)
				if withIDs && from == 0 && i > 0 { // request IDs must not repeat
					b.StopTimer()
					fill()
					b.StartTimer()
				}
				_, errs := s.ApplyBatch(next, payloads[from:from+k])
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
				next += uint64(k)
			}
		})
	}
}
