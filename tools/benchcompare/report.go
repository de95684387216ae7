package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"

	"github.com/shoal-project/shoal/bench"
)

// Where the connections of a shape go.
const (
	toAll      = "all" // connection i to member i % 3
	toLeader   = "leader"
	toFollower = "follower"
)

// shape is one client shape, run alike against both systems.
type shape struct {
	id    string
	title string
	to    string
	cfg   bench.Config
}

var allShapes = []shape{
	{"put-1-leader", "put, 1 client, to the leader", toLeader, bench.Config{Op: bench.OpPut, Clients: 1, Conns: 1}},
	{"put-1-follower", "put, 1 client, to a follower", toFollower, bench.Config{Op: bench.OpPut, Clients: 1, Conns: 1}},
	{"put-64", "put, 64 clients / 8 connections", toAll, bench.Config{Op: bench.OpPut, Clients: 64, Conns: 8}},
	{"put-256", "put, 256 clients / 16 connections", toAll, bench.Config{Op: bench.OpPut, Clients: 256, Conns: 16}},
	{"get-64-lin", "linearizable get, 64 clients / 8 connections", toAll, bench.Config{Op: bench.OpGet, Clients: 64, Conns: 8, Consistency: "linearizable"}},
	{"get-64-ser", "serializable get, 64 clients / 8 connections", toAll, bench.Config{Op: bench.OpGet, Clients: 64, Conns: 8, Consistency: "serializable"}},
}

func shapeIDs() string {
	var ids []string
	for _, s := range allShapes {
		ids = append(ids, s.id)
	}
	return strings.Join(ids, ", ")
}

func pickShapes(list string) ([]shape, error) {
	switch list {
	case "all", "":
		return allShapes, nil
	case "none":
		return nil, nil
	}
	var out []shape
	for _, id := range strings.Split(list, ",") {
		i := slices.IndexFunc(allShapes, func(s shape) bool { return s.id == strings.TrimSpace(id) })
		if i < 0 {
			return nil, fmt.Errorf("--shapes: no shape %q (choose among %s)", id, shapeIDs())
		}
		out = append(out, allShapes[i])
	}
	return out, nil
}

