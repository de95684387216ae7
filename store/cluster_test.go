package store_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/rafttest"
	"github.com/shoal-project/shoal/store"
)

// TestClusterConcurrentChangesOneWins: contenders on the leader make
// changes that cannot all succeed, all at once. Apply decides in log order
// on every member alike, so exactly one wins, every other is rejected as
// the winner's change dictates, and every member holds the state before
// plus the winner's change, and nothing of the losers'.
func TestClusterConcurrentChangesOneWins(t *testing.T) {
	const contenders = 16
	c := newStoreCluster(t, 3, rafttest.Options{})
	tests := []struct {
		name string
		// setup creates what the contenders change; own returns what
		// contender i starts from.
		setup  func(t *testing.T) (own func(i int) *api.Object)
		change func(tx store.Tx, base *api.Object, i int) error
		// loserErr is the error the losers must get, given the winner.
		loserErr func(winner *store.Result) error
	}{{
		name: "updates expecting one version",
		setup: func(t *testing.T) func(int) *api.Object {
			base := createOne(t, c, obj("service", "contended"))
			return func(int) *api.Object { return base }
		},
		change:   setSpec,
		loserErr: always(store.ErrVersionConflict),
	}, {
		name: "deletes and updates expecting one version",
		setup: func(t *testing.T) func(int) *api.Object {
			base := createOne(t, c, obj("service", "doomed"))
			return func(int) *api.Object { return base }
		},
		change: func(tx store.Tx, base *api.Object, i int) error {
			if i%2 == 0 {
				return tx.Delete(base.GetKind(), base.GetId(), base.GetVersion())
			}
			return setSpec(tx, base, i)
		},
		// The object is checked to exist before its version.
		loserErr: func(winner *store.Result) error {
			if o := winner.Objects[0]; o.GetVersion() != winner.Version {
				return store.ErrNotFound
			}
			return store.ErrVersionConflict
		},
	}, {
		name:  "creates of one name",
		setup: func(*testing.T) func(int) *api.Object { return func(int) *api.Object { return nil } },
		change: func(tx store.Tx, _ *api.Object, i int) error {
			o := obj("service", "popular")
			o.Spec = fmt.Appendf(nil, `{"winner":%d}`, i)
			_, err := tx.Create(o)
			return err
		},
		loserErr: always(store.ErrExists),
	}, {
		name: "renames to one name",
		setup: func(t *testing.T) func(int) *api.Object {
			var own []*api.Object
			for i := range contenders {
				own = append(own, createOne(t, c, obj("service", fmt.Sprint("renamed-", i))))
			}
			return func(i int) *api.Object { return own[i] }
		},
		change: func(tx store.Tx, base *api.Object, i int) error {
			next := proto.CloneOf(base)
			next.Name = "wanted"
			next.Version = 0 // the name decides, not the version
			return tx.Update(next)
		},
		loserErr: always(store.ErrExists),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			own := tt.setup(t)
			leader := storeOf(c.Leader())
			before := listAll(t, leader.Store)
			ctx := testContext(t)

			start := make(chan struct{})
			var mu sync.Mutex
			var winners []*store.Result
			losers := make([]error, contenders)
			var wg sync.WaitGroup
			for i := range contenders {
				wg.Go(func() {
					<-start
					res, err := leader.Update(ctx, func(tx store.Tx) error { return tt.change(tx, own(i), i) })
					if err != nil {
						losers[i] = err
						return
					}
					mu.Lock()
					winners = append(winners, res)
					mu.Unlock()
				})
			}
			close(start)
			wg.Wait()
			if len(winners) != 1 {
				t.Fatalf("%d contenders won, want exactly 1", len(winners))
			}
			wantErr := tt.loserErr(winners[0])
			for i, err := range losers {
				if err != nil && !errors.Is(err, wantErr) {
					t.Errorf("contender %d lost with %v, want %v", i, err, wantErr)
				}
			}
			want := withResult(before, winners[0])
			c.requireSameStores(t)
			for _, m := range c.Running() {
				requireObjects(t, m.NodeID, listAll(t, storeOf(m).Store), want)
			}
		})
	}
}

func always(err error) func(*store.Result) error {
	return func(*store.Result) error { return err }
}

func setSpec(tx store.Tx, base *api.Object, i int) error {
	next := proto.CloneOf(base)
	next.Spec = fmt.Appendf(nil, `{"winner":%d}`, i)
	return tx.Update(next)
}

// createOne creates o through the leader and returns it as stored.
func createOne(t *testing.T, c *storeCluster, o *api.Object) *api.Object {
	t.Helper()
	return c.mustUpdate(t, func(tx store.Tx) error {
		_, err := tx.Create(o)
		return err
	}).Objects[0]
}

// listAll returns every object of s by id.
func listAll(t *testing.T, s *store.Store) map[string]*api.Object {
	t.Helper()
	out := map[string]*api.Object{}
	for _, o := range list(t, s, store.Selector{}) {
		out[o.GetId()] = o
	}
	return out
}

// withResult returns objs with an accepted entry's changes made: an object
// at the entry's version was created or updated, any other was deleted.
// (It cannot tell a create and a delete of one object in one entry apart;
// the tests never make them.)
func withResult(objs map[string]*api.Object, res *store.Result) map[string]*api.Object {
	out := make(map[string]*api.Object, len(objs))
	for id, o := range objs {
		out[id] = o
	}
	for _, o := range res.Objects {
		if o.GetVersion() == res.Version {
			out[o.GetId()] = o
		} else {
			delete(out, o.GetId())
		}
	}
	return out
}

