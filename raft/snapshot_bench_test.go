package raft_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/rafttest"
	"github.com/shoal-project/shoal/store"
)

// BenchmarkSnapshotOfStore measures what a snapshot of a store of N
// objects of about 256 B costs on loopback (N from SHOAL_BENCH_OBJECTS,
// default 100,000): taking it on the leader (write, save), a new member
// catching up through it (send, receive, restore), and that member's
// restart from it (read, restore). Reported per phase: its seconds, the bytes
// allocated by the whole process, and the peak heap in use and peak RSS
// above what they were when the phase began (sampled every 5 ms).
//
//	SHOAL_BENCH_OBJECTS=300000 go test -run '^$' -bench SnapshotOfStore -benchtime 1x ./raft/
func BenchmarkSnapshotOfStore(b *testing.B) {
	n := 100_000
	if v := os.Getenv("SHOAL_BENCH_OBJECTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		benchmarkSnapshotOfStore(b, n)
	}
}

func benchmarkSnapshotOfStore(b *testing.B, n int) {
	c := rafttest.NewCluster(b, 1, rafttest.Options{
		SnapshotInterval: 1 << 40, LogEntriesForSlowFollowers: 1, Timeout: 5 * time.Minute,
		NewStateMachine: func(m *rafttest.Member) raft.StateMachine {
			s, err := store.New(store.DefaultConfig(), proposer(func(ctx context.Context, p []byte) (any, error) {
				return m.Node().ProposeValue(ctx, p)
			}))
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	})
	leader := c.Leader()
	spec := []byte(`{"image": "registry.example/app:1.0", "pad": "` + strings.Repeat("x", 150) + `"}`)
	_, err := leader.SM().(*store.Store).Batch(context.Background(), func(bt *store.Batch) error {
		for i := range n {
			if err := bt.Update(func(tx store.Tx) error {
				_, err := tx.Create(&api.Object{Kind: "service", Name: fmt.Sprintf("svc-%07d", i), Spec: spec})
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	st, err := leader.Node().Status()
	if err != nil {
		b.Fatal(err)
	}

	measure(b, "take", func() {
		leader.Node().RequestSnapshot()
		c.WaitFor("the snapshot", func() bool { return newestSnapshotFile(leader.Dir) >= st.Applied })
	})
	var joined *rafttest.Member
	measure(b, "catch-up", func() { joined = c.AddMember() })
	if err := joined.Stop(); err != nil {
		b.Fatal(err)
	}
	measure(b, "restart", func() {
		joined.Restart()
		c.WaitApplied(leader.Node().Status)
	})
	if _, want := leader.SM().(*store.Store).Hash(); func() string { _, h := joined.SM().(*store.Store).Hash(); return h }() != want {
		b.Fatal("the restarted member's store differs from the leader's")
	}
}

type proposer func(ctx context.Context, payload []byte) (any, error)

func (p proposer) ProposeValue(ctx context.Context, payload []byte) (any, error) {
	return p(ctx, payload)
}

// measure runs phase and reports the bytes allocated meanwhile and the
// peaks of heap and RSS above where they started.
func measure(b *testing.B, name string, phase func()) {
	b.Helper()
	runtime.GC()
	heap0, rss0 := heapInUse(), rss()
	var peakHeap, peakRSS uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			peakHeap, peakRSS = max(peakHeap, heapInUse()), max(peakRSS, rss())
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	start := time.Now()
	phase()
	took := time.Since(start)
	runtime.ReadMemStats(&m1)
	close(stop)
	wg.Wait()
	mib := func(v uint64) float64 { return float64(v) / (1 << 20) }
	b.ReportMetric(took.Seconds(), name+"-s")
	b.ReportMetric(mib(m1.TotalAlloc-m0.TotalAlloc), name+"-alloc-MiB")
	b.ReportMetric(mib(max(peakHeap, heap0)-heap0), name+"-peak-heap-MiB")
	b.ReportMetric(mib(max(peakRSS, rss0)-rss0), name+"-peak-rss-MiB")
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

func heapInUse() uint64 {
	metrics.Read(heapSample)
	return heapSample[0].Value.Uint64()
}

// rss returns the resident set size of the process, 0 where /proc is
// missing.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(fields[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// newestSnapshotFile returns the index of the newest snapshot file in dir's
// snap/, 0 if there is none.
func newestSnapshotFile(dir string) uint64 {
	files, _ := filepath.Glob(filepath.Join(dir, "snap", "*.snap"))
	var newest uint64
	for _, f := range files {
		var term, index uint64
		if _, err := fmt.Sscanf(filepath.Base(f), "%016x-%016x.snap", &term, &index); err == nil {
			newest = max(newest, index)
		}
	}
	return newest
}
