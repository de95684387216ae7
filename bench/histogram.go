package bench

import (
	"math"
	"slices"
	"time"
)

// Histogram keeps every latency it is given, so its percentiles are exact
// (a run of a million operations holds 8 MB). The zero value is empty and
// ready; it is not safe for concurrent use: each caller records into its
// own, and Merge joins them.
type Histogram struct {
	samples []time.Duration
	sum     time.Duration
	sorted  bool
}

// Record adds one latency.
func (h *Histogram) Record(d time.Duration) {
	h.samples = append(h.samples, d)
	h.sum += d
	h.sorted = false
}

// Merge adds every latency of o.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || len(o.samples) == 0 {
		return
	}
	h.samples = append(h.samples, o.samples...)
	h.sum += o.sum
	h.sorted = false
}

// Count is the number of latencies recorded.
func (h *Histogram) Count() int { return len(h.samples) }

func (h *Histogram) sort() {
	if !h.sorted {
		slices.Sort(h.samples)
		h.sorted = true
	}
}

// Percentile returns the nearest-rank p-th percentile: the smallest
// latency that at least p percent of the latencies do not exceed. p is
// clamped to [0, 100]; 0 gives the minimum, 100 the maximum. An empty
// histogram gives 0.
func (h *Histogram) Percentile(p float64) time.Duration {
	n := len(h.samples)
	if n == 0 {
		return 0
	}
	h.sort()
	p = max(0, min(100, p))
	rank := int(math.Ceil(p / 100 * float64(n)))
	// p/100*n is computed in floating point: 99.9/100*1000 is
	// 999.0000000000001, whose ceiling would skip a rank.
	if r := float64(rank-1) * 100 / float64(n); rank > 1 && r >= p {
		rank--
	}
	if rank < 1 {
		rank = 1
	}
	return h.samples[rank-1]
}

// Min and Max are the extremes; 0 when empty.
func (h *Histogram) Min() time.Duration { return h.Percentile(0) }

// Max is the largest latency recorded.
func (h *Histogram) Max() time.Duration { return h.Percentile(100) }

// Mean is the average latency; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if len(h.samples) == 0 {
		return 0
	}
	return h.sum / time.Duration(len(h.samples))
}

// A Bucket counts the latencies above the previous bucket's UpTo and at
// most its own.
type Bucket struct {
	UpTo  time.Duration
	Count int
}

// Buckets returns the histogram on a 1-2-5 scale (1 µs, 2 µs, 5 µs, 10 µs,
// ... 1 ms, 2 ms, 5 ms, ...), from the bucket of the smallest latency to
// the one of the largest, empty buckets between them included. An empty
// histogram has none.
func (h *Histogram) Buckets() []Bucket {
	if len(h.samples) == 0 {
		return nil
	}
	h.sort()
	step := 0
	for bucketBound(step) < h.samples[0] {
		step++
	}
	var out []Bucket
	for j := 0; j < len(h.samples); step++ {
		b := Bucket{UpTo: bucketBound(step)}
		for j < len(h.samples) && h.samples[j] <= b.UpTo {
			b.Count++
			j++
		}
		out = append(out, b)
	}
	return out
}

// bucketBound is the upper bound of the i-th bucket of the 1-2-5 scale
// from 1 µs; the last one is the largest duration.
func bucketBound(i int) time.Duration {
	d := time.Microsecond
	for range i / 3 {
		if d > math.MaxInt64/10 {
			return math.MaxInt64
		}
		d *= 10
	}
	if mul := [3]time.Duration{1, 2, 5}[i%3]; d <= math.MaxInt64/mul {
		return d * mul
	}
	return math.MaxInt64
}
