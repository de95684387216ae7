package manager

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/store"
)

// instruments are the manager's counters and histograms, updated where
// the work happens; the rest of the metrics are read at each scrape (see
// collector).
type instruments struct {
	reg  *prometheus.Registry
	grpc *grpcprom.ServerMetrics

	proposalsCommitted prometheus.Counter
	proposalsFailed    prometheus.Counter
	proposalsPending   prometheus.Gauge
	applySeconds       prometheus.Histogram
	snapshotSeconds    prometheus.Histogram
	snapshotBytes      prometheus.Gauge
	restoreSeconds     prometheus.Histogram
	leaderChanges      prometheus.Counter
	peerRoundTrip      *prometheus.HistogramVec
	watchers           prometheus.Gauge

	// snapshots are the last snapshots taken, for the dashboard.
	snapMu    sync.Mutex
	snapshots []snapshotRecord
	// leaders are the last changes of leader, for the dashboard.
	leaderMu sync.Mutex
	leaders  []leaderRecord

	objects objectCounts
}

// snapshotRecord is one snapshot this manager wrote.
type snapshotRecord struct {
	At       time.Time
	Bytes    int64
	Duration time.Duration
}

// leaderRecord is a change of the leader this manager knows.
type leaderRecord struct {
	At     time.Time
	Leader uint64
	Term   uint64
}

// keptRecords bounds the snapshots and leader changes kept for the
// dashboard.
const keptRecords = 100

// latencyBuckets go from 0.1ms to about 6.5s.
var latencyBuckets = prometheus.ExponentialBuckets(0.0001, 2, 17)

func newInstruments() *instruments {
	ins := &instruments{
		reg: prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets(latencyBuckets))),
		proposalsCommitted: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_proposals_committed_total",
			Help: "Proposals made by this manager that were committed and applied (the store's rejections included)."}),
		proposalsFailed: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_proposals_failed_total",
			Help: "Proposals made by this manager that failed or whose outcome is unknown (no leader, lost leadership, timeout)."}),
		proposalsPending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_proposals_pending",
			Help: "Proposals made by this manager that wait to be committed and applied."}),
		applySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_apply_duration_seconds",
			Help: "Time to apply one committed entry to the store.", Buckets: latencyBuckets}),
		snapshotSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_snapshot_duration_seconds",
			Help: "Time to write the store's snapshot data.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		snapshotBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_snapshot_size_bytes",
			Help: "Size of the store's data in the last snapshot this manager took, before encryption."}),
		restoreSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "shoal_snapshot_restore_duration_seconds",
			Help: "Time to replace the store with a snapshot.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}),
		leaderChanges: prometheus.NewCounter(prometheus.CounterOpts{Name: "shoal_raft_leader_changes_total",
			Help: "Changes of the leader this manager knows, to no leader included."}),
		peerRoundTrip: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "shoal_peer_round_trip_seconds",
			Help: "Round trip of a call to another manager (its GetClusterInfo, every few seconds).", Buckets: latencyBuckets},
			[]string{"peer"}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_watchers",
			Help: "Watch calls this manager serves."}),
	}
	return ins
}

