package robustness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/client"
)

// runConfig says what one run does.
type runConfig struct {
	seed     uint64
	managers int
	clients  int
	watchers int
	keys     int
	duration time.Duration // of the traffic under faults
	faults   []string      // injected in turn, cycling, until duration
	budget   time.Duration // for the linearizability check
	lab      *netLab       // network namespaces instead of the proxy
}

// runReport is what one run did and found.
type runReport struct {
	Seed       uint64         `json:"seed"`
	Faults     []string       `json:"faults"`
	Injected   map[string]int `json:"injected"` // times each fault was injected
	Notes      []string       `json:"notes"`
	Ops        map[string]int `json:"ops"`
	Checked    int            `json:"checked"`
	CheckTook  string         `json:"check_took"`
	Result     string         `json:"result"`
	Watch      WatchReport    `json:"watch"`
	Resumes    int64          `json:"watch_resumes"`
	Resolved   int            `json:"unknown_resolved"`  // writes of unknown outcome the watches saw
	Dropped    int            `json:"unknown_dropped"`   // and those that never took effect
	Restores   int            `json:"snapshot_restores"` // received, or loaded at a restart
	Crashes    int            `json:"crash_points_reached"`
	StoreHash  string         `json:"store_hash"`
	Problems   []string       `json:"problems"`
	Proxy      string         `json:"proxy"`
	Artifacts  string         `json:"artifacts,omitempty"`
	Duration   string         `json:"duration"`
	Violations int            `json:"violations"`
}

// runLog collects a run's log lines, stamped with the history's clock (so
// they line up with the operations), for the test log and the artifacts.
type runLog struct {
	now   func() int64
	mu    sync.Mutex
	lines []string
}

func (l *runLog) logf(format string, args ...any) {
	line := fmt.Sprintf("%8.3fs ", float64(l.now())/1e9) + fmt.Sprintf(format, args...)
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
}

func (l *runLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + "\n"
}

func removeAll(dir string) error { return os.RemoveAll(dir) }

