package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Op is what a run does.
type Op string

const (
	// OpPut writes: with KeySpace 0 each put creates a new name; with a
	// KeySpace, the names are created first (unless SkipFill) and each put
	// replaces the value of one drawn at random with a value no other put
	// of the run writes, so that every put is a write (shoal answers an
	// update to the value an object holds already without writing).
	OpPut Op = "put"
	// OpGet reads names drawn at random from KeySpace (created first,
	// unless SkipFill).
	OpGet Op = "get"
	// OpTxn writes TxnOps names in one transaction: new names with
	// KeySpace 0, else distinct names drawn from KeySpace (created first,
	// unless SkipFill). One transaction is one operation.
	OpTxn Op = "txn"
	// OpWatch opens Watchers watches, then puts as OpPut does and counts
	// the changes every watcher receives and how long after its put each
	// arrived.
	OpWatch Op = "watch"
	// OpFill creates the KeySpace names once each (a name that exists
	// already counts as existed, not as an error): the measured run is
	// the fill itself.
	OpFill Op = "fill"
)

// MarkEvery is how often, in successful operations, a run notes the time
// since it began, for Result.Rate.
const MarkEvery = 1000

// Config describes a run.
type Config struct {
	Op Op
	// Clients is the number of concurrent callers, each with one request
	// in flight; caller i uses connection i % Conns.
	Clients int
	// Conns is the number of connections (Dialer calls) the callers share.
	Conns int
	// Total is the number of operations of the measured run. With Total 0
	// the run lasts Duration. OpFill ignores both: it makes KeySpace
	// operations.
	Total    int
	Duration time.Duration
	// ValSize is the size in bytes of every value written: a JSON string
	// (quotes included), so a store that wants JSON takes it as it is.
	ValSize int
	// KeySpace is the number of names a run draws from, Prefix followed by
	// 0 ... KeySpace-1. 0 (put, txn and watch only) writes a new name
	// each time: Prefix, a random tag of the run, "-" and a sequence
	// number.
	KeySpace int
	Prefix   string
	// TxnOps is the number of names one OpTxn transaction writes.
	TxnOps int
	// Watchers is the number of watches of an OpWatch run, spread over
	// the connections.
	Watchers int
	// SkipFill skips creating the KeySpace names before the measured run,
	// for names an earlier run created.
	SkipFill bool
	// OpTimeout bounds each operation; 0: none.
	OpTimeout time.Duration
	// Progress says where the run reports how far it got; zero: nowhere.
	Progress Progress
	// Target and Consistency only describe the run in its report.
	Target      string
	Consistency string
}

// Validate checks the configuration, as Run does first, and names the first
// bad value.
func (c *Config) Validate() error {
	switch c.Op {
	case OpPut, OpGet, OpTxn, OpWatch, OpFill:
	default:
		return fmt.Errorf("bench: unknown operation %q", c.Op)
	}
	switch {
	case c.Clients < 1:
		return fmt.Errorf("bench: %d clients: at least 1 is needed", c.Clients)
	case c.Conns < 1:
		return fmt.Errorf("bench: %d connections: at least 1 is needed", c.Conns)
	case c.Conns > c.Clients:
		return fmt.Errorf("bench: %d connections for %d clients: give at most one connection per client", c.Conns, c.Clients)
	case c.Total < 0 || c.Duration < 0:
		return errors.New("bench: the total and the duration must not be negative")
	case c.Op != OpFill && c.Total == 0 && c.Duration == 0:
		return errors.New("bench: give a total number of operations or a duration")
	case c.Op != OpFill && c.Total > 0 && c.Duration > 0:
		return errors.New("bench: give a total number of operations or a duration, not both")
	case c.ValSize < 2:
		return fmt.Errorf("bench: values of %d bytes: at least 2 are needed (a JSON string)", c.ValSize)
	case c.Op == OpWatch && c.ValSize < stampedMin:
		return fmt.Errorf("bench: values of %d bytes: a watch run stamps its values and needs at least %d", c.ValSize, stampedMin)
	case c.KeySpace < 0:
		return fmt.Errorf("bench: key space %d must not be negative", c.KeySpace)
	case c.KeySpace == 0 && (c.Op == OpGet || c.Op == OpFill):
		return fmt.Errorf("bench: %s needs a key space of at least 1", c.Op)
	case c.Op == OpTxn && c.TxnOps < 1:
		return fmt.Errorf("bench: %d operations per transaction: at least 1 is needed", c.TxnOps)
	case c.Op == OpTxn && c.KeySpace > 0 && c.TxnOps > c.KeySpace:
		return fmt.Errorf("bench: %d distinct names per transaction from a key space of %d", c.TxnOps, c.KeySpace)
	case c.Op == OpWatch && c.Watchers < 1:
		return fmt.Errorf("bench: %d watchers: at least 1 is needed", c.Watchers)
	case c.OpTimeout < 0:
		return fmt.Errorf("bench: operation timeout %v must not be negative", c.OpTimeout)
	}
	return nil
}

