package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// memStore is a store in memory that every fake connection shares; it
// fails every failEvery-th write with UNAVAILABLE (0: never).
type memStore struct {
	mu        sync.Mutex
	kv        map[string][]byte
	watchers  []chan [2]string
	writes    atomic.Int64
	failEvery int64
	dials     atomic.Int64
	closed    atomic.Int64
	txns      atomic.Int64
	putValues map[string]int // how many Put calls wrote each value
}

func newMemStore() *memStore { return &memStore{kv: map[string][]byte{}} }

func (m *memStore) dial(_ context.Context, _ int) (Target, error) {
	m.dials.Add(1)
	return &memTarget{m}, nil
}

func (m *memStore) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.kv)
}

type memTarget struct{ m *memStore }

func (t *memTarget) write(key string, val []byte, mustExist, mustNotExist bool) error {
	m := t.m
	if n := m.writes.Add(1); m.failEvery > 0 && n%m.failEvery == 0 {
		return status.Error(codes.Unavailable, "no leader")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.kv[key]
	switch {
	case mustExist && !ok:
		return status.Error(codes.NotFound, key)
	case mustNotExist && ok:
		return status.Error(codes.AlreadyExists, key)
	}
	m.kv[key] = append([]byte(nil), val...)
	for _, w := range m.watchers {
		w <- [2]string{key, string(val)}
	}
	return nil
}

func (t *memTarget) Create(_ context.Context, key string, val []byte) error {
	return t.write(key, val, false, true)
}

func (t *memTarget) Put(_ context.Context, key string, val []byte) error {
	t.m.mu.Lock()
	if t.m.putValues == nil {
		t.m.putValues = map[string]int{}
	}
	t.m.putValues[string(val)]++
	t.m.mu.Unlock()
	return t.write(key, val, true, false)
}

func (t *memTarget) Get(_ context.Context, key string) error {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	if _, ok := t.m.kv[key]; !ok {
		return status.Error(codes.NotFound, key)
	}
	return nil
}

func (t *memTarget) Txn(_ context.Context, keys []string, val []byte, fresh bool) error {
	t.m.txns.Add(1)
	for _, k := range keys {
		if err := t.write(k, val, !fresh, fresh); err != nil {
			return err
		}
	}
	return nil
}

func (t *memTarget) Watch(ctx context.Context, prefix string) (WatchStream, error) {
	ch := make(chan [2]string, 1<<16)
	t.m.mu.Lock()
	t.m.watchers = append(t.m.watchers, ch)
	t.m.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	return &memWatch{ch: ch, prefix: prefix, ctx: ctx, cancel: cancel}, nil
}

func (t *memTarget) Close() error {
	t.m.closed.Add(1)
	return nil
}

type memWatch struct {
	ch     chan [2]string
	prefix string
	ctx    context.Context
	cancel context.CancelFunc
}

func (w *memWatch) Next() (string, []byte, error) {
	for {
		select {
		case kv := <-w.ch:
			if strings.HasPrefix(kv[0], w.prefix) {
				return kv[0], []byte(kv[1]), nil
			}
		case <-w.ctx.Done():
			return "", nil, status.Error(codes.Canceled, "closed")
		}
	}
}

func (w *memWatch) Close() { w.cancel() }

func TestRunCounts(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		failEvery int64
		ops       int64
		errors    map[string]int64
		existed   int64
		filled    bool // the key space was created first
		stored    int  // objects in the store at the end
	}{
		{"put, new names", Config{Op: OpPut, Clients: 8, Conns: 2, Total: 500}, 0, 500, nil, 0, false, 500},
		{"put, key space", Config{Op: OpPut, Clients: 8, Conns: 3, Total: 500, KeySpace: 20}, 0, 500, nil, 0, true, 20},
		{"put, failures by code", Config{Op: OpPut, Clients: 4, Conns: 4, Total: 100}, 10, 90, map[string]int64{"Unavailable": 10}, 0, false, 90},
		{"get", Config{Op: OpGet, Clients: 5, Conns: 1, Total: 300, KeySpace: 50}, 0, 300, nil, 0, true, 50},
		{"get without fill finds nothing", Config{Op: OpGet, Clients: 2, Conns: 1, Total: 30, KeySpace: 50, SkipFill: true}, 0, 0, map[string]int64{"NotFound": 30}, 0, false, 0},
		{"txn, new names", Config{Op: OpTxn, Clients: 3, Conns: 1, Total: 40, TxnOps: 5}, 0, 40, nil, 0, false, 200},
		{"txn, key space", Config{Op: OpTxn, Clients: 3, Conns: 2, Total: 40, TxnOps: 5, KeySpace: 10}, 0, 40, nil, 0, true, 10},
		{"fill", Config{Op: OpFill, Clients: 7, Conns: 2, KeySpace: 1234}, 0, 1234, nil, 0, false, 1234},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemStore()
			m.failEvery = tt.failEvery
			cfg := tt.cfg
			cfg.ValSize, cfg.Prefix = 64, "k-"
			res, err := Run(context.Background(), cfg, m.dial)
			if err != nil {
				t.Fatal(err)
			}
			if res.Ops != tt.ops || res.Latency.Count() != int(tt.ops) {
				t.Errorf("ops %d (latencies %d), want %d", res.Ops, res.Latency.Count(), tt.ops)
			}
			var wantErrs int64
			for _, n := range tt.errors {
				wantErrs += n
			}
			if res.Errors != wantErrs || len(res.ErrorsByCode) != len(tt.errors) {
				t.Errorf("errors %d %v, want %d %v", res.Errors, res.ErrorsByCode, wantErrs, tt.errors)
			}
			for code, n := range tt.errors {
				if res.ErrorsByCode[code] != n {
					t.Errorf("errors %v, want %v", res.ErrorsByCode, tt.errors)
				}
			}
			if res.Existed != tt.existed {
				t.Errorf("existed %d, want %d", res.Existed, tt.existed)
			}
			if (res.Fill != nil) != tt.filled {
				t.Errorf("fill %+v, want one: %v", res.Fill, tt.filled)
			}
			if res.Fill != nil && res.Fill.Ops+res.Fill.Existed != int64(cfg.KeySpace) {
				t.Errorf("fill created %d and found %d of %d names", res.Fill.Ops, res.Fill.Existed, cfg.KeySpace)
			}
			if got := m.len(); got != tt.stored {
				t.Errorf("the store holds %d objects, want %d", got, tt.stored)
			}
			if m.dials.Load() != int64(cfg.Conns) || m.closed.Load() != int64(cfg.Conns) {
				t.Errorf("%d connections opened and %d closed, want %d", m.dials.Load(), m.closed.Load(), cfg.Conns)
			}
			if cfg.Op == OpTxn && m.txns.Load() != int64(cfg.Total) {
				t.Errorf("%d transactions, want %d", m.txns.Load(), cfg.Total)
			}
			if res.Interrupted {
				t.Error("interrupted")
			}
		})
	}
}