// runOnce runs one run of cfg and checks it; it fails t on any violation.
func runOnce(t *testing.T, cfg runConfig, repeat string) (rep runReport) {
	t.Helper()
	h := NewHistory()
	start := time.Now()
	rl := &runLog{now: h.Now}
	rep = runReport{Seed: cfg.seed, Faults: cfg.faults, Ops: map[string]int{}, Injected: map[string]int{}}
	noteMu := sync.Mutex{}
	note := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		rl.logf("fault: %s", msg)
		noteMu.Lock()
		rep.Notes = append(rep.Notes, fmt.Sprintf("%.1fs %s", time.Since(start).Seconds(), msg))
		noteMu.Unlock()
	}
	rng := rand.New(rand.NewPCG(cfg.seed, 0x5ea1))
	t.Logf("run seed %d: %d managers, %d clients, %d watchers, faults %v, %v of traffic", cfg.seed, cfg.managers, cfg.clients, cfg.watchers, cfg.faults, cfg.duration)

	// Unix socket paths must stay short: a directory of our own in /tmp.
	dir, err := os.MkdirTemp("", "shrb-")
	if err != nil {
		t.Fatal(err)
	}
	var c *cluster
	failed := false
	defer func() {
		if c != nil {
			c.shutdown()
			for _, m := range c.all() {
				rep.Restores += m.logCount("restored snapshot")
				rep.Crashes += m.logCount("crashpoint: ")
			}
			rep.Proxy = fmt.Sprintf("%+v", c.net.Stats())
		}
		rep.Duration = time.Since(start).Round(time.Millisecond).String()
		if failed || t.Failed() || *flagKeep {
			rep.Artifacts = saveArtifacts(t, dir, cfg, rl, &rep)
		}
		os.RemoveAll(dir)
		if failed || t.Failed() {
			t.Logf("run log:\n%s", rl.String())
			t.Errorf("run seed %d failed; artifacts in %s (history.html is porcupine's view; go test ./robustness/ -run Recheck -args -recheck %s shows where each key breaks); repeat with: %s",
				cfg.seed, rep.Artifacts, rep.Artifacts, repeat)
		}
	}()
	fail := func(format string, args ...any) {
		failed = true
		msg := fmt.Sprintf(format, args...)
		rep.Problems = append(rep.Problems, msg)
		rl.logf("FAILURE: %s", msg)
		t.Error(msg)
	}

	c, err = newCluster(t, dir, cfg.managers, rl.logf, cfg.seed, cfg.lab)
	if err != nil {
		fail("starting the cluster: %v", err)
		return rep
	}
	keys := make([]string, cfg.keys)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}

	// Watchers first, so that they see every write.
	wctx, stopWatchers := context.WithCancel(context.Background())
	var wwg sync.WaitGroup
	watchers := make([]*watcher, cfg.watchers)
	for i := range watchers {
		w := &watcher{id: i, c: c, started: make(chan struct{})}
		watchers[i] = w
		wwg.Add(1)
		go func() { defer wwg.Done(); w.run(wctx, i+1) }()
	}
	defer func() { stopWatchers(); wwg.Wait() }()
	for _, w := range watchers {
		select {
		case <-w.started:
		case <-time.After(30 * time.Second):
			fail("watcher %d did not start", w.id)
			return rep
		}
	}

	workers := make([]*worker, cfg.clients)
	for i := range workers {
		w, err := newWorker(c, i, c.managers[i%cfg.managers], h, keys, cfg.seed)
		if err != nil {
			fail("%v", err)
			return rep
		}
		workers[i] = w
		defer w.close()
	}
	stopTraffic := make(chan struct{})
	var twg sync.WaitGroup
	for _, w := range workers {
		twg.Add(1)
		go func() { defer twg.Done(); w.run(stopTraffic) }()
	}
	rl.logf("traffic started")

	// Faults, in turn, until the traffic time is up.
	fr := &faultRun{c: c, rng: rng, note: note}
	deadline := time.Now().Add(cfg.duration)
	time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
	for i := 0; time.Now().Before(deadline) && len(cfg.faults) > 0; i++ {
		f := faults[cfg.faults[i%len(cfg.faults)]]
		rl.logf("fault %s begins", f.name)
		rep.Injected[f.name]++
		if err := f.run(fr); err != nil {
			fail("fault %s: %v", f.name, err)
			break
		}
		if err := c.heal(); err != nil {
			fail("healing after %s: %v", f.name, err)
			break
		}
		if err := c.waitHealthy(45 * time.Second); err != nil {
			fail("after %s: %v", f.name, err)
			break
		}
		rl.logf("fault %s healed; cluster healthy", f.name)
		time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
	}
	if remaining := time.Until(deadline); remaining > 0 && !failed {
		time.Sleep(remaining)
	}

	if err := c.heal(); err != nil {
		fail("healing: %v", err)
	}
	if err := c.waitHealthy(45 * time.Second); err != nil {
		fail("at the end: %v", err)
	}
	close(stopTraffic)
	twg.Wait()
	rl.logf("traffic stopped")

	// A final write must succeed, and then final reads of every key from
	// every client.
	finalVersion, err := finalWrite(workers, h)
	if err != nil {
		fail("the final write: %v", err)
	} else {
		rl.logf("final write at version %d", finalVersion)
	}
	for _, w := range workers {
		for _, k := range append(keys, "final") {
			for attempt := 0; attempt < 5; attempt++ {
				if op := w.do(Input{Kind: OpGet, Key: k}); op.Output.Status != StatusFailed {
					break
				}
			}
		}
	}

	// Watchers must reach the final write.
	wdeadline := time.Now().Add(30 * time.Second)
	for _, w := range watchers {
		for w.last.Load() < finalVersion && time.Now().Before(wdeadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if got := w.last.Load(); got < finalVersion {
			fail("watcher %d is at version %d, short of the final write's %d", w.id, got, finalVersion)
		}
		rep.Resumes += w.resumes.Load()
	}
	stopWatchers()
	wwg.Wait()

	// Every manager holds the same store.
	if hash, err := c.converged(30 * time.Second); err != nil {
		fail("stores differ: %v", err)
	} else {
		rep.StoreHash = hash
	}
	for _, p := range c.Problems() {
		fail("%s", p)
	}

	ops := h.Ops()
	rep.Ops = Counts(ops)
	var segments []WatchSegment
	for _, w := range watchers {
		segments = append(segments, w.Segments()...)
	}
	rep.Watch = CheckWatches(segments, ops)
	for _, p := range rep.Watch.Problems {
		fail("watch: %s", p)
	}
	rep.Violations += len(rep.Watch.Problems)

	artifactsDir := filepath.Join(dir, "check")
	_ = os.MkdirAll(artifactsDir, 0o755)
	checked := ops
	if len(rep.Watch.Problems) == 0 {
		checked, rep.Resolved, rep.Dropped = ResolveUnknown(ops, segments)
	}
	res, err := Check(checked, cfg.budget, artifactsDir)
	rep.Checked, rep.CheckTook, rep.Result = res.Checked, res.Took.Round(time.Millisecond).String(), string(res.Result)
	switch {
	case err != nil:
		fail("checking the history: %v", err)
	case res.Result == porcupine.Illegal:
		rep.Violations++
		fail("the history of %d operations is not linearizable", res.Checked)
	case res.Result == porcupine.Unknown:
		t.Logf("the linearizability check ran out of its %v budget: inconclusive", cfg.budget)
	}
	_ = WriteJSON(filepath.Join(artifactsDir, "history.json"), ops)
	_ = WriteJSON(filepath.Join(artifactsDir, "watches.json"), segments)
	t.Logf("run seed %d: %d operations (%d checked, %s in %s; %d of unknown outcome, %d settled by the watches, %d dropped as never applied), %d watch events, %d resumes, %d acknowledged writes (%d outside the watches' ranges), faults: %s",
		cfg.seed, rep.Ops["total"], rep.Checked, rep.Result, rep.CheckTook, unknownCount(ops), rep.Resolved, rep.Dropped, rep.Watch.Events, rep.Resumes,
		rep.Watch.AckedWrites, rep.Watch.Uncovered, strings.Join(rep.Notes, "; "))
	return rep
}

