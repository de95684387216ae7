package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRanges(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{rateRange([]float64{310, 461}), "310-461/s"},
		{rateRange([]float64{1400, 2100}), "1.4-2.1k/s"},
		{rateRange([]float64{900, 2100}), "900/s-2.1k/s"},
		{rateRange([]float64{526}), "526/s"},
		{rateRange([]float64{1000.2, 1000.3}), "1.0k/s"},
		{msRange([]float64{1.8, 2.8}), "1.80-2.80 ms"},
		{msRange([]float64{156, 230}), "156-230 ms"},
		{msRange([]float64{600, 1900}), "600 ms-1.90 s"},
		{msRange([]float64{1.8}), "1.80 ms"},
		{ratioRange([]float64{0.6, 0.7}), "0.60-0.70x"},
		{ratioRange([]float64{1.5, 1.5}), "1.50x"},
		{count(1_000_000), "1M"},
		{count(300_000), "300k"},
		{count(12_345), "12345"},
		{unitRange([]float64{740.4, 761}, fmtUs), "740-761 µs"},
		{unitRange([]float64{9.5, 12.25}, fmtUs), "9.50-12.2 µs"},
		{unitRange([]float64{0.414, 0.45}, fmtPct), "41-45%"},
		{unitRange([]float64{0.333}, fmtPct), "33%"},
		{unitRange([]float64{1.214, 1.3}, fmtCPUs), "1.21-1.30 CPUs"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestRowsPairRoundsAndRatios(t *testing.T) {
	shapes := []shape{allShapes[0], allShapes[2]}
	runs := []runRecord{
		{System: "shoal", Shape: "put-1-leader", Round: 1, Throughput: 300, P50Ms: 3, P99Ms: 10,
			cpuCost: cpuCost{CPUUsPerOp: 740, LeaderCPUShare: 0.45, ClientCPUs: 0.2, ClientCPUUsPerOp: 95.5}},
		{System: "etcd", Shape: "put-1-leader", Round: 1, Throughput: 600, P50Ms: 1.5, P99Ms: 5,
			cpuCost: cpuCost{CPUUsPerOp: 310, LeaderCPUShare: 0.4, ClientCPUs: 0.3, ClientCPUUsPerOp: 80}},
		{System: "shoal", Shape: "put-1-leader", Round: 2, Throughput: 450, P50Ms: 2, P99Ms: 8, Errors: 2,
			cpuCost: cpuCost{CPUUsPerOp: 760, LeaderCPUShare: 0.47, ClientCPUs: 0.25, ClientCPUUsPerOp: 98}},
		{System: "etcd", Shape: "put-1-leader", Round: 2, Throughput: 500, P50Ms: 2, P99Ms: 4,
			cpuCost: cpuCost{CPUUsPerOp: 380, LeaderCPUShare: 0.4, ClientCPUs: 0.3, ClientCPUUsPerOp: 80}},
		// A shape whose etcd run never happened (interrupted) gives no row.
		{System: "shoal", Shape: "put-64", Round: 1, Throughput: 2000, P50Ms: 30, P99Ms: 150},
	}
	rs := rows(shapes, runs)
	if len(rs) != 1 {
		t.Fatalf("%d rows, want 1: %+v", len(rs), rs)
	}
	r := rs[0]
	if got := ratioRange(r.ThroughputRatio); got != "0.50-0.90x" {
		t.Errorf("throughput ratio %s", got)
	}
	if got := ratioRange(r.P50Ratio); got != "1.00-2.00x" {
		t.Errorf("p50 ratio %s", got)
	}
	if r.ShoalErrors != 2 || r.EtcdErrors != 0 {
		t.Errorf("errors %d %d", r.ShoalErrors, r.EtcdErrors)
	}
	if got := ratioRange(r.CPURatio); got != "2.00-2.39x" {
		t.Errorf("CPU ratio %s", got)
	}
	var b bytes.Buffer
	printReport(&b, &report{Rows: rs, Options: reportOptions{Rounds: 2, ValSize: 256, EtcdTLS: true, Duration: "10s", Prefill: 10000}})
	for _, want := range []string{
		"| put, 1 client, to the leader | 300-450/s, p50 2.00-3.00 ms, p99 8.00-10.0 ms, **2 errors** | 500-600/s, p50 1.50-2.00 ms, p99 4.00-5.00 ms | 0.50-0.90x | 1.00-2.00x | 2.00x " +
			"| 740-760 µs (leader 45-47%); 310-380 µs (leader 40%); 2.00-2.39x | 0.20-0.25 CPUs, 95.5-98.0 µs/op; 0.30 CPUs, 80.0 µs/op |\n",
		"mutual TLS on every connection of both; 10s per run, 2 rounds interleaved",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the report does not hold %q:\n%s", want, b.String())
		}
	}
}

func TestPickShapes(t *testing.T) {
	if s, err := pickShapes("all"); err != nil || len(s) != len(allShapes) {
		t.Errorf("all: %d shapes, %v", len(s), err)
	}
	if s, err := pickShapes("none"); err != nil || len(s) != 0 {
		t.Errorf("none: %d shapes, %v", len(s), err)
	}
	if s, err := pickShapes("get-64-ser, put-64"); err != nil || len(s) != 2 || s[0].id != "get-64-ser" {
		t.Errorf("two: %+v, %v", s, err)
	}
	if _, err := pickShapes("put-9"); err == nil {
		t.Error("an unknown shape is accepted")
	}
}

func TestReportFillAndMemoryRows(t *testing.T) {
	fill := func(rate, us, share, cpus, clientUs float64) *fillRecord {
		return &fillRecord{Objects: 100_000, Ops: 100_000, Rate: rate, FirstRate: rate, LastRate: rate, Window: 50_000,
			P50Ms: 100, P99Ms: 400, TermBefore: 2, TermAfter: 2,
			cpuCost: cpuCost{CPUUsPerOp: us, LeaderCPUShare: share, ClientCPUs: cpus, ClientCPUUsPerOp: clientUs}}
	}
	rep := &report{Objects: 110_000, Options: reportOptions{ValSize: 256, EtcdTLS: true, FillClients: 256, FillConns: 16},
		Fill:    map[string]*fillRecord{"shoal": fill(1000, 900, 0.52, 1.1, 120), "etcd": fill(2000, 300, 0.38, 1.6, 90)},
		RSS:     map[string][]int64{"shoal": {500 << 20, 510 << 20, 520 << 20}, "etcd": {100 << 20, 104 << 20, 102 << 20}},
		PeakRSS: map[string][]int64{"shoal": {800 << 20, 700 << 20, 700 << 20}, "etcd": {200 << 20, 210 << 20, 200 << 20}}}
	var b bytes.Buffer
	printReport(&b, rep)
	for _, want := range []string{
		"| 0.50x (last 0.50x) | 1.00x | 1.00x | 900 µs (leader 52%); 300 µs (leader 38%); 3.00x | 1.10 CPUs, 120 µs/op; 1.60 CPUs, 90.0 µs/op |\n",
		"| memory (RSS) per member holding 110k objects | 500, 510, 520 MiB | 100, 104, 102 MiB | 5.00x (largest) | | | | |\n",
		"| peak memory (largest RSS since it started) per member | 800, 700, 700 MiB | 200, 210, 200 MiB | 3.81x (largest) | | | | |\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the report does not hold %q:\n%s", want, b.String())
		}
	}
	// Every line of the table has as many cells as its header.
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.HasPrefix(line, "|") && strings.Count(line, "|") != 9 {
			t.Errorf("%d cells, want 8: %s", strings.Count(line, "|")-1, line)
		}
	}
}