// The results, as -json writes them.
type (
	report struct {
		Machine machineInfo   `json:"machine"`
		Started string        `json:"started"`
		Options reportOptions `json:"options"`
		Runs    []runRecord   `json:"runs"`
		Rows    []rowRecord   `json:"rows"`
		// Fill, RSS, Restart and CatchUp are by system: "shoal", "etcd".
		Fill map[string]*fillRecord `json:"fill,omitempty"`
		// Objects is the number of objects each system held for the
		// RSS, restart and catch-up measures.
		Objects int                `json:"objects"`
		RSS     map[string][]int64 `json:"rss_bytes,omitempty"`
		// PeakRSS is each member's largest RSS since it started.
		PeakRSS map[string][]int64 `json:"peak_rss_bytes,omitempty"`
		Restart map[string]float64 `json:"restart_s,omitempty"`
		CatchUp map[string]float64 `json:"catch_up_s,omitempty"`
	}
	reportOptions struct {
		Duration    string `json:"duration"`
		Rounds      int    `json:"rounds"`
		Prefill     int    `json:"prefill"`
		Fill        int    `json:"fill"`
		FillClients int    `json:"fill_clients"`
		FillConns   int    `json:"fill_conns"`
		ValSize     int    `json:"val_size"`
		EtcdTLS     bool   `json:"etcd_tls"`
	}
	machineInfo struct {
		CPUs      int    `json:"cpus"`
		CPUModel  string `json:"cpu_model"`
		MemTotal  string `json:"mem_total"`
		Go        string `json:"go"`
		Kernel    string `json:"kernel"`
		Etcd      string `json:"etcd"`
		LoadStart string `json:"loadavg_start"`
		LoadEnd   string `json:"loadavg_end"`
	}
	runRecord struct {
		System       string           `json:"system"`
		Shape        string           `json:"shape"`
		Round        int              `json:"round"`
		Ops          int64            `json:"ops"`
		Errors       int64            `json:"errors"`
		ErrorsByCode map[string]int64 `json:"errors_by_code"`
		Throughput   float64          `json:"throughput_per_s"`
		P50Ms        float64          `json:"p50_ms"`
		P99Ms        float64          `json:"p99_ms"`
		P999Ms       float64          `json:"p99_9_ms"`
		MaxMs        float64          `json:"max_ms"`
		cpuCost
	}
	// rowRecord is a line of the table: each list has a value per round,
	// the ratios are shoal / etcd of the same round.
	rowRecord struct {
		Shape           string    `json:"shape"`
		Title           string    `json:"title"`
		ShoalThroughput []float64 `json:"shoal_throughput_per_s"`
		EtcdThroughput  []float64 `json:"etcd_throughput_per_s"`
		ShoalP50Ms      []float64 `json:"shoal_p50_ms"`
		EtcdP50Ms       []float64 `json:"etcd_p50_ms"`
		ShoalP99Ms      []float64 `json:"shoal_p99_ms"`
		EtcdP99Ms       []float64 `json:"etcd_p99_ms"`
		ShoalErrors     int64     `json:"shoal_errors"`
		EtcdErrors      int64     `json:"etcd_errors"`
		ThroughputRatio []float64 `json:"throughput_ratio"`
		P50Ratio        []float64 `json:"p50_ratio"`
		P99Ratio        []float64 `json:"p99_ratio"`
		ShoalCPU        rowCPU    `json:"shoal_cpu"`
		EtcdCPU         rowCPU    `json:"etcd_cpu"`
		// CPURatio is shoal's CPU per operation over etcd's.
		CPURatio []float64 `json:"cpu_ratio"`
	}
	// rowCPU is the CPU of one system's runs of a shape, a value per
	// round: the three members' together per operation, the leader's
	// share of it, and the load generator's.
	rowCPU struct {
		USPerOp          []float64 `json:"cpu_us_per_op"`
		LeaderShare      []float64 `json:"leader_cpu_share"`
		ClientCPUs       []float64 `json:"client_cpus"`
		ClientCPUUsPerOp []float64 `json:"client_cpu_us_per_op"`
	}
	fillRecord struct {
		Objects      int              `json:"objects"`
		Ops          int64            `json:"ops"`
		Errors       int64            `json:"failed_writes"`
		ErrorsByCode map[string]int64 `json:"errors_by_code"`
		ElapsedS     float64          `json:"elapsed_s"`
		Rate         float64          `json:"rate_per_s"`
		// Window is the number of objects of the first and last rates.
		Window    int64   `json:"window"`
		FirstRate float64 `json:"first_rate_per_s"`
		LastRate  float64 `json:"last_rate_per_s"`
		P50Ms     float64 `json:"p50_ms"`
		P99Ms     float64 `json:"p99_ms"`
		MaxMs     float64 `json:"max_ms"`
		// LeaderChanges counts the polls (every 250 ms) that found a leader
		// other than the one before; NoLeaderSeen, those that found none.
		// The terms count every election, the leader's own re-election
		// included.
		LeaderChanges int    `json:"leader_changes"`
		NoLeaderSeen  int    `json:"no_leader_seen"`
		TermBefore    uint64 `json:"term_before"`
		TermAfter     uint64 `json:"term_after"`
		Interrupted   bool   `json:"interrupted,omitempty"`
		// The CPU per write over the whole fill.
		cpuCost
	}
)

func record(system string, sp shape, round int, res *bench.Result, cpu cpuCost) runRecord {
	return runRecord{
		System: system, Shape: sp.id, Round: round, Ops: res.Ops, Errors: res.Errors, ErrorsByCode: res.ErrorsByCode,
		Throughput: res.Throughput(), P50Ms: ms(res.Latency.Percentile(50)), P99Ms: ms(res.Latency.Percentile(99)),
		P999Ms: ms(res.Latency.Percentile(99.9)), MaxMs: ms(res.Latency.Max()), cpuCost: cpu,
	}
}

