package robustness

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/client"
)

// kind is the kind of every object the workload touches.
const kind = "item"

// opTimeout bounds one operation: a few election timeouts, so that an
// operation caught by a fault ends as unknown rather than hanging.
const opTimeout = 2 * time.Second

// spec is the JSON spec of the workload's objects.
type spec struct {
	V string `json:"v"`
}

func encodeValue(v string) []byte {
	b, _ := json.Marshal(spec{V: v})
	return b
}

func decodeValue(b []byte) string {
	var s spec
	if json.Unmarshal(b, &s) != nil {
		return fmt.Sprintf("<undecodable spec %q>", b)
	}
	return s.V
}

// statusOf classifies the error of a call: a definite answer, or for a
// write an unknown outcome (for a read, a failure that says nothing).
func statusOf(err error, write bool) Status {
	switch status.Code(err) {
	case codes.OK:
		return StatusOK
	case codes.NotFound:
		return StatusNotFound
	case codes.AlreadyExists:
		return StatusExists
	case codes.Aborted:
		return StatusConflict
	}
	if write {
		return StatusUnknown
	}
	return StatusFailed
}

// worker is one client of the workload, pinned to one manager.
type worker struct {
	id      int
	manager *manager
	cl      *client.Client
	h       *History
	keys    []string
	rng     *rand.Rand
	seq     int
	// seen is the last version this worker saw per key, for updates and
	// deletes with an expected version (often stale: conflicts happen).
	seen map[string]uint64
	c    *cluster
}

func newWorker(c *cluster, id int, m *manager, h *History, keys []string, seed uint64) (*worker, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.New(ctx, client.Config{Addrs: []string{m.listen}, TLS: c.tls})
	if err != nil {
		return nil, fmt.Errorf("client %d of %s: %w", id, m.name, err)
	}
	return &worker{id: id, manager: m, cl: cl, h: h, keys: keys, c: c,
		rng: rand.New(rand.NewPCG(seed, uint64(id))), seen: map[string]uint64{}}, nil
}

// run issues operations until stop is closed.
func (w *worker) run(stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		op := w.once()
		// A little think time keeps the history small enough to check;
		// after a failure a client backs off, as real ones do.
		pause := time.Duration(w.rng.IntN(6)) * time.Millisecond
		if s := op.Output.Status; s == StatusUnknown || s == StatusFailed {
			pause = time.Duration(50+w.rng.IntN(150)) * time.Millisecond
		}
		select {
		case <-stop:
			return
		case <-time.After(pause):
		}
	}
}

// once runs one random operation.
func (w *worker) once() Op {
	key := w.keys[w.rng.IntN(len(w.keys))]
	r := w.rng.Float64()
	switch {
	case r < 0.35:
		return w.do(Input{Kind: OpGet, Key: key})
	case r < 0.55:
		return w.do(Input{Kind: OpUpdate, Key: key, Value: w.value()})
	case r < 0.70:
		return w.do(Input{Kind: OpUpdate, Key: key, Value: w.value(), Expected: w.expected(key)})
	case r < 0.85:
		return w.do(Input{Kind: OpCreate, Key: key, Value: w.value()})
	case r < 0.93:
		return w.do(Input{Kind: OpDelete, Key: key})
	default:
		return w.do(Input{Kind: OpDelete, Key: key, Expected: w.expected(key)})
	}
}

func (w *worker) value() string {
	w.seq++
	return fmt.Sprintf("c%d.%d", w.id, w.seq)
}

// expected returns a version to expect: the last one seen, or a little
// off it now and then.
func (w *worker) expected(key string) uint64 {
	v := w.seen[key]
	if v == 0 || w.rng.IntN(8) == 0 {
		v += uint64(w.rng.IntN(3)) + 1
	}
	return v
}

