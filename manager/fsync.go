package manager

import (
	"context"
	"sync"
	"time"
)

// The WAL's fsync latency that doctor reports: the mean over the last
// minute, from etcd's fsync histogram sampled every fsyncSampleEvery.
const (
	fsyncSampleEvery = 10 * time.Second
	fsyncSamples     = 7 // a minute of intervals
)

// fsyncWindow keeps the last samples of the WAL's fsync histogram.
type fsyncWindow struct {
	mu      sync.Mutex
	samples []fsyncSample // oldest first, at most fsyncSamples
}

type fsyncSample struct {
	seconds float64 // the sum of the fsyncs' durations
	count   uint64
}

// readFsyncs reads the WAL's fsync histogram (of every manager in the
// process: etcd keeps one).
func readFsyncs() fsyncSample {
	fams, err := walFsyncGatherer.Gather()
	if err != nil {
		return fsyncSample{}
	}
	for _, fam := range fams {
		if ms := fam.GetMetric(); len(ms) > 0 {
			h := ms[0].GetHistogram()
			return fsyncSample{seconds: h.GetSampleSum(), count: h.GetSampleCount()}
		}
	}
	return fsyncSample{}
}

func (w *fsyncWindow) add(s fsyncSample) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples = append(w.samples, s)
	if len(w.samples) > fsyncSamples {
		w.samples = w.samples[1:]
	}
}

// mean returns the mean fsync duration between the oldest sample and now,
// or since the start when no fsync happened in that time; 0 before the
// first fsync.
func (w *fsyncWindow) mean(now fsyncSample) time.Duration {
	w.mu.Lock()
	var from fsyncSample
	if len(w.samples) > 0 && w.samples[0].count < now.count {
		from = w.samples[0]
	}
	w.mu.Unlock()
	n := now.count - from.count
	if n == 0 {
		return 0
	}
	return time.Duration((now.seconds - from.seconds) / float64(n) * float64(time.Second))
}

// run samples the histogram until ctx ends.
func (w *fsyncWindow) run(ctx context.Context) {
	t := time.NewTicker(fsyncSampleEvery)
	defer t.Stop()
	for {
		w.add(readFsyncs())
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}