// Phase is what one measured loop did.
type Phase struct {
	// Ops is the number of operations that succeeded; Existed, of a fill,
	// the names that existed already (not counted in Ops).
	Ops     int64
	Existed int64
	// Errors is the number that failed, ErrorsByCode the same by gRPC code
	// name ("Unavailable"). Operations cut short by the run's context
	// ending count in neither.
	Errors       int64
	ErrorsByCode map[string]int64
	// Elapsed runs from the first operation's start to the last one's end.
	Elapsed time.Duration
	// Latency holds the latency of every successful operation.
	Latency *Histogram
	marks   []time.Duration
}

// Throughput is the successful operations per second.
func (p *Phase) Throughput() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Ops) / p.Elapsed.Seconds()
}

// Rate is the successful operations per second between the from-th and
// the to-th success, both multiples of MarkEvery (from may be 0: the
// start). ok is false when the run did not get that far.
func (p *Phase) Rate(from, to int64) (rate float64, ok bool) {
	at := func(n int64) (time.Duration, bool) {
		if n == 0 {
			return 0, true
		}
		i := n/MarkEvery - 1
		if n%MarkEvery != 0 || i >= int64(len(p.marks)) || p.marks[i] == 0 {
			return 0, false
		}
		return p.marks[i], true
	}
	t0, ok0 := at(from)
	t1, ok1 := at(to)
	if !ok0 || !ok1 || to <= from || t1 <= t0 {
		return 0, false
	}
	return float64(to-from) / (t1 - t0).Seconds(), true
}

// Result is what a run did.
type Result struct {
	Op          Op
	Target      string
	Clients     int
	Conns       int
	ValSize     int
	KeySpace    int
	TxnOps      int
	Watchers    int
	Consistency string
	// Phase is the measured run.
	Phase
	// Fill is the creation of the KeySpace names before the measured run;
	// nil when there was none.
	Fill *Phase
	// Watch is what the watchers of an OpWatch run received.
	Watch *WatchResult
	// Interrupted is set when the run's context ended before the run did.
	Interrupted bool
}

// WatchResult is what the watchers of a run received.
type WatchResult struct {
	Watchers int
	// Events is the number of changes received by all watchers together;
	// Expected, the successful puts times the watchers.
	Events   int64
	Expected int64
	// Elapsed runs from the first put's start to the last change
	// received.
	Elapsed time.Duration
	// Latency is, for every change received, the time since its put began.
	Latency *Histogram
	// Errors counts the watches that failed before the run ended.
	Errors       int64
	ErrorsByCode map[string]int64
}

// Throughput is the changes received per second, by all watchers.
func (w *WatchResult) Throughput() float64 {
	if w.Elapsed <= 0 {
		return 0
	}
	return float64(w.Events) / w.Elapsed.Seconds()
}

// Run dials cfg.Conns connections with dial, runs cfg on them and returns
// what happened. It fails when the configuration is invalid, a connection
// cannot be made, the names of the key space cannot be created, or the
// target cannot do cfg.Op (Txn needs a Transactor, Watch a Watchable).
// Failed operations are counted, not returned. When ctx ends, Run stops
// and returns what it measured so far, marked Interrupted.
func Run(ctx context.Context, cfg Config, dial Dialer) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	targets := make([]Target, 0, cfg.Conns)
	defer func() {
		for _, t := range targets {
			t.Close()
		}
	}()
	for i := range cfg.Conns {
		t, err := dial(ctx, i)
		if err != nil {
			return nil, fmt.Errorf("bench: connection %d: %w", i+1, err)
		}
		targets = append(targets, t)
	}
	switch cfg.Op {
	case OpTxn:
		if _, ok := targets[0].(Transactor); !ok {
			return nil, fmt.Errorf("bench: the target %s has no transactions", cfg.Target)
		}
	case OpWatch:
		if _, ok := targets[0].(Watchable); !ok {
			return nil, fmt.Errorf("bench: the target %s has no watches", cfg.Target)
		}
	}
	r := &runner{cfg: cfg, targets: targets, tag: runTag(), val: makeValue(cfg.ValSize)}
	res := &Result{
		Op: cfg.Op, Target: cfg.Target, Clients: cfg.Clients, Conns: cfg.Conns, ValSize: cfg.ValSize,
		KeySpace: cfg.KeySpace, Consistency: cfg.Consistency,
	}
	if cfg.Op == OpTxn {
		res.TxnOps = cfg.TxnOps
	}
	if cfg.Op == OpWatch {
		res.Watchers = cfg.Watchers
	}
	if cfg.Op == OpGet {
		if res.Consistency == "" {
			res.Consistency = "linearizable"
		}
	} else {
		res.Consistency = ""
	}

	if cfg.KeySpace > 0 && !cfg.SkipFill && cfg.Op != OpFill {
		fill := r.loop(ctx, "fill", int64(cfg.KeySpace), 0, r.fillOp)
		res.Fill = fill
		if ctx.Err() != nil {
			res.Interrupted = true
			return res, nil
		}
		if fill.Errors > 0 {
			return nil, fmt.Errorf("bench: creating the %d names of the key space: %d failed (%s)", cfg.KeySpace, fill.Errors, codeList(fill.ErrorsByCode))
		}
	}

	var op opFunc
	total := int64(cfg.Total)
	dur := cfg.Duration
	switch cfg.Op {
	case OpFill:
		op, total, dur = r.fillOp, int64(cfg.KeySpace), 0
	case OpPut:
		op = r.putOp
	case OpGet:
		op = r.getOp
	case OpTxn:
		op = r.txnOp
	case OpWatch:
		op = r.stampedPutOp
	}
	if cfg.Op == OpWatch {
		w, err := r.startWatches(ctx)
		if err != nil {
			return nil, err
		}
		res.Phase = *r.loop(ctx, string(cfg.Op), total, dur, op)
		res.Watch = w.finish(ctx, res.Ops, cfg.OpTimeout)
	} else {
		res.Phase = *r.loop(ctx, string(cfg.Op), total, dur, op)
	}
	res.Interrupted = ctx.Err() != nil
	return res, nil
}