// Every put of a run writes a value no other put wrote: a put of the value
// an object holds already is no write in shoal.
func TestPutsWriteDistinctValues(t *testing.T) {
	m := newMemStore()
	cfg := Config{Op: OpPut, Clients: 8, Conns: 2, Total: 2000, KeySpace: 10, ValSize: 16, Prefix: "k-"}
	if _, err := Run(context.Background(), cfg, m.dial); err != nil {
		t.Fatal(err)
	}
	if len(m.putValues) != cfg.Total {
		t.Fatalf("%d puts wrote %d distinct values", cfg.Total, len(m.putValues))
	}
	for v := range m.putValues {
		if len(v) != cfg.ValSize || v[0] != '"' || v[len(v)-1] != '"' {
			t.Fatalf("value %q is not a JSON string of %d bytes", v, cfg.ValSize)
		}
	}
}

func TestFillTwiceFindsTheNames(t *testing.T) {
	m := newMemStore()
	cfg := Config{Op: OpFill, Clients: 3, Conns: 1, KeySpace: 100, ValSize: 8, Prefix: "k-"}
	if _, err := Run(context.Background(), cfg, m.dial); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), cfg, m.dial)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops != 0 || res.Existed != 100 || res.Errors != 0 {
		t.Errorf("second fill: %d created, %d existed, %d errors; want 0, 100, 0", res.Ops, res.Existed, res.Errors)
	}
}

