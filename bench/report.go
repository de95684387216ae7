package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The JSON of a Result: durations in milliseconds or seconds, as their
// names say.
type (
	latencyView struct {
		Min  float64 `json:"min"`
		Mean float64 `json:"mean"`
		P50  float64 `json:"p50"`
		P90  float64 `json:"p90"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p99_9"`
		Max  float64 `json:"max"`
	}
	bucketView struct {
		UpToMs float64 `json:"up_to_ms"`
		Count  int     `json:"count"`
	}
	phaseView struct {
		Ops          int64            `json:"ops"`
		Existed      int64            `json:"existed,omitempty"`
		Errors       int64            `json:"errors"`
		ErrorsByCode map[string]int64 `json:"errors_by_code"`
		ElapsedS     float64          `json:"elapsed_s"`
		Throughput   float64          `json:"throughput_per_s"`
		LatencyMs    latencyView      `json:"latency_ms"`
		Histogram    []bucketView     `json:"histogram"`
	}
	watchView struct {
		Watchers     int              `json:"watchers"`
		Events       int64            `json:"events"`
		Expected     int64            `json:"expected"`
		ElapsedS     float64          `json:"elapsed_s"`
		Throughput   float64          `json:"throughput_per_s"`
		LatencyMs    latencyView      `json:"latency_ms"`
		Histogram    []bucketView     `json:"histogram"`
		Errors       int64            `json:"errors"`
		ErrorsByCode map[string]int64 `json:"errors_by_code"`
	}
	resultView struct {
		Op          Op     `json:"op"`
		Target      string `json:"target,omitempty"`
		Clients     int    `json:"clients"`
		Conns       int    `json:"conns"`
		ValSize     int    `json:"val_size"`
		KeySpace    int    `json:"key_space"`
		TxnOps      int    `json:"txn_ops,omitempty"`
		Watchers    int    `json:"watchers,omitempty"`
		Consistency string `json:"consistency,omitempty"`
		Interrupted bool   `json:"interrupted,omitempty"`
		phaseView
		Fill  *phaseView `json:"fill,omitempty"`
		Watch *watchView `json:"watch,omitempty"`
	}
)

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func viewLatency(h *Histogram) (latencyView, []bucketView) {
	if h == nil {
		h = &Histogram{}
	}
	l := latencyView{
		Min: ms(h.Min()), Mean: ms(h.Mean()), P50: ms(h.Percentile(50)), P90: ms(h.Percentile(90)),
		P99: ms(h.Percentile(99)), P999: ms(h.Percentile(99.9)), Max: ms(h.Max()),
	}
	buckets := []bucketView{}
	for _, b := range h.Buckets() {
		buckets = append(buckets, bucketView{UpToMs: ms(b.UpTo), Count: b.Count})
	}
	return l, buckets
}

func viewPhase(p *Phase) phaseView {
	v := phaseView{Ops: p.Ops, Existed: p.Existed, Errors: p.Errors, ErrorsByCode: p.ErrorsByCode,
		ElapsedS: p.Elapsed.Seconds(), Throughput: p.Throughput()}
	if v.ErrorsByCode == nil {
		v.ErrorsByCode = map[string]int64{}
	}
	v.LatencyMs, v.Histogram = viewLatency(p.Latency)
	return v
}

// MarshalJSON writes the result with its percentiles and histogram.
func (r Result) MarshalJSON() ([]byte, error) {
	v := resultView{
		Op: r.Op, Target: r.Target, Clients: r.Clients, Conns: r.Conns, ValSize: r.ValSize, KeySpace: r.KeySpace,
		TxnOps: r.TxnOps, Watchers: r.Watchers, Consistency: r.Consistency, Interrupted: r.Interrupted,
		phaseView: viewPhase(&r.Phase),
	}
	if r.Fill != nil {
		f := viewPhase(r.Fill)
		v.Fill = &f
	}
	if w := r.Watch; w != nil {
		wv := watchView{Watchers: w.Watchers, Events: w.Events, Expected: w.Expected, ElapsedS: w.Elapsed.Seconds(),
			Throughput: w.Throughput(), Errors: w.Errors, ErrorsByCode: w.ErrorsByCode}
		if wv.ErrorsByCode == nil {
			wv.ErrorsByCode = map[string]int64{}
		}
		wv.LatencyMs, wv.Histogram = viewLatency(w.Latency)
		v.Watch = &wv
	}
	return json.Marshal(v)
}