// runner holds what a run's loops share.
type runner struct {
	cfg     Config
	targets []Target
	tag     string // makes the new names of this run unique
	val     []byte
}

// opFunc does the seq-th operation of a loop on t; rnd belongs to the
// caller. existed reports a fill's name that was there already.
type opFunc func(ctx context.Context, t Target, seq int64, rnd *mrand.Rand) (existed bool, err error)

// name is the i-th name of the key space.
func (r *runner) name(i int64) string { return r.cfg.Prefix + strconv.FormatInt(i, 10) }

// newName is the seq-th new name of this run.
func (r *runner) newName(seq int64) string {
	return r.cfg.Prefix + r.tag + "-" + strconv.FormatInt(seq, 10)
}

// newPrefix begins every new name of this run.
func (r *runner) newPrefix() string { return r.cfg.Prefix + r.tag + "-" }

func (r *runner) pick(rnd *mrand.Rand) string {
	return r.name(rnd.Int64N(int64(r.cfg.KeySpace)))
}

func (r *runner) fillOp(ctx context.Context, t Target, seq int64, _ *mrand.Rand) (bool, error) {
	err := t.Create(ctx, r.name(seq), r.val)
	if status.Code(err) == codes.AlreadyExists {
		return true, nil
	}
	return false, err
}

func (r *runner) putOp(ctx context.Context, t Target, seq int64, rnd *mrand.Rand) (bool, error) {
	if r.cfg.KeySpace == 0 {
		return false, t.Create(ctx, r.newName(seq), r.val)
	}
	return false, t.Put(ctx, r.pick(rnd), r.distinct(seq))
}