func requireObjects(t *testing.T, who string, got, want map[string]*api.Object) {
	t.Helper()
	for id, w := range want {
		if g, ok := got[id]; !ok || !proto.Equal(g, w) {
			t.Fatalf("%s has %v, want %v", who, g, w)
		}
	}
	for id, g := range got {
		if _, ok := want[id]; !ok {
			t.Fatalf("%s has %v, which should not exist", who, g)
		}
	}
}

// TestClusterStoresAgreeAfterMixedWorkload: writers make every kind of
// change through whoever leads, many of them rejected, while the leader is
// stopped, a new one takes over, and the old one comes back and catches up.
// Every member must end with the same objects and the same history of
// entries, accepted and rejected alike, holding every acknowledged change.
// With frequent snapshots, members may also catch up, and the old leader
// restart, from snapshots in the middle of it.
func TestClusterStoresAgreeAfterMixedWorkload(t *testing.T) {
	tests := []struct {
		name string
		opts rafttest.Options
	}{
		{"log only", rafttest.Options{}},
		{"frequent snapshots", rafttest.Options{SnapshotInterval: 16, LogEntriesForSlowFollowers: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newStoreCluster(t, 3, tt.opts)
			w := startWorkload(t, c, 6, 50, nil)
			old := c.Leader()
			w.waitDone(w.total / 3)
			if err := old.Stop(); err != nil {
				t.Fatalf("stop %s: %v", old.NodeID, err)
			}
			if c.Leader() == old {
				t.Fatal("the stopped leader still leads")
			}
			w.waitDone(2 * w.total / 3)
			old.Restart()
			acked := w.wait()

			c.requireSameStores(t)
			members := c.Running()
			if len(members) != 3 {
				t.Fatalf("%d members run, want 3", len(members))
			}
			for _, m := range members {
				requireAcknowledged(t, m, acked)
				_, restores := storeOf(m).history()
				t.Logf("%s restored snapshots at %v", m.NodeID, restores)
			}
			for _, m := range members[1:] {
				n := requireSameHistory(t, members[0], m)
				t.Logf("%s and %s applied the same last %d entries", members[0].NodeID, m.NodeID, n)
			}
			// A store's version is the index of the last entry it applied,
			// or of the last snapshot it restored if it applied none since.
			var last uint64
			for _, m := range members {
				if applied, _ := storeOf(m).history(); len(applied) > 0 {
					v := storeOf(m).Version()
					if last != 0 && v != last {
						t.Fatalf("%s is at version %d, another member at %d", m.NodeID, v, last)
					}
					last = v
				}
			}
			t.Logf("outcomes: %v", w.outcomes)
			for _, want := range []string{"ok", errClass(store.ErrExists), errClass(store.ErrNotFound), errClass(store.ErrVersionConflict)} {
				if w.outcomes[want] == 0 {
					t.Errorf("no write ended %q: the workload does not exercise it", want)
				}
			}
		})
	}
}

// TestClusterCutOffLeaderWriteIsNeverApplied: a leader cut off from the
// others still takes an Update, but cannot commit it. The caller must not
// be told it succeeded; the majority's leader changes the same object,
// expecting the same version, and wins; after healing, every member, the
// old leader included, holds the majority's change and nothing of the
// other.
func TestClusterCutOffLeaderWriteIsNeverApplied(t *testing.T) {
	c := newStoreCluster(t, 3, rafttest.Options{})
	base := createOne(t, c, obj("service", "contended"))
	c.requireSameStores(t)
	old := c.Leader()
	majority := others(c, old)
	c.Partition([]*rafttest.Member{old}, majority)

	oldErr := make(chan error, 1)
	ctx := testContext(t)
	go func() {
		_, err := storeOf(old).Update(ctx, func(tx store.Tx) error { return setSpec(tx, base, 1) })
		oldErr <- err
	}()
	var newLeader *rafttest.Member
	c.WaitFor("a leader among the others", func() bool {
		for _, m := range majority {
			if m.Node().IsLeader() {
				newLeader = m
			}
		}
		return newLeader != nil
	})
	res, err := storeOf(newLeader).Update(ctx, func(tx store.Tx) error { return setSpec(tx, base, 2) })
	if err != nil {
		t.Fatalf("update through the majority's leader: %v", err)
	}
	err = <-oldErr
	if err == nil {
		t.Fatal("the cut-off leader acknowledged a write it could not commit")
	}
	if !errors.Is(err, raft.ErrLostLeadership) && !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("update on the cut-off leader: %v, want ErrLostLeadership (or ErrNotLeader)", err)
	}
	t.Logf("the cut-off leader's update failed: %v", err)

	c.Heal()
	c.requireSameStores(t)
	for _, m := range c.Running() {
		got, err := get(t, storeOf(m).Store, base.GetId())
		if err != nil || got.GetVersion() != res.Version || string(got.GetSpec()) != `{"winner":2}` {
			t.Fatalf("%s has %v (%v), want the majority's change at version %d", m.NodeID, got, err, res.Version)
		}
	}
	requireSameHistory(t, old, newLeader)
}
