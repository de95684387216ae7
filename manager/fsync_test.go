package manager

import (
	"testing"
	"time"
)

func TestFsyncWindowMean(t *testing.T) {
	tests := []struct {
		name    string
		samples []fsyncSample
		now     fsyncSample
		want    time.Duration
	}{
		{"no fsync yet", nil, fsyncSample{}, 0},
		{"no sample yet: since the start", nil, fsyncSample{seconds: 0.4, count: 100}, 4 * time.Millisecond},
		{"over the window", []fsyncSample{{seconds: 1, count: 1000}, {seconds: 5, count: 1100}}, fsyncSample{seconds: 11, count: 1200}, 50 * time.Millisecond},
		{"none in the window: since the start", []fsyncSample{{seconds: 2, count: 1000}}, fsyncSample{seconds: 2, count: 1000}, 2 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w fsyncWindow
			for _, s := range tt.samples {
				w.add(s)
			}
			if got := w.mean(tt.now); got != tt.want {
				t.Errorf("mean = %v, want %v", got, tt.want)
			}
		})
	}
	var w fsyncWindow
	for i := range 2 * fsyncSamples {
		w.add(fsyncSample{count: uint64(i)})
	}
	if len(w.samples) != fsyncSamples || w.samples[0].count != fsyncSamples {
		t.Errorf("the window keeps %d samples from count %d, want the last %d", len(w.samples), w.samples[0].count, fsyncSamples)
	}
}
