package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/store"
)

// fakeLog stands in for Raft until the real node exists: an ordered log of
// payloads that every replica applies in order, each on its own goroutine,
// as managers do. A replica's Proposer appends to the shared log and waits
// until its own replica has applied the entry, returning what Apply
// returned there, as the raft node's ProposeValue does.
type fakeLog struct {
	mu       sync.Mutex
	entries  [][]byte
	grew     chan struct{} // closed and replaced when entries grow or on close
	closed   bool
	replicas []*replica
	wg       sync.WaitGroup
	// latency is slept by every proposal before it is appended, without
	// holding anything: a stand-in for the Raft round trip in benchmarks.
	latency time.Duration
}

type applyResult struct {
	res any
	err error
}

type replica struct {
	log   *fakeLog
	store *store.Store
	// batched replicas apply every entry waiting at once, with
	// ApplyBatch, as the raft node does with a Ready's entries; the
	// others one by one with Apply. Replicas must agree either way.
	batched bool

	mu      sync.Mutex
	cond    *sync.Cond // signalled whenever applied grows
	applied uint64
	waiters map[uint64]chan applyResult
}

// newFakeLog starts n replicas, each a store built with cfg. Everything
// stops at the end of the test.
func newFakeLog(t testing.TB, n int, cfg store.Config) *fakeLog {
	t.Helper()
	l, err := startFakeLog(n, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.close)
	return l
}

// startFakeLog is newFakeLog for callers without a testing.TB; they must
// call close.
func startFakeLog(n int, cfg store.Config) (*fakeLog, error) {
	l := &fakeLog{grew: make(chan struct{})}
	for i := range n {
		r := &replica{log: l, waiters: map[uint64]chan applyResult{}, batched: i%2 == 1}
		r.cond = sync.NewCond(&r.mu)
		s, err := store.New(cfg, r)
		if err != nil {
			return nil, err
		}
		r.store = s
		l.replicas = append(l.replicas, r)
	}
	for _, r := range l.replicas {
		l.wg.Go(r.run)
	}
	return l, nil
}

func (l *fakeLog) close() {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.grew)
	}
	l.mu.Unlock()
	l.wg.Wait()
	for _, r := range l.replicas {
		r.store.Close()
	}
}

// lastIndex is the index of the last entry in the log.
func (l *fakeLog) lastIndex() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return uint64(len(l.entries))
}

// ProposeValue implements store.Proposer for the replica.
func (r *replica) ProposeValue(ctx context.Context, payload []byte) (any, error) {
	l := r.log
	if l.latency > 0 {
		time.Sleep(l.latency)
	}
	done := make(chan applyResult, 1)
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, context.Canceled
	}
	l.entries = append(l.entries, payload)
	index := uint64(len(l.entries))
	// Registered before the entry can be seen by the applier, which
	// reads entries under l.mu.
	r.mu.Lock()
	r.waiters[index] = done
	r.mu.Unlock()
	close(l.grew)
	l.grew = make(chan struct{})
	l.mu.Unlock()
	select {
	case res := <-done:
		return res.res, res.err
	case <-ctx.Done():
		r.mu.Lock()
		delete(r.waiters, index)
		r.mu.Unlock()
		return nil, ctx.Err()
	}
}

func (r *replica) run() {
	l := r.log
	for next := 0; ; {
		l.mu.Lock()
		for len(l.entries) <= next && !l.closed {
			grew := l.grew
			l.mu.Unlock()
			<-grew
			l.mu.Lock()
		}
		if l.closed {
			l.mu.Unlock()
			return
		}
		payloads := l.entries[next : next+1]
		if r.batched {
			payloads = l.entries[next:]
		}
		l.mu.Unlock()

		first := uint64(next + 1)
		var results []any
		var errs []error
		if r.batched {
			results, errs = r.store.ApplyBatch(first, payloads)
		} else {
			res, err := r.store.Apply(first, payloads[0])
			results, errs = []any{res}, []error{err}
		}
		r.mu.Lock()
		for i := range payloads {
			index := first + uint64(i)
			if w, ok := r.waiters[index]; ok {
				w <- applyResult{results[i], errs[i]}
				delete(r.waiters, index)
			}
		}
		next += len(payloads)
		r.applied = uint64(next)
		r.cond.Broadcast()
		r.mu.Unlock()
	}
}

// waitApplied blocks until every replica has applied index.
func (l *fakeLog) waitApplied(index uint64) {
	for _, r := range l.replicas {
		r.mu.Lock()
		for r.applied < index {
			r.cond.Wait()
		}
		r.mu.Unlock()
	}
}