// register registers every metric of the manager on ins.reg: the
// instruments, the collector reading m at each scrape, and the gRPC
// servers' metrics.
func (ins *instruments) register(m *Manager) {
	ins.reg.MustRegister(ins.grpc, ins.proposalsCommitted, ins.proposalsFailed, ins.proposalsPending,
		ins.applySeconds, ins.snapshotSeconds, ins.snapshotBytes, ins.restoreSeconds, ins.leaderChanges,
		ins.peerRoundTrip, ins.watchers, (*collector)(m),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}

func (ins *instruments) recordSnapshot(r snapshotRecord) {
	ins.snapshotSeconds.Observe(r.Duration.Seconds())
	ins.snapshotBytes.Set(float64(r.Bytes))
	ins.snapMu.Lock()
	defer ins.snapMu.Unlock()
	ins.snapshots = appendBounded(ins.snapshots, r)
}

func (ins *instruments) lastSnapshots() []snapshotRecord {
	ins.snapMu.Lock()
	defer ins.snapMu.Unlock()
	return append([]snapshotRecord(nil), ins.snapshots...)
}

func (ins *instruments) recordLeader(r leaderRecord) {
	ins.leaderMu.Lock()
	defer ins.leaderMu.Unlock()
	if n := len(ins.leaders); n > 0 && ins.leaders[n-1].Leader == r.Leader {
		return
	}
	if len(ins.leaders) > 0 {
		ins.leaderChanges.Inc()
	}
	ins.leaders = appendBounded(ins.leaders, r)
}

func (ins *instruments) lastLeaders() []leaderRecord {
	ins.leaderMu.Lock()
	defer ins.leaderMu.Unlock()
	return append([]leaderRecord(nil), ins.leaders...)
}

func appendBounded[T any](s []T, v T) []T {
	s = append(s, v)
	if len(s) > keptRecords {
		s = append(s[:0], s[len(s)-keptRecords:]...)
	}
	return s
}

// timedStateMachine measures what the node asks of the store.
type timedStateMachine struct {
	sm  raft.BatchApplier
	ins *instruments
}

func (t timedStateMachine) Apply(index uint64, payload []byte) (any, error) {
	start := time.Now()
	res, err := t.sm.Apply(index, payload)
	t.ins.applySeconds.Observe(time.Since(start).Seconds())
	return res, err
}

// ApplyBatch applies a run of entries together, and records the time of
// each entry as its share of the run's.
func (t timedStateMachine) ApplyBatch(first uint64, payloads [][]byte) ([]any, []error) {
	start := time.Now()
	results, errs := t.sm.ApplyBatch(first, payloads)
	if len(payloads) > 0 {
		each := time.Since(start).Seconds() / float64(len(payloads))
		for range payloads {
			t.ins.applySeconds.Observe(each)
		}
	}
	return results, errs
}

func (t timedStateMachine) Snapshot() (func(w io.Writer) error, error) {
	write, err := t.sm.Snapshot()
	if err != nil {
		return nil, err
	}
	return func(w io.Writer) error {
		start := time.Now()
		cw := &countingWriter{w: w}
		err := write(cw)
		if err == nil {
			t.ins.recordSnapshot(snapshotRecord{At: start, Bytes: cw.n, Duration: time.Since(start)})
		}
		return err
	}, nil
}

func (t timedStateMachine) Restore(index uint64, r io.Reader) error {
	start := time.Now()
	err := t.sm.Restore(index, r)
	if err == nil {
		t.ins.restoreSeconds.Observe(time.Since(start).Seconds())
	}
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// countProposal records the outcome of one proposal: a rejection by the
// store was committed all the same.
func (ins *instruments) countProposal(err error) {
	switch {
	case err == nil, errors.Is(err, store.ErrExists), errors.Is(err, store.ErrNotFound),
		errors.Is(err, store.ErrVersionConflict), errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrTooLarge):
		ins.proposalsCommitted.Inc()
	default:
		ins.proposalsFailed.Inc()
	}
}

// followLeaders records every change of the leader this manager knows,
// until ctx ends.
func (m *Manager) followLeaders(ctx context.Context) {
	for {
		changed := m.node.LeaderChanged()
		if st, err := m.node.Status(); err == nil {
			m.ins.recordLeader(leaderRecord{At: time.Now(), Leader: st.Leader, Term: st.Term})
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		case <-m.node.Done():
			return
		}
	}
}

// objectCounts counts the store's objects per kind, kept current by a
// watch of every object.
type objectCounts struct {
	mu     sync.Mutex
	byKind map[string]int
	ready  atomic.Bool
}

func (c *objectCounts) snapshot() (map[string]int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.byKind))
	for k, n := range c.byKind {
		out[k] = n
	}
	return out, c.ready.Load()
}

// countObjects keeps m.ins.objects current until ctx ends: it counts every
// object once, then follows the changes, and counts again when the watch
// ends (the store restored from a snapshot, or the watch fell behind).
func (m *Manager) countObjects(ctx context.Context) {
	c := &m.ins.objects
	for ctx.Err() == nil {
		byKind := map[string]int{}
		w, err := m.store.ViewAndWatch(store.Selector{}, func(tx store.ReadTx) {
			objs, err := tx.List(store.Selector{})
			if err != nil {
				return
			}
			for _, o := range objs {
				byKind[o.GetKind()]++
			}
		})
		if err != nil {
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		c.mu.Lock()
		c.byKind = byKind
		c.mu.Unlock()
		c.ready.Store(true)
		m.followObjects(ctx, w)
		w.Close()
	}
}

func (m *Manager) followObjects(ctx context.Context, w *store.Watcher) {
	c := &m.ins.objects
	for {
		ev, err := w.Next(ctx)
		if err != nil {
			return
		}
		c.mu.Lock()
		switch ev.Type {
		case store.EventCreate:
			c.byKind[ev.Object.GetKind()]++
		case store.EventDelete:
			c.byKind[ev.Object.GetKind()]--
		}
		c.mu.Unlock()
	}
}

// startInstruments starts what keeps the instruments current, until the
// manager stops serving: the leader changes and the objects per kind.
func (m *Manager) startInstruments() {
	m.leaderWork.Add(2)
	go func() { defer m.leaderWork.Done(); m.followLeaders(m.serving) }()
	go func() { defer m.leaderWork.Done(); m.countObjects(m.serving) }()
}
