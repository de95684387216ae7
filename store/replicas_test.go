package store_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/store"
)

// requireReplicasAgree waits until every replica applied the whole log and
// compares their hashes, and their dumps to show a difference.
func requireReplicasAgree(t *testing.T, l *fakeLog) string {
	t.Helper()
	l.waitApplied(l.lastIndex())
	_, want := l.replicas[0].store.Hash()
	wantDump := dump(t, l.replicas[0].store)
	for i, r := range l.replicas[1:] {
		if _, got := r.store.Hash(); got != want {
			t.Fatalf("replica %d hash %s, replica 0 hash %s\nreplica 0:\n%s\nreplica %d:\n%s",
				i+1, got, want, wantDump, i+1, dump(t, r.store))
		}
		if got := dump(t, r.store); got != wantDump {
			t.Fatalf("equal hashes, different dumps:\n%s\n%s", wantDump, got)
		}
	}
	return want
}

// TestReplicasAgree proposes random changes from many goroutines through
// three replicas, each applying the log on its own goroutine, while
// readers read. Conflicts and rejections happen on purpose. Every replica
// must end identical.
func TestReplicasAgree(t *testing.T) {
	const writers, writesEach = 8, 100
	l := newFakeLog(t, 3, testConfig(t))
	ctx := context.Background()
	var accepted, rejected atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		r := l.replicas[w%len(l.replicas)]
		rng := rand.New(rand.NewPCG(uint64(w), 1))
		wg.Go(func() {
			for range writesEach {
				_, err := r.store.Update(ctx, func(tx store.Tx) error {
					return randomChange(tx, rng)
				})
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, store.ErrExists), errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrVersionConflict):
					rejected.Add(1)
				default:
					t.Errorf("Update: %v", err)
					return
				}
			}
		})
	}
	// Readers on every replica while it applies.
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for _, r := range l.replicas {
		readers.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				r.store.View(func(tx store.ReadTx) {
					objs, err := tx.List(store.Selector{Kind: "service"})
					if err != nil {
						t.Error(err)
					}
					for _, o := range objs {
						if o.GetVersion() > tx.Version() {
							t.Errorf("object version %d above the view's %d", o.GetVersion(), tx.Version())
						}
					}
				})
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	requireReplicasAgree(t, l)
	t.Logf("%d accepted, %d rejected, log of %d entries", accepted.Load(), rejected.Load(), l.lastIndex())
	if accepted.Load() == 0 || rejected.Load() == 0 {
		t.Fatalf("want both accepted and rejected transactions, got %d and %d", accepted.Load(), rejected.Load())
	}
}

// randomChange makes one to three changes on a small name space, reading
// versions that other writers may change before the entry is applied.
func randomChange(tx store.Tx, rng *rand.Rand) error {
	for range 1 + rng.IntN(3) {
		name := fmt.Sprint("s", rng.IntN(12))
		cur, err := tx.GetByName("service", name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if _, err := tx.Create(obj("service", name, fmt.Sprint("n=", rng.IntN(3)))); err != nil {
				return err
			}
		case err != nil:
			return err
		case rng.IntN(4) == 0:
			if err := tx.Delete("service", cur.GetId(), cur.GetVersion()); err != nil {
				return err
			}
		default:
			next := proto.CloneOf(cur)
			next.Spec = fmt.Appendf(nil, `{"r":%d}`, rng.IntN(100))
			if rng.IntN(5) == 0 {
				next.Version = 0 // unconditional
			}
			if err := tx.Update(next); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestConcurrentUpdatesOneWins: many managers update one object, all
// expecting the version they read; exactly one succeeds.
func TestConcurrentUpdatesOneWins(t *testing.T) {
	const contenders = 24
	l := newFakeLog(t, 3, testConfig(t))
	ctx := context.Background()
	base := mustCreate(t, l.replicas[0].store, obj("service", "contended"))[0]

	start := make(chan struct{})
	errs := make(chan error, contenders)
	var wg sync.WaitGroup
	for i := range contenders {
		s := l.replicas[i%len(l.replicas)].store
		wg.Go(func() {
			<-start
			_, err := s.Update(ctx, func(tx store.Tx) error {
				next := proto.CloneOf(base)
				next.Spec = fmt.Appendf(nil, `{"winner":%d}`, i)
				return tx.Update(next)
			})
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	wins := 0
	for err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, store.ErrVersionConflict):
			t.Errorf("loser got %v, want ErrVersionConflict", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d updates won, want exactly 1", wins)
	}
	requireReplicasAgree(t, l)
}

// TestUpdatesAreNotSerialised holds every proposal until all of them have
// reached the proposer: if Update held a lock across the round trip, the
// second would never arrive and the test would time out.
func TestUpdatesAreNotSerialised(t *testing.T) {
	const inFlight = 16
	var (
		s       *store.Store
		mu      sync.Mutex
		arrived int
		all     = make(chan struct{})
		index   uint64
	)
	gate := proposerFunc(func(ctx context.Context, payload []byte) (any, error) {
		mu.Lock()
		arrived++
		if arrived == inFlight {
			close(all)
		}
		mu.Unlock()
		select {
		case <-all:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		mu.Lock()
		defer mu.Unlock()
		index++
		return s.Apply(index, payload)
	})
	s, err := store.New(testConfig(t), gate)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range inFlight {
		wg.Go(func() {
			_, err := s.Update(ctx, func(tx store.Tx) error {
				_, err := tx.Create(obj("service", fmt.Sprint("s", i)))
				return err
			})
			if err != nil {
				t.Errorf("Update %d: %v (proposals were serialised?)", i, err)
			}
		})
	}
	wg.Wait()
	if got := len(list(t, s, store.Selector{Kind: "service"})); got != inFlight {
		t.Fatalf("%d objects, want %d", got, inFlight)
	}
}

func TestBatch(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxActions = 100
	l := newFakeLog(t, 2, cfg)
	s := l.replicas[0].store
	ctx := context.Background()
	const units = 250 // two creates each: 5 entries of 50 units
	applied, err := s.Batch(ctx, func(b *store.Batch) error {
		for i := range units {
			err := b.Update(func(tx store.Tx) error {
				for j := range 2 {
					if _, err := tx.Create(obj("service", fmt.Sprintf("s%03d-%d", i, j))); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil || applied != units {
		t.Fatalf("Batch = %d, %v; want %d, nil", applied, err, units)
	}
	if got := l.lastIndex(); got != 5 {
		t.Fatalf("batch made %d entries, want 5", got)
	}
	if got := len(list(t, s, store.Selector{Kind: "service"})); got != 2*units {
		t.Fatalf("%d objects, want %d", got, 2*units)
	}
	requireReplicasAgree(t, l)

	// A rejected entry stops the batch; the entries before it stay.
	applied, err = s.Batch(ctx, func(b *store.Batch) error {
		for i := range 150 {
			name := fmt.Sprint("new", i)
			if i == 120 {
				name = "s000-0" // taken: rejects the second entry
			}
			if err := b.Update(func(tx store.Tx) error {
				_, err := tx.Create(obj("service", name))
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if !errors.Is(err, store.ErrExists) || applied != 100 {
		t.Fatalf("Batch = %d, %v; want 100, ErrExists", applied, err)
	}
	var created []*api.Object
	s.View(func(tx store.ReadTx) { created, _ = tx.List(store.Selector{Kind: "service", NamePrefix: "new"}) })
	if len(created) != 100 {
		t.Fatalf("%d objects from the failed batch, want the first entry's 100", len(created))
	}
}
