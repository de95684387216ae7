// Command benchcompare measures shoal beside etcd on this machine: it
// builds the shoal binary from the working tree and etcd v3.7.3 from the Go
// module proxy (the etcd/ module beside this one), starts 3 shoal managers
// and 3 etcd members on loopback (fsync on for both; mutual TLS on every
// connection of both, unless --etcd-plain), drives the same client shapes
// against both through shoal's load generator (package bench), interleaved
// (shoal, etcd, shoal, etcd, ...) so the machine's drift falls on both, and
// prints the table of ratios shoal/etcd. With --fill N it also fills both
// with N objects from 256 clients and reports the fill's rates, failed
// writes and leader changes, the memory of every member, the restart of
// one member and the catch-up of a new one.
//
// It stops every process it started, on success, failure or Ctrl-C, and
// uses loopback addresses only. Run it with `make bench-compare` or
// `make bench-fill FILL=1000000`; see docs/performance.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-project/shoal/bench"
)

type options struct {
	repo      string
	work      string
	keep      bool
	duration  time.Duration
	rounds    int
	prefill   int
	fill      int
	fillConns int
	fillCli   int
	valSize   int
	shapes    string
	jsonOut   string
	etcdPlain bool
	aftermath bool
}

func main() {
	var o options
	flag.StringVar(&o.repo, "repo", "../..", "the shoal repository whose working tree is measured")
	flag.StringVar(&o.work, "work", "", "directory for binaries and state (default: a new temporary directory, removed at the end)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (state, logs) at the end")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "duration of each run of a shape")
	flag.IntVar(&o.rounds, "rounds", 2, "runs of each shape on each system, interleaved")
	flag.IntVar(&o.prefill, "prefill", 10000, "objects written before the shapes; the puts update them, the gets read them")
	flag.IntVar(&o.fill, "fill", 0, "after the shapes, fill each system with this many more objects (0: no fill)")
	flag.IntVar(&o.fillCli, "fill-clients", 256, "clients of the fill")
	flag.IntVar(&o.fillConns, "fill-conns", 16, "connections of the fill")
	flag.IntVar(&o.valSize, "val-size", 256, "bytes of every value")
	flag.StringVar(&o.shapes, "shapes", "all", "shapes to run, comma-separated ("+shapeIDs()+"), all, or none")
	flag.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	flag.BoolVar(&o.etcdPlain, "etcd-plain", false, "run etcd without TLS (shoal always has mutual TLS over TCP)")
	flag.BoolVar(&o.aftermath, "restart", true, "measure the restart of a member and the catch-up of a new one, at the end")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "benchcompare: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run1(ctx, o)
	interrupted := ctx.Err() != nil
	stop()
	if interrupted {
		fmt.Fprintln(os.Stderr, "benchcompare: interrupted; every process it started is stopped")
		os.Exit(130)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcompare:", err)
		os.Exit(1)
	}
}

// system is one of the two clusters under measure.
type system interface {
	name() string
	leader(ctx context.Context) (int, error)
	dialer(members []int, consistency string) bench.Dialer
	status(ctx context.Context) (leader, term uint64, err error)
	// processes are the three members the cluster started with, in the
	// order of the indexes leader returns.
	processes() []*proc
	restart(ctx context.Context, i int, key string) (time.Duration, error)
	addMember(ctx context.Context) (time.Duration, error)
}

