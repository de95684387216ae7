package bench

import (
	"math"
	"reflect"
	"testing"
	"time"
)

func hist(ds ...time.Duration) *Histogram {
	h := &Histogram{}
	for _, d := range ds {
		h.Record(d)
	}
	return h
}

// ones returns the latencies 1 ms, 2 ms, ... n ms, in reverse order, so
// that the histogram has to sort them.
func ones(n int) []time.Duration {
	ds := make([]time.Duration, 0, n)
	for i := n; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	return ds
}

func TestPercentile(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample, p0", []time.Duration{7 * ms}, 0, 7 * ms},
		{"one sample, p50", []time.Duration{7 * ms}, 50, 7 * ms},
		{"one sample, p100", []time.Duration{7 * ms}, 100, 7 * ms},
		{"two, p50 is the lower", []time.Duration{2 * ms, 1 * ms}, 50, 1 * ms},
		{"two, p50.1 is the upper", []time.Duration{2 * ms, 1 * ms}, 50.1, 2 * ms},
		{"ten, p90", ones(10), 90, 9 * ms},
		{"ten, p91", ones(10), 91, 10 * ms},
		{"hundred, p50", ones(100), 50, 50 * ms},
		{"hundred, p99", ones(100), 99, 99 * ms},
		{"thousand, p99.9 (floating point)", ones(1000), 99.9, 999 * ms},
		{"thousand, p99", ones(1000), 99, 990 * ms},
		{"thousand, p0.1", ones(1000), 0.1, 1 * ms},
		{"ten thousand, p99.9", ones(10000), 99.9, 9990 * ms},
		{"below 0 is the minimum", ones(10), -5, 1 * ms},
		{"above 100 is the maximum", ones(10), 150, 10 * ms},
		{"ties", []time.Duration{5 * ms, 5 * ms, 5 * ms, 9 * ms}, 75, 5 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hist(tt.samples...).Percentile(tt.p); got != tt.want {
				t.Errorf("Percentile(%v) of %d samples = %v, want %v", tt.p, len(tt.samples), got, tt.want)
			}
		})
	}
}

func TestMinMaxMeanCount(t *testing.T) {
	tests := []struct {
		name           string
		samples        []time.Duration
		thenZero       bool // record a 0 after reading the maximum
		min, max, mean time.Duration
		count          int
	}{
		{"empty", nil, false, 0, 0, 0, 0},
		{"one", []time.Duration{3}, false, 3, 3, 3, 1},
		{"several", []time.Duration{4, 1, 7}, false, 1, 7, 4, 3},
		{"a record after a read sorts again", []time.Duration{4, 1, 7}, true, 0, 7, 3, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hist(tt.samples...)
			if tt.thenZero {
				_ = h.Max()
				h.Record(0)
			}
			if h.Min() != tt.min || h.Max() != tt.max || h.Mean() != tt.mean || h.Count() != tt.count {
				t.Errorf("min %v max %v mean %v count %d, want %v %v %v %d",
					h.Min(), h.Max(), h.Mean(), h.Count(), tt.min, tt.max, tt.mean, tt.count)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	a := hist(ones(10)...)
	_ = a.Percentile(50) // sorted before the merge
	a.Merge(hist(11*time.Millisecond, 12*time.Millisecond))
	a.Merge(nil)
	a.Merge(&Histogram{})
	if a.Count() != 12 || a.Max() != 12*time.Millisecond || a.Percentile(50) != 6*time.Millisecond {
		t.Errorf("after merging: count %d max %v p50 %v, want 12, 12ms, 6ms", a.Count(), a.Max(), a.Percentile(50))
	}
	if want := 78 * time.Millisecond / 12; a.Mean() != want {
		t.Errorf("mean %v, want %v", a.Mean(), want)
	}
}

func TestBucketBound(t *testing.T) {
	us, ms := time.Microsecond, time.Millisecond
	tests := []struct {
		i    int
		want time.Duration
	}{
		{0, 1 * us}, {1, 2 * us}, {2, 5 * us}, {3, 10 * us}, {4, 20 * us}, {5, 50 * us},
		{9, 1 * ms}, {10, 2 * ms}, {11, 5 * ms}, {18, time.Second}, {26, 500 * time.Second},
		{60, math.MaxInt64}, {1000, math.MaxInt64},
	}
	for _, tt := range tests {
		if got := bucketBound(tt.i); got != tt.want {
			t.Errorf("bucketBound(%d) = %v, want %v", tt.i, got, tt.want)
		}
	}
	// The scale only grows.
	for i := 1; i < 70; i++ {
		if bucketBound(i) < bucketBound(i-1) {
			t.Fatalf("bucketBound(%d) = %v < bucketBound(%d) = %v", i, bucketBound(i), i-1, bucketBound(i-1))
		}
	}
}

func TestBuckets(t *testing.T) {
	us, ms := time.Microsecond, time.Millisecond
	tests := []struct {
		name    string
		samples []time.Duration
		want    []Bucket
	}{
		{"empty", nil, nil},
		{"zero goes to the first bucket", []time.Duration{0}, []Bucket{{1 * us, 1}}},
		{"a bound belongs to its bucket", []time.Duration{2 * ms}, []Bucket{{2 * ms, 1}}},
		{"just above a bound goes to the next", []time.Duration{2*ms + 1}, []Bucket{{5 * ms, 1}}},
		{"empty buckets between are kept", []time.Duration{900 * us, 1 * ms, 3 * ms, 40 * ms},
			[]Bucket{{1 * ms, 2}, {2 * ms, 0}, {5 * ms, 1}, {10 * ms, 0}, {20 * ms, 0}, {50 * ms, 1}}},
		{"no bucket beyond the largest", ones(10),
			[]Bucket{{1 * ms, 1}, {2 * ms, 1}, {5 * ms, 3}, {10 * ms, 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := hist(tt.samples...)
			got := h.Buckets()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Buckets() = %v, want %v", got, tt.want)
			}
			sum := 0
			for _, b := range got {
				sum += b.Count
			}
			if sum != h.Count() {
				t.Errorf("buckets hold %d latencies, the histogram %d", sum, h.Count())
			}
		})
	}
}

func TestRate(t *testing.T) {
	s := time.Second
	p := &Phase{marks: []time.Duration{1 * s, 2 * s, 4 * s, 0, 8 * s}}
	tests := []struct {
		from, to int64
		want     float64
		ok       bool
	}{
		{0, 1000, 1000, true},
		{0, 3000, 750, true},
		{1000, 3000, 2000.0 / 3, true},
		{3000, 5000, 500, true},
		{0, 4000, 0, false},    // a mark missing
		{0, 6000, 0, false},    // beyond the run
		{0, 1500, 0, false},    // not a multiple of MarkEvery
		{2000, 1000, 0, false}, // backwards
		{1000, 1000, 0, false}, // empty interval
	}
	for _, tt := range tests {
		got, ok := p.Rate(tt.from, tt.to)
		if ok != tt.ok || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("Rate(%d, %d) = %v, %v; want %v, %v", tt.from, tt.to, got, ok, tt.want, tt.ok)
		}
	}
}
