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
		{System: "shoal", Shape: "put-1-leader", Round: 1, Throughput: 300, P50Ms: 3, P99Ms: 10},
		{System: "etcd", Shape: "put-1-leader", Round: 1, Throughput: 600, P50Ms: 1.5, P99Ms: 5},
		{System: "shoal", Shape: "put-1-leader", Round: 2, Throughput: 450, P50Ms: 2, P99Ms: 8, Errors: 2},
		{System: "etcd", Shape: "put-1-leader", Round: 2, Throughput: 500, P50Ms: 2, P99Ms: 4},
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
	var b bytes.Buffer
	printReport(&b, &report{Rows: rs, Options: reportOptions{Rounds: 2, ValSize: 256, EtcdTLS: true, Duration: "10s", Prefill: 10000}})
	for _, want := range []string{
		"| put, 1 client, to the leader | 300-450/s, p50 2.00-3.00 ms, p99 8.00-10.0 ms, **2 errors** | 500-600/s, p50 1.50-2.00 ms, p99 4.00-5.00 ms | 0.50-0.90x | 1.00-2.00x | 2.00x |",
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