func run1(ctx context.Context, o options) (err error) {
	shapes, err := pickShapes(o.shapes)
	if err != nil {
		return err
	}
	if o.rounds < 1 || o.duration <= 0 || o.prefill < 1 || o.fill < 0 || o.valSize < 2 {
		return errors.New("--rounds, --duration, --prefill and --val-size must be positive, --fill not negative")
	}
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "cmd", "shoal")); err != nil {
		return fmt.Errorf("--repo %s is not the shoal repository: %w", o.repo, err)
	}
	work := o.work
	if work == "" {
		if work, err = os.MkdirTemp("", "benchcompare-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(work, 0o700); err != nil {
		return err
	}
	ps := &procs{}
	defer func() {
		ps.stopAll()
		switch {
		case o.keep || err != nil:
			fmt.Fprintf(os.Stderr, "benchcompare: state and logs kept in %s\n", work)
		case o.work == "":
			os.RemoveAll(work)
		default: // keep the binaries of a given directory, not the state
			os.RemoveAll(filepath.Join(work, "shoal"))
			os.RemoveAll(filepath.Join(work, "etcd"))
		}
	}()

	rep := &report{Machine: machine(), Started: time.Now().UTC().Format(time.RFC3339),
		Options: reportOptions{Duration: o.duration.String(), Rounds: o.rounds, Prefill: o.prefill, Fill: o.fill,
			ValSize: o.valSize, EtcdTLS: !o.etcdPlain, FillClients: o.fillCli, FillConns: o.fillConns}}
	defer func() {
		rep.Machine.LoadEnd = loadavg()
		rep.Rows = rows(shapes, rep.Runs)
		if len(rep.Runs) > 0 || rep.Fill != nil {
			printReport(os.Stdout, rep)
			if o.jsonOut != "" {
				if b, jerr := json.MarshalIndent(rep, "", "  "); jerr == nil {
					if werr := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); werr != nil && err == nil {
						err = werr
					}
				}
			}
		}
	}()

	bin := filepath.Join(work, "bin")
	logf("building shoal (%s) and etcd v3.7.3", repo)
	if err := goBuild(ctx, repo, filepath.Join(bin, "shoal"), "./cmd/shoal"); err != nil {
		return err
	}
	if err := goBuild(ctx, filepath.Join(repo, "tools", "benchcompare", "etcd"), filepath.Join(bin, "etcd"), "."); err != nil {
		return err
	}
	if v, err := run(ctx, filepath.Join(bin, "etcd"), "--version"); err == nil {
		rep.Machine.Etcd = strings.Replace(strings.SplitN(strings.TrimSpace(v), "\n", 2)[0], "etcd Version: ", "etcd ", 1)
	}

	logf("starting 3 shoal managers and 3 etcd members on loopback")
	sh, err := startShoal(ctx, ps, filepath.Join(bin, "shoal"), filepath.Join(work, "shoal"), 3)
	if err != nil {
		return fmt.Errorf("starting shoal: %w", err)
	}
	et, err := startEtcd(ctx, ps, filepath.Join(bin, "etcd"), filepath.Join(work, "etcd"), 3, o.etcdPlain)
	if err != nil {
		return fmt.Errorf("starting etcd: %w", err)
	}
	systems := []system{sh, et}
	all := []int{0, 1, 2}

	for _, s := range systems {
		logf("%s: writing the %d objects of the shapes", s.name(), o.prefill)
		res, err := bench.Run(ctx, bench.Config{
			Op: bench.OpFill, Clients: 64, Conns: 8, KeySpace: o.prefill, ValSize: o.valSize, Prefix: "bench-",
			OpTimeout: time.Minute, Target: s.name(), Progress: progress(),
		}, s.dialer(all, ""))
		if err != nil {
			return fmt.Errorf("%s: prefill: %w", s.name(), err)
		}
		if res.Interrupted {
			return ctx.Err()
		}
		if res.Errors > 0 {
			return fmt.Errorf("%s: prefill: %d writes failed (%v)", s.name(), res.Errors, res.ErrorsByCode)
		}
	}

	for _, sp := range shapes {
		for round := 1; round <= o.rounds; round++ {
			for _, s := range systems {
				li, err := s.leader(ctx)
				if err != nil {
					return err
				}
				members := all
				switch sp.to {
				case toLeader:
					members = []int{li}
				case toFollower:
					members = []int{(li + 1) % 3}
				}
				cfg := sp.cfg
				cfg.Duration, cfg.ValSize, cfg.KeySpace, cfg.SkipFill, cfg.Prefix = o.duration, o.valSize, o.prefill, true, "bench-"
				cfg.OpTimeout, cfg.Target, cfg.Progress = time.Minute, s.name(), progress()
				res, cpu, err := runMeasured(ctx, s, li, cfg, s.dialer(members, cfg.Consistency))
				if err != nil {
					return fmt.Errorf("%s %s: %w", s.name(), sp.id, err)
				}
				if res.Interrupted {
					return ctx.Err()
				}
				rec := record(s.name(), sp, round, res, cpu)
				rep.Runs = append(rep.Runs, rec)
				errs := fmt.Sprintf("%d errors", rec.Errors)
				if rec.Errors > 0 {
					errs += fmt.Sprintf(" %v", rec.ErrorsByCode)
				}
				logf("%s %s (round %d): %.0f/s, p50 %s, p99 %s, %s; CPU %s per op (leader %s), load generator %s",
					s.name(), sp.id, round, rec.Throughput, fmtMs(rec.P50Ms), fmtMs(rec.P99Ms), errs,
					fmtUs(rec.CPUUsPerOp), fmtPct(rec.LeaderCPUShare), fmtCPUs(rec.ClientCPUs))
			}
		}
	}
	objects := o.prefill
	if o.fill > 0 {
		rep.Fill = map[string]*fillRecord{}
		for _, s := range systems {
			logf("%s: filling %d objects from %d clients", s.name(), o.fill, o.fillCli)
			f, err := runFill(ctx, s, o)
			if err != nil {
				return fmt.Errorf("%s: fill: %w", s.name(), err)
			}
			rep.Fill[s.name()] = f
			logf("%s: fill: %.0f/s, first %d %.0f/s, last %d %.0f/s, %d failed %v, %d leader changes, term %d to %d; CPU %s per write (leader %s), load generator %s",
				s.name(), f.Rate, f.Window, f.FirstRate, f.Window, f.LastRate, f.Errors, f.ErrorsByCode, f.LeaderChanges,
				f.TermBefore, f.TermAfter, fmtUs(f.CPUUsPerOp), fmtPct(f.LeaderCPUShare), fmtCPUs(f.ClientCPUs))
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		objects += o.fill
	}
	rep.Objects = objects

	rep.RSS, rep.PeakRSS = map[string][]int64{}, map[string][]int64{}
	for _, s := range systems {
		v, err := perProc(s.processes(), (*proc).rss)
		if err != nil {
			return err
		}
		rep.RSS[s.name()] = v
		if v, err = perProc(s.processes(), (*proc).peakRSS); err != nil {
			return err
		}
		rep.PeakRSS[s.name()] = v
	}

	if o.aftermath {
		rep.Restart, rep.CatchUp = map[string]float64{}, map[string]float64{}
		for _, s := range systems {
			li, err := s.leader(ctx)
			if err != nil {
				return err
			}
			logf("%s: restarting a follower holding %d objects", s.name(), objects)
			d, err := s.restart(ctx, (li+1)%3, "bench-0")
			if err != nil {
				return fmt.Errorf("%s: restart: %w", s.name(), err)
			}
			rep.Restart[s.name()] = d.Seconds()
			logf("%s: served again %.2f s after its start", s.name(), d.Seconds())
		}
		for _, s := range systems {
			logf("%s: a new member catches up with %d objects", s.name(), objects)
			stopTrickle, err := trickle(ctx, s, o.valSize)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name(), err)
			}
			d, err := s.addMember(ctx)
			stopTrickle()
			if err != nil {
				return fmt.Errorf("%s: new member: %w", s.name(), err)
			}
			rep.CatchUp[s.name()] = d.Seconds()
			logf("%s: the new member caught up %.2f s after its start", s.name(), d.Seconds())
		}
	}
	return nil
}