// finalWrite creates the object "final" through each client in turn until
// one call succeeds; an earlier call of unknown outcome may have created
// it, and then the next finds it there. It returns the version to wait
// for in the watches.
func finalWrite(workers []*worker, h *History) (uint64, error) {
	deadline := time.Now().Add(30 * time.Second)
	ours := map[string]bool{} // every attempt writes its own value: values stay unique
	var last Op
	for i := 0; time.Now().Before(deadline); i++ {
		w := workers[i%len(workers)]
		value := fmt.Sprintf("final.%d", i)
		ours[value] = true
		last = w.do(Input{Kind: OpCreate, Key: "final", Value: value})
		switch last.Output.Status {
		case StatusOK:
			return last.Output.Version, nil
		case StatusExists:
			got := w.do(Input{Kind: OpGet, Key: "final"})
			if got.Output.Status == StatusOK && ours[got.Output.Value] {
				return got.Output.Version, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("no create succeeded within 30s; the last: %s (%s)", last.Output.Status, last.Err)
}

// converged waits until every manager's store, read from its own control
// socket, hashes the same, and returns the hash.
func (c *cluster) converged(timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		hashes := map[string]string{}
		for _, m := range c.managers {
			h, err := c.storeHash(m)
			if err != nil {
				hashes[m.name] = "error: " + err.Error()
				continue
			}
			hashes[m.name] = h
		}
		distinct := map[string]bool{}
		for _, h := range hashes {
			distinct[h] = true
		}
		if len(distinct) == 1 && !strings.HasPrefix(hashes[c.managers[0].name], "error") {
			return hashes[c.managers[0].name], nil
		}
		why = fmt.Sprint(hashes)
		time.Sleep(200 * time.Millisecond)
	}
	return "", fmt.Errorf("after %v: %s", timeout, why)
}

// storeHash lists every object of every kind the cluster has from m's own
// store (serializable reads), and hashes them with the version the lists
// were read at.
func (c *cluster) storeHash(m *manager) (string, error) {
	sum := sha256.New()
	err := c.admin(m, 5*time.Second, func(ctx context.Context, cl *client.Client) error {
		var versions []uint64
		for _, k := range []string{kind, "node", "cluster"} {
			objs, version, err := cl.List(ctx, client.Selector{Kind: k}, client.WithConsistency(client.Serializable))
			if err != nil {
				return err
			}
			versions = append(versions, version)
			sort.Slice(objs, func(i, j int) bool { return objs[i].GetId() < objs[j].GetId() })
			for _, o := range objs {
				b, err := proto.MarshalOptions{Deterministic: true}.Marshal(o)
				if err != nil {
					return err
				}
				fmt.Fprintf(sum, "%d:", len(b))
				sum.Write(b)
			}
		}
		// The three lists must have been read at one version, or the
		// store moved meanwhile: read again.
		if versions[0] != versions[1] || versions[1] != versions[2] {
			return fmt.Errorf("store moved while listing (%v)", versions)
		}
		fmt.Fprintf(sum, "version:%d", versions[0])
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(sum.Sum(nil))[:16], nil
}

// saveArtifacts copies a run's history, watches, visualisation, logs and
// report to the artifacts directory and returns its path.
func saveArtifacts(t *testing.T, dir string, cfg runConfig, rl *runLog, rep *runReport) string {
	base := *flagOut
	if base == "" {
		base = filepath.Join(os.TempDir(), "shoal-robustness")
	}
	out := filepath.Join(base, fmt.Sprintf("seed-%d-%s", cfg.seed, time.Now().Format("20060102-150405")))
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Logf("saving artifacts: %v", err)
		return ""
	}
	entries, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	checks, _ := filepath.Glob(filepath.Join(dir, "check", "*"))
	for _, src := range append(entries, checks...) {
		if b, err := os.ReadFile(src); err == nil {
			_ = os.WriteFile(filepath.Join(out, filepath.Base(src)), b, 0o644)
		}
	}
	_ = os.WriteFile(filepath.Join(out, "run.log"), []byte(rl.String()), 0o644)
	rep.Artifacts = out
	_ = WriteJSON(filepath.Join(out, "report.json"), rep)
	return out
}

func unknownCount(ops []Op) int {
	n := 0
	for _, op := range ops {
		if op.Output.Status == StatusUnknown {
			n++
		}
	}
	return n
}