func TestRunFailsWhenTheFillFails(t *testing.T) {
	m := newMemStore()
	m.failEvery = 3
	_, err := Run(context.Background(), Config{Op: OpGet, Clients: 2, Conns: 1, Total: 10, KeySpace: 10, ValSize: 8}, m.dial)
	if err == nil || !strings.Contains(err.Error(), "Unavailable") {
		t.Fatalf("Run = %v, want the fill's failures by code", err)
	}
}

func TestRunForADuration(t *testing.T) {
	m := newMemStore()
	res, err := Run(context.Background(), Config{Op: OpPut, Clients: 2, Conns: 1, Duration: 50 * time.Millisecond, ValSize: 8}, m.dial)
	if err != nil {
		t.Fatal(err)
	}
	if res.Ops == 0 || int(res.Ops) != m.len() || res.Errors != 0 {
		t.Errorf("%d ops, %d errors, %d objects stored", res.Ops, res.Errors, m.len())
	}
}

func TestRunInterrupted(t *testing.T) {
	m := newMemStore()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Run(ctx, Config{Op: OpPut, Clients: 2, Conns: 1, Total: 100, ValSize: 8}, m.dial)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Interrupted || res.Ops != 0 || res.Errors != 0 {
		t.Errorf("interrupted %v, %d ops, %d errors; want an interrupted empty run", res.Interrupted, res.Ops, res.Errors)
	}
}