// runFill writes o.fill new objects into s and watches its leader while
// it does.
func runFill(ctx context.Context, s system, o options) (*fillRecord, error) {
	_, termBefore, _ := s.status(ctx)
	li, err := s.leader(ctx)
	if err != nil {
		return nil, err
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	type leaderSeen struct{ changes, noLeader int }
	seen := make(chan leaderSeen, 1)
	go func() {
		var ls leaderSeen
		var last uint64
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-watchCtx.Done():
				seen <- ls
				return
			case <-tick.C:
			}
			leader, _, err := s.status(watchCtx)
			switch {
			case err != nil:
			case leader == 0:
				ls.noLeader++
			case last != 0 && leader != last:
				ls.changes++
				last = leader
			default:
				last = leader
			}
		}
	}()
	res, cpu, err := runMeasured(ctx, s, li, bench.Config{
		Op: bench.OpFill, Clients: o.fillCli, Conns: o.fillConns, KeySpace: o.fill, ValSize: o.valSize, Prefix: "fill-",
		OpTimeout: time.Minute, Target: s.name(), Progress: progress(),
	}, s.dialer([]int{0, 1, 2}, ""))
	stopWatch()
	ls := <-seen
	if err != nil {
		return nil, err
	}
	_, termAfter, _ := s.status(ctx)
	window := int64(100_000)
	if int64(o.fill) < 2*window {
		window = int64(o.fill) / 2 / bench.MarkEvery * bench.MarkEvery
	}
	f := &fillRecord{Objects: o.fill, Ops: res.Ops, Errors: res.Errors, ErrorsByCode: res.ErrorsByCode,
		ElapsedS: res.Elapsed.Seconds(), Rate: res.Throughput(), Window: window,
		P50Ms: ms(res.Latency.Percentile(50)), P99Ms: ms(res.Latency.Percentile(99)), MaxMs: ms(res.Latency.Max()),
		LeaderChanges: ls.changes, NoLeaderSeen: ls.noLeader, TermBefore: termBefore, TermAfter: termAfter,
		Interrupted: res.Interrupted, cpuCost: cpu}
	last := res.Ops / bench.MarkEvery * bench.MarkEvery
	if window > 0 {
		f.FirstRate, _ = res.Rate(0, window)
		f.LastRate, _ = res.Rate(last-window, last)
	}
	return f, nil
}