// WriteText writes the report of r for a person: throughput, latency
// percentiles, the histogram, and the errors by code.
func WriteText(w io.Writer, r *Result) error {
	var b strings.Builder
	unit := "ops"
	if r.Op == OpTxn {
		unit = "transactions"
	}
	fmt.Fprintf(&b, "%s: %d %s in %s, %.1f/s; %d errors", r.Op, r.Ops, unit, fmtSeconds(r.Elapsed), r.Throughput(), r.Errors)
	if r.Interrupted {
		b.WriteString(" (interrupted)")
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "  %s\n", describe(r))
	if f := r.Fill; f != nil {
		fmt.Fprintf(&b, "  first created the %d names in %s, %.1f/s (%d existed already)\n",
			r.KeySpace, fmtSeconds(f.Elapsed), f.Throughput(), f.Existed)
	}
	if r.Op == OpFill && r.Existed > 0 {
		fmt.Fprintf(&b, "  %d names existed already\n", r.Existed)
	}
	b.WriteString("\n")
	writeLatency(&b, "latency", r.Latency)
	if len(r.ErrorsByCode) > 0 {
		b.WriteString("\nerrors by code:\n")
		writeCodes(&b, r.ErrorsByCode)
	}
	if wr := r.Watch; wr != nil {
		fmt.Fprintf(&b, "\nwatch: %d watchers received %d of %d changes in %s, %.1f/s; %d watches failed\n\n",
			wr.Watchers, wr.Events, wr.Expected, fmtSeconds(wr.Elapsed), wr.Throughput(), wr.Errors)
		writeLatency(&b, "delivery, from the put's start", wr.Latency)
		if len(wr.ErrorsByCode) > 0 {
			b.WriteString("\nwatch errors by code:\n")
			writeCodes(&b, wr.ErrorsByCode)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func describe(r *Result) string {
	parts := []string{}
	if r.Target != "" {
		parts = append(parts, r.Target)
	}
	parts = append(parts, fmt.Sprintf("%s over %s", plural(r.Clients, "client"), plural(r.Conns, "connection")),
		fmt.Sprintf("%d-byte values", r.ValSize))
	switch {
	case r.KeySpace == 0:
		parts = append(parts, "a new name each time")
	default:
		parts = append(parts, fmt.Sprintf("names drawn from %d", r.KeySpace))
	}
	if r.TxnOps > 0 {
		parts = append(parts, fmt.Sprintf("%d names per transaction", r.TxnOps))
	}
	if r.Consistency != "" {
		parts = append(parts, r.Consistency)
	}
	return strings.Join(parts, ", ")
}

func writeLatency(b *strings.Builder, title string, h *Histogram) {
	if h == nil || h.Count() == 0 {
		fmt.Fprintf(b, "%s: nothing succeeded\n", title)
		return
	}
	fmt.Fprintf(b, "%s: min %s, mean %s, p50 %s, p90 %s, p99 %s, p99.9 %s, max %s\n\n", title,
		FormatLatency(h.Min()), FormatLatency(h.Mean()), FormatLatency(h.Percentile(50)),
		FormatLatency(h.Percentile(90)), FormatLatency(h.Percentile(99)), FormatLatency(h.Percentile(99.9)),
		FormatLatency(h.Max()))
	buckets := h.Buckets()
	most := 0
	for _, bk := range buckets {
		most = max(most, bk.Count)
	}
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "up to\tcount\t")
	const width = 40
	for _, bk := range buckets {
		bar := 0
		if most > 0 {
			bar = (bk.Count*width + most - 1) / most
		}
		fmt.Fprintf(tw, "%s\t%d\t  %s\n", fmtBound(bk.UpTo), bk.Count, strings.Repeat("#", bar))
	}
	tw.Flush()
}

func writeCodes(b *strings.Builder, byCode map[string]int64) {
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	for _, code := range slices.Sorted(maps.Keys(byCode)) {
		fmt.Fprintf(tw, "  %s\t%d\n", code, byCode[code])
	}
	tw.Flush()
}

// FormatLatency writes d in milliseconds with three significant digits
// or so: "0.412 ms", "31.2 ms", "1204 ms".
func FormatLatency(d time.Duration) string {
	m := ms(d)
	switch {
	case m < 1:
		return fmt.Sprintf("%.3f ms", m)
	case m < 10:
		return fmt.Sprintf("%.2f ms", m)
	case m < 100:
		return fmt.Sprintf("%.1f ms", m)
	}
	return fmt.Sprintf("%.0f ms", m)
}

func fmtSeconds(d time.Duration) string {
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// fmtBound writes a bound of the 1-2-5 scale: "500 µs", "2 ms", "10 s".
func fmtBound(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d/time.Microsecond)
	case d < time.Second:
		return fmt.Sprintf("%d ms", d/time.Millisecond)
	}
	return fmt.Sprintf("%d s", d/time.Second)
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