func TestWatchRun(t *testing.T) {
	m := newMemStore()
	cfg := Config{Op: OpWatch, Clients: 4, Conns: 2, Total: 200, Watchers: 3, ValSize: 64, Prefix: "w-"}
	res, err := Run(context.Background(), cfg, m.dial)
	if err != nil {
		t.Fatal(err)
	}
	w := res.Watch
	if res.Ops != 200 || w == nil || w.Watchers != 3 || w.Expected != 600 || w.Events != 600 || w.Latency.Count() != 600 || w.Errors != 0 {
		t.Fatalf("ops %d, watch %+v", res.Ops, w)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := Config{Op: OpPut, Clients: 1, Conns: 1, Total: 1, ValSize: 8}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"unknown op", func(c *Config) { c.Op = "range" }, "unknown operation"},
		{"no clients", func(c *Config) { c.Clients = 0 }, "clients"},
		{"more conns than clients", func(c *Config) { c.Conns = 2 }, "at most one connection per client"},
		{"neither total nor duration", func(c *Config) { c.Total = 0 }, "total number of operations or a duration"},
		{"both total and duration", func(c *Config) { c.Duration = time.Second }, "not both"},
		{"tiny value", func(c *Config) { c.ValSize = 1 }, "at least 2"},
		{"stamped value too small", func(c *Config) { c.Op, c.Watchers, c.ValSize = OpWatch, 1, 10 }, "stamps"},
		{"get without key space", func(c *Config) { c.Op = OpGet }, "key space of at least 1"},
		{"txn larger than the key space", func(c *Config) { c.Op, c.TxnOps, c.KeySpace = OpTxn, 5, 3 }, "distinct names"},
		{"watch without watchers", func(c *Config) { c.Op = OpWatch; c.ValSize = 64 }, "watchers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.change(&cfg)
			_, err := Run(context.Background(), cfg, newMemStore().dial)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestReports(t *testing.T) {
	m := newMemStore()
	res, err := Run(context.Background(), Config{Op: OpGet, Clients: 2, Conns: 1, Total: 70, KeySpace: 5, ValSize: 16, Target: "mem", Consistency: "serializable"}, m.dial)
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := WriteText(&text, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"get: 70 ops", "mem, 2 clients over 1 connection, 16-byte values, names drawn from 5, serializable",
		"first created the 5 names", "p99.9", "up to", "count"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the report does not say %q:\n%s", want, text.String())
		}
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Op           string             `json:"op"`
		Ops          int64              `json:"ops"`
		Errors       int64              `json:"errors"`
		ErrorsByCode map[string]int64   `json:"errors_by_code"`
		LatencyMs    map[string]float64 `json:"latency_ms"`
		Histogram    []struct {
			UpToMs float64 `json:"up_to_ms"`
			Count  int     `json:"count"`
		} `json:"histogram"`
		Fill *struct {
			Ops int64 `json:"ops"`
		} `json:"fill"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	sum := 0
	for _, bk := range v.Histogram {
		sum += bk.Count
	}
	if v.Op != "get" || v.Ops != 70 || v.Errors != 0 || v.Fill == nil || v.Fill.Ops != 5 || sum != 70 {
		t.Errorf("JSON %s", b)
	}
	for _, k := range []string{"min", "mean", "p50", "p90", "p99", "p99_9", "max"} {
		if _, ok := v.LatencyMs[k]; !ok {
			t.Errorf("latency_ms has no %s: %s", k, b)
		}
	}
}

func TestProgressLine(t *testing.T) {
	tests := []struct {
		total   int64
		dur     time.Duration
		elapsed time.Duration
		ok, bad int64
		bar     bool
		want    string
	}{
		{100, 0, 2 * time.Second, 40, 10, false, "bench put:  50%, 50/100 ops, 20/s, 10 errors, 2s"},
		{0, 10 * time.Second, 5 * time.Second, 100, 0, false, "bench put:  50%, 100 ops, 20/s, 0 errors, 5s"},
		{100, 0, time.Second, 100, 0, true, "put [##############################] 100%  100/100 ops, 100/s, 0 errors, 1s"},
		{0, time.Second, 3 * time.Second, 1, 0, true, "put [##############################] 100%  1 ops, 0/s, 0 errors, 3s"},
	}
	for _, tt := range tests {
		if got := progressLine("put", tt.total, tt.dur, tt.elapsed, tt.ok, tt.bad, tt.bar); got != tt.want {
			t.Errorf("progressLine = %q, want %q", got, tt.want)
		}
	}
}

func TestProgressWritesLines(t *testing.T) {
	var buf lockedBuf
	m := newMemStore()
	_, err := Run(context.Background(), Config{Op: OpPut, Clients: 1, Conns: 1, Duration: 60 * time.Millisecond, ValSize: 8,
		Progress: Progress{W: &buf, Every: 10 * time.Millisecond}}, m.dial)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "bench put: ") {
		t.Errorf("no progress line: %q", buf.String())
	}
}

func TestStamp(t *testing.T) {
	base := makeValue(40)
	now := time.Unix(1700000000, 123456789)
	v := stampValue(base, now)
	if !json.Valid(v) || len(v) != 40 {
		t.Fatalf("stamped value %q: not a 40-byte JSON string", v)
	}
	if got, ok := stampOf(v); !ok || !got.Equal(now) {
		t.Errorf("stampOf = %v, %v; want %v", got, ok, now)
	}
	if _, ok := stampOf(base); ok {
		t.Error("an unstamped value gives a time")
	}
	if !json.Valid(makeValue(2)) || len(makeValue(256)) != 256 || !json.Valid(makeValue(256)) {
		t.Error("makeValue does not make JSON strings of the size asked")
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