// runMeasured runs cfg against s, leader being the index of the member
// that leads, and returns what the run cost in CPU: the members' and the
// load generator's, sampled just before and just after it.
func runMeasured(ctx context.Context, s system, leader int, cfg bench.Config, d bench.Dialer) (*bench.Result, cpuCost, error) {
	before, err := sampleCPU(s.processes())
	if err != nil {
		return nil, cpuCost{}, err
	}
	res, err := bench.Run(ctx, cfg, d)
	if err != nil {
		return nil, cpuCost{}, err
	}
	after, err := sampleCPU(s.processes())
	if err != nil {
		return nil, cpuCost{}, err
	}
	cost, err := before.cost(after, res.Ops+res.Errors, leader)
	return res, cost, err
}

// trickleValue is the i-th value trickle writes: a JSON string of size
// bytes (at least 2) that begins with i.
func trickleValue(i, size int) []byte {
	v := []byte(`"` + strconv.Itoa(i) + strings.Repeat("t", max(size-2, 0)))
	v = v[:max(size-1, 1)]
	return append(v, '"')
}

// trickle updates one object of s ten times a second until stopped, the
// way a cluster in use is never idle. A new etcd member restored from a
// snapshot needs it: it counts its applied index from the first entry it
// applies after the snapshot, and refuses every request, its own
// registration included, until then ("too many requests"), so it never
// serves in an idle cluster.
func trickle(ctx context.Context, s system, valSize int) (stop func(), err error) {
	t, err := s.dialer([]int{0}, "")(ctx, 0)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
				// A new value each time: shoal writes nothing for the
				// value an object holds already.
				_ = t.Put(pctx, "bench-1", trickleValue(i, valSize))
				pcancel()
			}
		}
	}()
	return func() {
		cancel()
		<-done
		t.Close()
	}, nil
}

func goBuild(ctx context.Context, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s in %s: %w", pkg, dir, err)
	}
	return nil
}

// progress reports a run on standard error: a bar on a terminal, else a
// line every 5 s.
func progress() bench.Progress {
	p := bench.Progress{W: os.Stderr, Every: 5 * time.Second}
	if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
		p.Terminal = true
	}
	return p
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s benchcompare: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