// distinct returns the run's value with seq written after its opening
// quote, in base 36 and zero-padded to as many digits as the value has room
// for, up to 12: a value no other operation of the run writes, provided
// there are fewer than 36 to the power of that width (a 16-byte value
// covers 4.7e18).
func (r *runner) distinct(seq int64) []byte {
	v := make([]byte, len(r.val))
	copy(v, r.val)
	width := min(len(v)-2, 12)
	for i := width; i > 0; i-- {
		v[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[seq%36]
		seq /= 36
	}
	return v
}

func (r *runner) getOp(ctx context.Context, t Target, _ int64, rnd *mrand.Rand) (bool, error) {
	return false, t.Get(ctx, r.pick(rnd))
}

func (r *runner) txnOp(ctx context.Context, t Target, seq int64, rnd *mrand.Rand) (bool, error) {
	n := r.cfg.TxnOps
	keys := make([]string, 0, n)
	if r.cfg.KeySpace == 0 {
		for j := range n {
			keys = append(keys, r.newName(seq*int64(n)+int64(j)))
		}
		return false, t.(Transactor).Txn(ctx, keys, r.val, true)
	}
	seen := make(map[int64]bool, n)
	for len(keys) < n {
		i := rnd.Int64N(int64(r.cfg.KeySpace))
		if !seen[i] {
			seen[i] = true
			keys = append(keys, r.name(i))
		}
	}
	return false, t.(Transactor).Txn(ctx, keys, r.val, false)
}

// stampedPutOp puts as putOp does, with a value that carries the time
// the put began, for the watchers.
func (r *runner) stampedPutOp(ctx context.Context, t Target, seq int64, rnd *mrand.Rand) (bool, error) {
	val := stampValue(r.val, time.Now())
	if r.cfg.KeySpace == 0 {
		return false, t.Create(ctx, r.newName(seq), val)
	}
	return false, t.Put(ctx, r.pick(rnd), val)
}

// loop runs op from cfg.Clients callers, total times or for dur, and
// measures it.
func (r *runner) loop(ctx context.Context, label string, total int64, dur time.Duration, op opFunc) *Phase {
	var (
		issued, done, failed atomic.Int64
		stop                 atomic.Bool
		marksMu              sync.Mutex
		marks                []time.Duration
	)
	next := func() (int64, bool) {
		if stop.Load() || ctx.Err() != nil {
			return 0, false
		}
		n := issued.Add(1)
		if total > 0 && n > total {
			return 0, false
		}
		return n - 1, true
	}
	start := time.Now()
	if dur > 0 {
		timer := time.AfterFunc(dur, func() { stop.Store(true) })
		defer timer.Stop()
	}
	stopProgress := r.cfg.Progress.start(label, total, dur, &done, &failed)

	type callerStats struct {
		hist    Histogram
		existed int64
		byCode  map[string]int64
		end     time.Time
	}
	stats := make([]callerStats, r.cfg.Clients)
	var wg sync.WaitGroup
	for c := range r.cfg.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &stats[c]
			st.byCode = map[string]int64{}
			t := r.targets[c%len(r.targets)]
			rnd := mrand.New(mrand.NewPCG(uint64(start.UnixNano()), uint64(c)))
			for {
				seq, ok := next()
				if !ok {
					break
				}
				opCtx, cancel := ctx, context.CancelFunc(func() {})
				if r.cfg.OpTimeout > 0 {
					opCtx, cancel = context.WithTimeout(ctx, r.cfg.OpTimeout)
				}
				t0 := time.Now()
				existed, err := op(opCtx, t, seq, rnd)
				t1 := time.Now()
				cancel()
				st.end = t1
				switch {
				case err != nil && ctx.Err() != nil:
					// Cut short by the run's end: neither done nor failed.
				case err != nil:
					st.byCode[Code(err)]++
					failed.Add(1)
				case existed:
					st.existed++
				default:
					st.hist.Record(t1.Sub(t0))
					if n := done.Add(1); n%MarkEvery == 0 {
						marksMu.Lock()
						i := int(n/MarkEvery - 1)
						for len(marks) <= i {
							marks = append(marks, 0)
						}
						marks[i] = t1.Sub(start)
						marksMu.Unlock()
					}
				}
			}
		}()
	}
	wg.Wait()
	stopProgress()

	p := &Phase{Ops: done.Load(), Errors: failed.Load(), ErrorsByCode: map[string]int64{}, Latency: &Histogram{}, marks: marks}
	end := start
	for i := range stats {
		st := &stats[i]
		p.Latency.Merge(&st.hist)
		p.Existed += st.existed
		for code, n := range st.byCode {
			p.ErrorsByCode[code] += n
		}
		if st.end.After(end) {
			end = st.end
		}
	}
	p.Elapsed = end.Sub(start)
	return p
}

// Code names the gRPC code of err ("Unavailable"), the way the report
// counts errors; an error without one is "Unknown", a context's own
// errors are "DeadlineExceeded" and "Canceled".
func Code(err error) string {
	switch {
	case err == nil:
		return codes.OK.String()
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded.String()
	case errors.Is(err, context.Canceled):
		return codes.Canceled.String()
	}
	return status.Code(err).String()
}

// codeList writes counts by code as "Unavailable 3, Unknown 1".
func codeList(byCode map[string]int64) string {
	codes := slices.Sorted(maps.Keys(byCode))
	parts := make([]string, 0, len(codes))
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%s %d", c, byCode[c]))
	}
	return strings.Join(parts, ", ")
}

// runTag returns a random tag of 6 lowercase letters and digits.
func runTag() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// makeValue returns a JSON string of exactly size bytes: quotes around
// random letters and digits.
func makeValue(size int) []byte {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, size)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	b[0], b[size-1] = '"', '"'
	return b
}

// A stamped value is a JSON string that begins with the time its put
// began, 19 digits of Unix nanoseconds.
const (
	stampDigits = 19
	stampedMin  = stampDigits + 2
)

func stampValue(base []byte, now time.Time) []byte {
	v := make([]byte, len(base))
	copy(v, base)
	ns := strconv.FormatInt(now.UnixNano(), 10)
	for len(ns) < stampDigits {
		ns = "0" + ns
	}
	copy(v[1:], ns)
	return v
}

// stampOf reads the time a stamped value's put began.
func stampOf(val []byte) (time.Time, bool) {
	if len(val) < stampedMin {
		return time.Time{}, false
	}
	ns, err := strconv.ParseInt(string(val[1:1+stampDigits]), 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, ns), true
}
