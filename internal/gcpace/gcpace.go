// Package gcpace bounds the garbage collector's headroom over the live heap
// of a process whose heap is mostly long-lived data, such as a manager's
// store.
//
// With GOGC=100 the heap grows to twice what is live before each
// collection, so a manager holding a million objects used twice the memory
// its store needs. A Pacer lowers GOGC as the live heap grows: the headroom
// is Floor, or MinPercent of the live heap when that is more, and never
// more than the live heap itself (GOGC 100). A small heap is collected as
// by default; a large one with less headroom, at the price of more frequent
// collections. GOGC set in the environment, or a memory limit (GOMEMLIMIT),
// leaves the collector as configured.
//
// After a burst of work, once the process goes idle, the Pacer collects
// and returns the free memory to the operating system once, so that an
// idle manager's memory is its live heap, not the garbage of its last
// burst.
//
// It owns the process's GC percentage while it runs, and forces those
// collections; it touches nothing else.
package gcpace

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Pacer sets GOGC from the live heap after each collection.
type Pacer struct {
	// Floor is the least headroom, in bytes, above the live heap.
	Floor uint64
	// MinPercent is the least GOGC: the headroom is at least this share
	// of the live heap.
	MinPercent int
	// Interval is how often the pacer looks for a new collection.
	Interval time.Duration
	Logger   *slog.Logger

	// An idle process keeps the garbage of its last burst of work, up to
	// the headroom, until its next collection, which may not come for
	// hours. Once at least ReleaseAfter bytes were allocated since the
	// last release, and then less than IdleBytes per Interval for
	// IdleIntervals in a row, Run collects and returns the free memory
	// to the operating system, once (debug.FreeOSMemory). IdleIntervals
	// 0 never does.
	IdleBytes     uint64
	IdleIntervals int
	ReleaseAfter  uint64
}

// Default is the pacer a manager runs: 256 MiB of headroom, or half the
// live heap once that is more; memory given back after 5 s of allocating
// less than 4 MiB a second, once 256 MiB were allocated since the last
// time.
func Default(log *slog.Logger) *Pacer {
	return &Pacer{Floor: 256 << 20, MinPercent: 50, Interval: time.Second, Logger: log,
		IdleBytes: 4 << 20, IdleIntervals: 5, ReleaseAfter: 256 << 20}
}

// Percent returns the GOGC for a live heap of live bytes.
func (p *Pacer) Percent(live uint64) int {
	if live == 0 {
		return 100
	}
	headroom := max(p.Floor, live*uint64(p.MinPercent)/100)
	if headroom >= live {
		return 100
	}
	return max(p.MinPercent, int(headroom*100/live))
}

// Configured reports why the collector is left alone: GOGC or GOMEMLIMIT
// set in the environment. It returns "" when the pacer may run.
func Configured() string {
	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		if _, ok := os.LookupEnv(name); ok {
			return name
		}
	}
	return ""
}

const (
	liveMetric   = "/gc/heap/live:bytes"
	cyclesMetric = "/gc/cycles/total:gc-cycles"
	allocsMetric = "/gc/heap/allocs:bytes"
)

// Run adjusts GOGC after each collection until ctx ends, then restores
// the value it found. It returns at once when Configured says the
// environment set the collector.
func (p *Pacer) Run(ctx context.Context) {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if name := Configured(); name != "" {
		log.Info("garbage collector pacing off", "set", name)
		return
	}
	initial := debug.SetGCPercent(100)
	defer debug.SetGCPercent(initial)
	s := newPaceState()
	ticker := time.NewTicker(p.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if !p.step(s, log) {
			log.Warn("garbage collector pacing off: the runtime reports no live heap")
			return
		}
	}
}

// paceState is what Run keeps between steps.
type paceState struct {
	samples []metrics.Sample
	cycles  uint64 // collections seen
	current int    // the GOGC set

	allocs       uint64 // allocated in all, at the last step
	quiet        int    // steps in a row that allocated less than IdleBytes
	sinceRelease uint64 // allocated since the last release
}

func newPaceState() *paceState {
	return &paceState{samples: []metrics.Sample{{Name: liveMetric}, {Name: cyclesMetric}, {Name: allocsMetric}}, current: 100}
}

// idle counts allocated, the bytes allocated since the last step, and
// reports whether the process has now gone idle after enough allocation
// to give memory back.
func (p *Pacer) idle(s *paceState, allocated uint64) bool {
	if p.IdleIntervals <= 0 {
		return false
	}
	s.sinceRelease += allocated
	if allocated >= p.IdleBytes {
		s.quiet = 0
		return false
	}
	s.quiet++
	if s.quiet < p.IdleIntervals || s.sinceRelease < p.ReleaseAfter {
		return false
	}
	s.sinceRelease = 0
	return true
}

// step sets GOGC from the live heap if a collection ended since the last
// step. It reports false when the runtime does not report the live heap.
func (p *Pacer) step(s *paceState, log *slog.Logger) bool {
	metrics.Read(s.samples)
	for _, sample := range s.samples {
		if sample.Value.Kind() != metrics.KindUint64 {
			return false
		}
	}
	allocs := s.samples[2].Value.Uint64()
	if p.idle(s, allocs-min(s.allocs, allocs)) {
		debug.FreeOSMemory()
		log.Debug("gave memory back after a burst", "live_bytes", s.samples[0].Value.Uint64())
		metrics.Read(s.samples) // the collection just made is seen below
	}
	s.allocs = s.samples[2].Value.Uint64()
	if c := s.samples[1].Value.Uint64(); c == s.cycles {
		return true
	} else {
		s.cycles = c
	}
	live := s.samples[0].Value.Uint64()
	if pct := p.Percent(live); pct != s.current {
		debug.SetGCPercent(pct)
		log.Debug("garbage collector percentage", "gogc", pct, "live_bytes", live)
		s.current = pct
	}
	return true
}
