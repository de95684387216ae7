package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// watchGroup is the watchers of an OpWatch run.
type watchGroup struct {
	streams []WatchStream
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	closing atomic.Bool
	start   time.Time
	last    atomic.Int64 // Unix nanoseconds of the last change received
	counts  []atomic.Int64
	hists   []Histogram
	errs    []string // the code that ended a watch early, or ""; read once all ended
	failed  []atomic.Bool
}

// startWatches opens cfg.Watchers watches over the connections, of the
// names the run's puts write, and starts receiving.
func (r *runner) startWatches(ctx context.Context) (*watchGroup, error) {
	prefix := r.cfg.Prefix
	if r.cfg.KeySpace == 0 {
		prefix = r.newPrefix()
	}
	wctx, cancel := context.WithCancel(ctx)
	n := r.cfg.Watchers
	g := &watchGroup{cancel: cancel, counts: make([]atomic.Int64, n), hists: make([]Histogram, n), errs: make([]string, n), failed: make([]atomic.Bool, n)}
	for i := range n {
		s, err := r.targets[i%len(r.targets)].(Watchable).Watch(wctx, prefix)
		if err != nil {
			for _, s := range g.streams {
				s.Close()
			}
			cancel()
			return nil, fmt.Errorf("bench: watch %d: %w", i+1, err)
		}
		g.streams = append(g.streams, s)
	}
	for i, s := range g.streams {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for {
				_, val, err := s.Next()
				if err != nil {
					if !g.closing.Load() && ctx.Err() == nil {
						g.errs[i] = Code(err)
						g.failed[i].Store(true)
					}
					return
				}
				now := time.Now()
				if ts, ok := stampOf(val); ok {
					g.hists[i].Record(now.Sub(ts))
				}
				g.counts[i].Add(1)
				g.last.Store(now.UnixNano())
			}
		}()
	}
	g.start = time.Now()
	return g, nil
}

// finish waits until every watch that still runs received puts changes,
// or for at most wait (10 s when 0) without a change, then ends the
// watches.
func (g *watchGroup) finish(ctx context.Context, puts int64, wait time.Duration) *WatchResult {
	if wait <= 0 {
		wait = 10 * time.Second
	}
	lastSeen, lastChange := g.total(), time.Now()
	for ctx.Err() == nil && !g.caughtUp(puts) {
		if n := g.total(); n != lastSeen {
			lastSeen, lastChange = n, time.Now()
		} else if time.Since(lastChange) > wait {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	g.closing.Store(true)
	for _, s := range g.streams {
		s.Close()
	}
	g.cancel()
	g.wg.Wait()

	w := &WatchResult{Watchers: len(g.streams), Expected: puts * int64(len(g.streams)),
		Latency: &Histogram{}, ErrorsByCode: map[string]int64{}}
	for i := range g.streams {
		w.Events += g.counts[i].Load()
		w.Latency.Merge(&g.hists[i])
		if g.errs[i] != "" {
			w.Errors++
			w.ErrorsByCode[g.errs[i]]++
		}
	}
	if last := g.last.Load(); last > 0 {
		w.Elapsed = time.Unix(0, last).Sub(g.start)
	}
	return w
}

func (g *watchGroup) total() int64 {
	var n int64
	for i := range g.counts {
		n += g.counts[i].Load()
	}
	return n
}

// caughtUp tells whether every watch still running received n changes.
func (g *watchGroup) caughtUp(n int64) bool {
	for i := range g.counts {
		if g.counts[i].Load() < n && !g.failed[i].Load() {
			return false
		}
	}
	return true
}
