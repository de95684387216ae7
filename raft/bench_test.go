package raft_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/raft/rafttest"
)

// BenchmarkPropose measures ProposeValue on the leader of a 3-member
// cluster on loopback gRPC, every member fsyncing its WAL, with 128-byte
// payloads: one client at a time (latency) and 64 at once (throughput).
//
//	go test -run '^$' -bench Propose -benchtime 3000x ./raft/
func BenchmarkPropose(b *testing.B) {
	for _, clients := range []int{1, 64} {
		b.Run(map[int]string{1: "clients=1", 64: "clients=64"}[clients], func(b *testing.B) {
			c := rafttest.NewCluster(b, 3, rafttest.Options{Tick: 100 * time.Millisecond})
			leader := c.Leader().Node()
			payload := make([]byte, 128)
			var mu sync.Mutex
			latencies := make([]time.Duration, 0, b.N)
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range work {
						t0 := time.Now()
						if _, err := leader.ProposeValue(context.Background(), payload); err != nil {
							b.Error(err)
							return
						}
						d := time.Since(t0)
						mu.Lock()
						latencies = append(latencies, d)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			slices.Sort(latencies)
			if len(latencies) > 0 {
				b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "proposals/s")
				b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "p50-µs")
				b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
			}
		})
	}
}