// rows pairs the runs of each shape by round.
func rows(shapes []shape, runs []runRecord) []rowRecord {
	var out []rowRecord
	for _, sp := range shapes {
		r := rowRecord{Shape: sp.id, Title: sp.title}
		byRound := map[int]map[string]runRecord{}
		for _, run := range runs {
			if run.Shape != sp.id {
				continue
			}
			if byRound[run.Round] == nil {
				byRound[run.Round] = map[string]runRecord{}
			}
			byRound[run.Round][run.System] = run
		}
		for round := 1; round <= len(byRound); round++ {
			s, okS := byRound[round]["shoal"]
			e, okE := byRound[round]["etcd"]
			if !okS || !okE {
				continue
			}
			r.ShoalThroughput = append(r.ShoalThroughput, s.Throughput)
			r.EtcdThroughput = append(r.EtcdThroughput, e.Throughput)
			r.ShoalP50Ms = append(r.ShoalP50Ms, s.P50Ms)
			r.EtcdP50Ms = append(r.EtcdP50Ms, e.P50Ms)
			r.ShoalP99Ms = append(r.ShoalP99Ms, s.P99Ms)
			r.EtcdP99Ms = append(r.EtcdP99Ms, e.P99Ms)
			r.ShoalErrors += s.Errors
			r.EtcdErrors += e.Errors
			r.ThroughputRatio = append(r.ThroughputRatio, ratio(s.Throughput, e.Throughput))
			r.P50Ratio = append(r.P50Ratio, ratio(s.P50Ms, e.P50Ms))
			r.P99Ratio = append(r.P99Ratio, ratio(s.P99Ms, e.P99Ms))
			r.ShoalCPU.add(s.cpuCost)
			r.EtcdCPU.add(e.cpuCost)
			r.CPURatio = append(r.CPURatio, ratio(s.CPUUsPerOp, e.CPUUsPerOp))
		}
		if len(r.ThroughputRatio) > 0 {
			out = append(out, r)
		}
	}
	return out
}