// do runs in and records it.
func (w *worker) do(in Input) Op {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	op := Op{Client: w.id, Manager: w.manager.name, Input: in, Call: w.h.Now()}
	var err error
	switch in.Kind {
	case OpCreate:
		var o *api.Object
		o, err = w.cl.Create(ctx, &api.Object{Kind: kind, Name: in.Key, Spec: encodeValue(in.Value)})
		if err == nil {
			op.Output.Version = o.GetVersion()
			if got := decodeValue(o.GetSpec()); got != in.Value {
				w.c.problem("client %d: create of %s returned value %q, not %q", w.id, in.Key, got, in.Value)
			}
		}
	case OpGet:
		var o *api.Object
		o, err = w.cl.Get(ctx, kind, in.Key)
		if err == nil {
			op.Output.Value, op.Output.Version = decodeValue(o.GetSpec()), o.GetVersion()
		}
	case OpUpdate:
		var o *api.Object
		o, err = w.cl.Update(ctx, kind, in.Key, client.Update{Spec: encodeValue(in.Value), ExpectedVersion: in.Expected})
		if err == nil {
			op.Output.Version = o.GetVersion()
		}
	case OpDelete:
		op.Output.Version, err = w.cl.Delete(ctx, kind, in.Key, in.Expected)
	}
	op.Return = w.h.Now()
	op.Output.Status = statusOf(err, in.Kind != OpGet)
	if err != nil {
		op.Err = err.Error()
		// A manager removed while this client used it says it is
		// stopping (UNAVAILABLE); the client's own access is never
		// denied.
		switch c := status.Code(err); c {
		case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated:
			w.c.problem("client %d: %s of %s refused as %v: %v", w.id, in.Kind, in.Key, c, err)
		}
	}
	if op.Output.Status == StatusOK {
		if in.Kind == OpDelete {
			delete(w.seen, in.Key)
		} else {
			w.seen[in.Key] = op.Output.Version
		}
	}
	w.h.Add(op)
	return op
}

func (w *worker) close() { w.cl.Close() }

// watcher follows every change of the workload's kind, resuming from the
// last version it received on the next manager when its stream fails.
type watcher struct {
	id int
	c  *cluster

	mu       sync.Mutex
	segments []WatchSegment
	last     atomic.Uint64
	resumes  atomic.Int64
	started  chan struct{}
}

// run watches until ctx ends, starting on manager first.
func (w *watcher) run(ctx context.Context, first int) {
	n := len(w.c.managers)
	i := first
	var from uint64
	fresh := true // the next watch starts a new segment
	startedOnce := false
	refusals := 0
	for ctx.Err() == nil {
		m := w.c.managers[i%n]
		err := w.follow(ctx, m, &from, &fresh, &startedOnce)
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.OutOfRange {
			// m no longer has the history after from; another may.
			refusals++
			if refusals >= 3*n {
				w.c.logf("watcher %d: no manager keeps the history after %d; starting a new segment", w.id, from)
				from, fresh, refusals = 0, true, 0
			}
		} else {
			refusals = 0
		}
		i++
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// follow watches on m from *from and records what it gets until the
// stream fails.
func (w *watcher) follow(ctx context.Context, m *manager, from *uint64, fresh *bool, startedOnce *bool) error {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	cl, err := client.New(dctx, client.Config{Addrs: []string{m.listen}, TLS: w.c.tls, DialTimeout: 2 * time.Second})
	cancel()
	if err != nil {
		return err
	}
	defer cl.Close()
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	startCtx, startCancel := context.WithTimeout(wctx, 3*time.Second)
	stopStart := context.AfterFunc(startCtx, func() {
		if startCtx.Err() == context.DeadlineExceeded {
			wcancel()
		}
	})
	wt, err := cl.Watch(wctx, client.Selector{Kind: kind}, *from)
	stopStart()
	startCancel()
	if err != nil {
		return err
	}
	defer wt.Close()
	w.mu.Lock()
	if *fresh {
		w.segments = append(w.segments, WatchSegment{Watcher: w.id, Start: wt.StartVersion()})
		*fresh = false
		*from = wt.StartVersion()
		w.last.Store(*from)
	} else {
		seg := &w.segments[len(w.segments)-1]
		seg.Resumes = append(seg.Resumes, fmt.Sprintf("%s@%d", m.name, *from))
		w.resumes.Add(1)
	}
	w.mu.Unlock()
	if !*startedOnce {
		*startedOnce = true
		close(w.started)
	}
	for {
		e, err := wt.Next()
		if err != nil {
			return err
		}
		ev := WatchEvent{Version: e.GetVersion(), Key: e.GetObject().GetName(), Value: decodeValue(e.GetObject().GetSpec()),
			ObjectVersion: e.GetObject().GetVersion()}
		switch e.GetType() {
		case api.EventType_EVENT_TYPE_CREATE:
			ev.Type = OpCreate
		case api.EventType_EVENT_TYPE_UPDATE:
			ev.Type = OpUpdate
		case api.EventType_EVENT_TYPE_DELETE:
			ev.Type = OpDelete
		}
		w.mu.Lock()
		seg := &w.segments[len(w.segments)-1]
		seg.Events = append(seg.Events, ev)
		w.mu.Unlock()
		*from = ev.Version
		w.last.Store(ev.Version)
	}
}

// Segments returns what the watcher recorded.
func (w *watcher) Segments() []WatchSegment {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]WatchSegment, len(w.segments))
	for i, s := range w.segments {
		out[i] = s
		out[i].Events = append([]WatchEvent(nil), s.Events...)
	}
	return out
}
