package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/rafttest"
	"github.com/shoal-project/shoal/store"
	"github.com/shoal-project/shoal/watch"
)

// TestClusterUpdateErrors: what a caller of Update sees that only a real
// node can produce. On a follower, Update fails with Raft's NotLeaderError
// naming the leader, and proposes nothing. The largest transaction the
// store's default limits let through is not refused by Raft's default
// proposal limit, and replicates; one byte more is refused by the store,
// with ErrTooLarge, before anything is proposed.
func TestClusterUpdateErrors(t *testing.T) {
	c := newStoreCluster(t, 3, rafttest.Options{})
	ctx := testContext(t)
	leader := c.Leader()
	follower := c.Followers()[0]
	createOne(t, c, obj("service", "first"))
	c.requireSameStores(t)

	t.Run("on a follower", func(t *testing.T) {
		commit := commitIndex(t, leader)
		_, err := storeOf(follower).Update(ctx, func(tx store.Tx) error {
			_, err := tx.Create(obj("service", "refused"))
			return err
		})
		var nl *raft.NotLeaderError
		if !errors.As(err, &nl) || nl.LeaderID != leader.ID() || nl.LeaderAddr != leader.Addr {
			t.Fatalf("Update on a follower: %v, want a NotLeaderError naming %x at %s", err, leader.ID(), leader.Addr)
		}
		if got := commitIndex(t, leader); got != commit {
			t.Fatalf("the leader's commit index moved from %d to %d", commit, got)
		}
	})

	t.Run("largest transaction", func(t *testing.T) {
		a := largestFitting(t, nil, obj("blob", "a"))
		b := largestFitting(t, []*api.Object{a}, obj("blob", "b"))
		res, err := storeOf(c.Leader()).Update(ctx, createAll(a, b))
		if err != nil {
			t.Fatalf("the largest transaction the store allows (objects of %d and %d spec bytes): %v",
				len(a.GetSpec()), len(b.GetSpec()), err)
		}
		t.Logf("objects of %d and %d spec bytes at version %d", len(a.GetSpec()), len(b.GetSpec()), res.Version)
		c.requireSameStores(t)
		for _, m := range c.Running() {
			if got := list(t, storeOf(m).Store, store.Selector{Kind: "blob"}); len(got) != 2 {
				t.Fatalf("%s has %d blobs, want 2", m.NodeID, len(got))
			}
		}

		commit := commitIndex(t, leader)
		a, b = withName(a, "c"), withName(b, "d") // names of the same length
		b.Spec = append(b.Spec, 'x')
		_, err = storeOf(c.Leader()).Update(ctx, createAll(a, b))
		if !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("one byte over the limit: %v, want store.ErrTooLarge", err)
		}
		if got := commitIndex(t, leader); got != commit {
			t.Fatalf("the leader's commit index moved from %d to %d", commit, got)
		}
	})
}

// TestClusterStalledWatcherDoesNotHoldBackItsMember: a watcher on a
// follower that never reads, while far more changes than the watch
// history holds are made. The follower applies every one as the others
// do, and the watcher is then told it fell behind.
func TestClusterStalledWatcherDoesNotHoldBackItsMember(t *testing.T) {
	cfg := testConfig(t)
	cfg.WatchHistory = 16
	c := newStoreClusterWith(t, 3, rafttest.Options{}, cfg)
	follower := c.Followers()[0]
	stalled := mustWatch(t, storeOf(follower).Store, storeOf(follower).Version(), store.Selector{})
	for i := range 40 {
		createOne(t, c, obj("service", fmt.Sprint("s", i)))
	}
	c.requireSameStores(t)
	if _, err := stalled.Next(testContext(t)); !errors.Is(err, watch.ErrLagged) {
		t.Fatalf("stalled watcher: Next = %v, want ErrLagged", err)
	}
}

func commitIndex(t *testing.T, m *rafttest.Member) uint64 {
	t.Helper()
	st, err := m.Node().Status()
	if err != nil {
		t.Fatal(err)
	}
	return st.Commit
}

func createAll(objs ...*api.Object) func(tx store.Tx) error {
	return func(tx store.Tx) error {
		for _, o := range objs {
			if _, err := tx.Create(o); err != nil {
				return err
			}
		}
		return nil
	}
}

// withName returns a copy of o named name.
func withName(o *api.Object, name string) *api.Object {
	o = proto.CloneOf(o)
	o.Name = name
	return o
}

// largestFitting returns o with the largest spec that the default limits
// let a transaction creating before and o hold. It asks a store without a
// proposer, which checks the limits and then fails with ErrNoProposer
// instead of proposing. Sizes do not depend on the store: ids have a fixed
// length and the test clock has whole seconds of one varint length.
func largestFitting(t *testing.T, before []*api.Object, o *api.Object) *api.Object {
	t.Helper()
	probe, err := store.New(testConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	fits := func(n int) bool {
		o.Spec = []byte(strings.Repeat("x", n))
		_, err := probe.Update(context.Background(), createAll(append(before, o)...))
		if err != nil && !errors.Is(err, store.ErrNoProposer) && !errors.Is(err, store.ErrTooLarge) {
			t.Fatalf("probe: %v", err)
		}
		return errors.Is(err, store.ErrNoProposer)
	}
	lo, hi := 0, store.DefaultConfig().MaxTxBytes // fits(lo), !fits(hi)
	if !fits(lo) || fits(hi) {
		t.Fatalf("no spec size to search for")
	}
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	fits(lo)
	return o
}