func (r *rowCPU) add(c cpuCost) {
	r.USPerOp = append(r.USPerOp, c.CPUUsPerOp)
	r.LeaderShare = append(r.LeaderShare, c.LeaderCPUShare)
	r.ClientCPUs = append(r.ClientCPUs, c.ClientCPUs)
	r.ClientCPUUsPerOp = append(r.ClientCPUUsPerOp, c.ClientCPUUsPerOp)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// printReport writes the table of the issue, in Markdown.
func printReport(w io.Writer, rep *report) {
	m := rep.Machine
	fmt.Fprintf(w, "\n%d CPUs (%s), %s, %s, %s; load average %s at the start, %s at the end\n",
		m.CPUs, m.CPUModel, m.MemTotal, m.Go, m.Etcd, m.LoadStart, m.LoadEnd)
	tlsNote := "mutual TLS on every connection of both"
	if !rep.Options.EtcdTLS {
		tlsNote = "shoal over mutual TLS, etcd in plain text"
	}
	fmt.Fprintf(w, "3 shoal managers and 3 etcd members on loopback, fsync on, %d-byte values, %s", rep.Options.ValSize, tlsNote)
	if len(rep.Rows) > 0 {
		fmt.Fprintf(w, "; %s per run, %s interleaved; the puts update and the gets read %d objects written first",
			rep.Options.Duration, plural(rep.Options.Rounds, "round"), rep.Options.Prefill)
	}
	fmt.Fprint(w, "\n\n")
	fmt.Fprintln(w, "| workload | shoal | etcd | throughput shoal / etcd | p50 shoal / etcd | p99 shoal / etcd "+
		"| CPU per op, 3 members: shoal; etcd; shoal / etcd | load generator CPU: shoal runs; etcd runs |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, r := range rep.Rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Title,
			cell(r.ShoalThroughput, r.ShoalP50Ms, r.ShoalP99Ms, r.ShoalErrors),
			cell(r.EtcdThroughput, r.EtcdP50Ms, r.EtcdP99Ms, r.EtcdErrors),
			ratioRange(r.ThroughputRatio), ratioRange(r.P50Ratio), ratioRange(r.P99Ratio),
			cpuCell(r.ShoalCPU, r.EtcdCPU, r.CPURatio), clientCell(r.ShoalCPU, r.EtcdCPU))
	}
	if f := rep.Fill; f != nil && f["shoal"] != nil && f["etcd"] != nil {
		s, e := f["shoal"], f["etcd"]
		var sc, ec rowCPU
		sc.add(s.cpuCost)
		ec.add(e.cpuCost)
		fmt.Fprintf(w, "| fill %s objects, %d clients / %d connections | %s | %s | %s (last %s) | %s | %s | %s | %s |\n",
			count(s.Objects), rep.Options.FillClients, rep.Options.FillConns, fillCell(s), fillCell(e),
			fmtRatio(ratio(s.Rate, e.Rate)), fmtRatio(ratio(s.LastRate, e.LastRate)),
			fmtRatio(ratio(s.P50Ms, e.P50Ms)), fmtRatio(ratio(s.P99Ms, e.P99Ms)),
			cpuCell(sc, ec, []float64{ratio(s.CPUUsPerOp, e.CPUUsPerOp)}), clientCell(sc, ec))
	}
	if rss := rep.RSS; rss["shoal"] != nil && rss["etcd"] != nil {
		fmt.Fprintf(w, "| memory (RSS) per member holding %s objects | %s | %s | %s (largest) | | | | |\n",
			count(rep.Objects), rssCell(rss["shoal"]), rssCell(rss["etcd"]),
			fmtRatio(ratio(float64(slices.Max(rss["shoal"])), float64(slices.Max(rss["etcd"])))))
	}
	if rss := rep.PeakRSS; rss["shoal"] != nil && rss["etcd"] != nil {
		fmt.Fprintf(w, "| peak memory (largest RSS since it started) per member | %s | %s | %s (largest) | | | | |\n",
			rssCell(rss["shoal"]), rssCell(rss["etcd"]),
			fmtRatio(ratio(float64(slices.Max(rss["shoal"])), float64(slices.Max(rss["etcd"])))))
	}
	if r := rep.Restart; len(r) == 2 {
		fmt.Fprintf(w, "| restart of a follower holding %s objects, until a linearizable get on it succeeds | %.2f s | %.2f s | %s | | | | |\n",
			count(rep.Objects), r["shoal"], r["etcd"], fmtRatio(ratio(r["shoal"], r["etcd"])))
	}
	if c := rep.CatchUp; len(c) == 2 {
		fmt.Fprintf(w, "| a new member (a learner) applies the log of %s objects | %.2f s | %.2f s | %s | | | | |\n",
			count(rep.Objects), c["shoal"], c["etcd"], fmtRatio(ratio(c["shoal"], c["etcd"])))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Ratios are shoal / etcd of the same round: above 1 is more throughput, or a longer latency or time, for shoal.")
	fmt.Fprintln(w, "CPU per op is the user+system time of the three members over the run (/proc/PID/stat, 10 ms ticks) per operation, "+
		"the leader's share of it in parentheses; the load generator's is this process's own (getrusage), in CPUs busy and per operation.")
}

// cpuCell writes the members' CPU per operation of both systems, with the
// leader's share, and their ratio: "740-760 µs (leader 45-47%); 310 µs
// (leader 40%); 2.39-2.45x".
func cpuCell(shoal, etcd rowCPU, ratios []float64) string {
	side := func(c rowCPU) string {
		return fmt.Sprintf("%s (leader %s)", unitRange(c.USPerOp, fmtUs), unitRange(c.LeaderShare, fmtPct))
	}
	return fmt.Sprintf("%s; %s; %s", side(shoal), side(etcd), ratioRange(ratios))
}

// clientCell writes the load generator's CPU during the runs of both
// systems: "1.21-1.30 CPUs, 96-98 µs/op; 1.40 CPUs, 80 µs/op".
func clientCell(shoal, etcd rowCPU) string {
	side := func(c rowCPU) string {
		return fmt.Sprintf("%s, %s/op", unitRange(c.ClientCPUs, fmtCPUs), unitRange(c.ClientCPUUsPerOp, fmtUs))
	}
	return side(shoal) + "; " + side(etcd)
}

func cell(tput, p50, p99 []float64, errs int64) string {
	s := fmt.Sprintf("%s, p50 %s, p99 %s", rateRange(tput), msRange(p50), msRange(p99))
	if errs > 0 {
		s += fmt.Sprintf(", **%d errors**", errs)
	}
	return s
}

func fillCell(f *fillRecord) string {
	elections := int64(f.TermAfter) - int64(f.TermBefore)
	s := fmt.Sprintf("%s overall, %s first %s, %s last %s; p99 %s; %d failed writes; %d leader changes, %s (term %d to %d)",
		fmtRate(f.Rate), fmtRate(f.FirstRate), count(int(f.Window)), fmtRate(f.LastRate), count(int(f.Window)),
		fmtMs(f.P99Ms), f.Errors, f.LeaderChanges, plural(int(elections), "election"), f.TermBefore, f.TermAfter)
	if f.NoLeaderSeen > 0 {
		s += fmt.Sprintf(", no leader at %d polls", f.NoLeaderSeen)
	}
	if f.Errors > 0 || f.LeaderChanges > 0 || elections > 0 {
		s = "**" + s + "**"
	}
	return s
}

func rssCell(v []int64) string {
	var parts []string
	for _, b := range v {
		parts = append(parts, fmt.Sprintf("%.0f", float64(b)/(1<<20)))
	}
	return strings.Join(parts, ", ") + " MiB"
}

func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

func fmtRate(r float64) string {
	if r >= 1000 {
		return fmt.Sprintf("%.1fk/s", r/1000)
	}
	return fmt.Sprintf("%.0f/s", r)
}

// rateRange writes the smallest and largest of vs: "1.4-2.1k/s", "310-461/s".
func rateRange(vs []float64) string {
	lo, hi := slices.Min(vs), slices.Max(vs)
	if len(vs) == 1 || fmtRate(lo) == fmtRate(hi) {
		return fmtRate(lo)
	}
	if lo >= 1000 {
		return fmt.Sprintf("%.1f-%.1fk/s", lo/1000, hi/1000)
	}
	if hi >= 1000 {
		return fmt.Sprintf("%.0f/s-%.1fk/s", lo, hi/1000)
	}
	return fmt.Sprintf("%.0f-%.0f/s", lo, hi)
}

func fmtMs(v float64) string {
	switch {
	case v >= 1000:
		return fmt.Sprintf("%.2f s", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func msRange(vs []float64) string { return unitRange(vs, fmtMs) }

func fmtRatio(r float64) string { return fmt.Sprintf("%.2fx", r) }

func ratioRange(vs []float64) string { return unitRange(vs, fmtRatio) }

// fmtUs writes microseconds with 3 significant digits or more.
func fmtUs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f µs", v)
	case v >= 10:
		return fmt.Sprintf("%.1f µs", v)
	}
	return fmt.Sprintf("%.2f µs", v)
}

// fmtPct writes a share of 0 to 1 as a whole percentage.
func fmtPct(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) }

func fmtCPUs(v float64) string { return fmt.Sprintf("%.2f CPUs", v) }

// unitRange writes the smallest and largest of vs as format writes them,
// the unit once when both share it: "1.80-2.80 ms", "600 ms-1.90 s",
// "41-45%".
func unitRange(vs []float64, format func(float64) string) string {
	l, h := format(slices.Min(vs)), format(slices.Max(vs))
	if len(vs) == 1 || l == h {
		return l
	}
	unit := func(s string) string {
		return s[strings.LastIndexAny(s, "0123456789")+1:]
	}
	if lu := unit(l); lu == unit(h) {
		return strings.TrimSuffix(l, lu) + "-" + h
	}
	return l + "-" + h
}

func machine() machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), LoadStart: loadavg()}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.Go = strings.TrimPrefix(strings.TrimSpace(string(out)), "go version ")
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if kb := procField("/proc/meminfo", "MemTotal"); kb != "" {
		var n int64
		fmt.Sscanf(kb, "%d", &n)
		m.MemTotal = fmt.Sprintf("%.1f GiB memory", float64(n)/(1<<20))
	}
	return m
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// procField reads the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
