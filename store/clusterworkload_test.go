package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/store"
)

// workload runs writers that each make a number of random changes through
// whoever leads, and records what was acknowledged.
type workload struct {
	c     *storeCluster
	total int
	done  atomic.Int64
	wg    sync.WaitGroup

	mu       sync.Mutex
	acked    []*store.Result
	outcomes map[string]int // by errClass, "unknown" for a fate Raft could not tell
}

// startWorkload starts writers goroutines, each making each changes of
// clusterChange and then calling after, if set, with what its Update
// returned.
func startWorkload(t *testing.T, c *storeCluster, writers, each int, after func(*store.Result, error)) *workload {
	ctx := testContext(t)
	w := &workload{c: c, total: writers * each, outcomes: map[string]int{}}
	for i := range writers {
		rng := newRand(1000 + i)
		w.wg.Go(func() {
			for range each {
				res, err := c.update(ctx, func(tx store.Tx) error { return clusterChange(tx, rng) })
				w.record(t, res, err)
				if after != nil {
					after(res, err)
				}
				w.done.Add(1)
			}
		})
	}
	return w
}

func (w *workload) record(t *testing.T, res *store.Result, err error) {
	outcome := errClass(err)
	switch {
	case errors.Is(err, raft.ErrLostLeadership), errors.Is(err, raft.ErrStopped):
		outcome = "unknown"
	case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrVersionConflict):
	case err != nil:
		t.Errorf("write: %v", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.outcomes[outcome]++
	if err == nil {
		w.acked = append(w.acked, res)
	}
}

// waitDone waits until n writes have returned.
func (w *workload) waitDone(n int) {
	w.c.WaitFor(fmt.Sprintf("%d writes", n), func() bool { return w.done.Load() >= int64(n) })
}

// wait waits for every writer and returns the acknowledged results.
func (w *workload) wait() []*store.Result {
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acked
}

// clusterChange makes one to three changes, each to a different object of
// a small name space: creates (of taken names too), updates expecting the
// version read or none, deletes, renames (to taken names too) and label
// changes (which move objects in and out of label selections).
func clusterChange(tx store.Tx, rng *rand.Rand) error {
	touched := map[string]bool{}
	for range 1 + rng.IntN(3) {
		kind, names := "service", 12
		if rng.IntN(4) == 0 {
			kind, names = "node", 4
		}
		name := func() string { return fmt.Sprintf("%s%d", kind[:1], rng.IntN(names)) }
		o := obj(kind, name())
		cur, err := tx.GetByName(kind, o.GetName())
		switch {
		case errors.Is(err, store.ErrNotFound):
			o.Labels = randomTeam(rng)
			if _, err := tx.Create(o); err != nil {
				return err
			}
			continue
		case err != nil:
			return err
		case touched[cur.GetId()]:
			continue
		}
		touched[cur.GetId()] = true
		expected := cur.GetVersion()
		if rng.IntN(4) == 0 {
			expected = 0
		}
		next := proto.CloneOf(cur)
		next.Version = expected
		switch rng.IntN(6) {
		case 0:
			if err := tx.Delete(kind, cur.GetId(), expected); err != nil {
				return err
			}
			continue
		case 1:
			next.Name = name()
		case 2:
			next.Labels = randomTeam(rng)
		default:
			next.Spec = fmt.Appendf(nil, `{"r":%d}`, rng.IntN(1000))
		}
		if err := tx.Update(next); err != nil {
			return err
		}
	}
	return nil
}

func randomTeam(rng *rand.Rand) map[string]string {
	switch rng.IntN(3) {
	case 0:
		return nil
	case 1:
		return map[string]string{"team": "a"}
	}
	return map[string]string{"team": "b"}
}
