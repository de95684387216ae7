package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/shoal-project/shoal/raft/rafttest"
	"github.com/shoal-project/shoal/store"
	"github.com/shoal-project/shoal/watch"
)

// TestClusterFollowerCatchesUpThroughSnapshot: a follower cut off while the
// others write far past the leader's compacted log must be sent the
// leader's store as a snapshot (over 4 MiB, so in several gRPC messages),
// end identical, be told by its watchers to list again, and then follow
// the log as before.
func TestClusterFollowerCatchesUpThroughSnapshot(t *testing.T) {
	const interval, keep = 16, 4
	c := newStoreCluster(t, 3, rafttest.Options{SnapshotInterval: interval, LogEntriesForSlowFollowers: keep})
	for i := range 5 {
		createOne(t, c, obj("service", fmt.Sprint("early-", i)))
	}
	c.requireSameStores(t)
	leader := c.Leader()
	lagging := c.Followers()[0]
	lagStore := storeOf(lagging)
	before := lagStore.Version()
	watcher := mustWatch(t, lagStore.Store, before, store.Selector{})
	st, err := leader.Node().Status()
	if err != nil {
		t.Fatal(err)
	}
	cut := st.Commit // nothing is in flight: the lagging member holds no entry above it
	c.Partition([]*rafttest.Member{lagging}, others(c, lagging))

	big := bytes.Repeat([]byte("x"), 900<<10)
	for i := range 5 {
		o := obj("blob", fmt.Sprint("b", i))
		o.Spec = big
		createOne(t, c, o)
	}
	rng := newRand(7)
	for range 40 {
		if _, err := c.update(testContext(t), func(tx store.Tx) error { return clusterChange(tx, rng) }); err != nil &&
			!errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrVersionConflict) {
			t.Fatalf("write: %v", err)
		}
	}
	// Raft takes one snapshot at a time, so once the leader has started a
	// second snapshot past the cut, the first is saved and the log
	// compacted to keep entries before it: the lagging member's next entry
	// is gone from the leader's log.
	c.WaitFor("the leader to compact its log past the lagging member", func() bool {
		n := 0
		for _, v := range storeOf(leader).snapshotVersions() {
			if v > cut+keep+1 {
				n++
			}
		}
		return n >= 2
	})
	c.Heal()
	c.requireSameStores(t)
	if _, restores := lagStore.history(); len(restores) == 0 {
		t.Fatal("the lagging member caught up by replaying the log, not through a snapshot")
	}
	if _, err := watcher.Next(testContext(t)); !errors.Is(err, watch.ErrReset) {
		t.Fatalf("the lagging member's watcher: Next = %v, want ErrReset", err)
	}
	if _, err := lagStore.Watch(before, store.Selector{}); !errors.Is(err, watch.ErrCompacted) {
		t.Fatalf("watch from before the snapshot: %v, want ErrCompacted", err)
	}

	// After the snapshot the member applies the log again: a list and a
	// watch on it see the next change.
	var listed uint64
	w, err := lagStore.ViewAndWatch(store.Selector{}, func(tx store.ReadTx) { listed = tx.Version() })
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	res := createOne(t, c, obj("service", "after-snapshot"))
	ev, err := w.Next(testContext(t))
	if err != nil || ev.Version != res.GetVersion() || ev.Object.GetName() != "after-snapshot" || ev.Version <= listed {
		t.Fatalf("after the snapshot: event %d:%s:%s (%v), want %d:create:after-snapshot",
			ev.Version, ev.Type, ev.Object.GetName(), err, res.GetVersion())
	}
	c.requireSameStores(t)
}

// TestClusterStoresRebuiltFromSnapshotAndWAL: stores live in memory, so a
// restarted member rebuilds its store from its newest snapshot and the
// WAL entries after it. A member restarted alone, with no quorum and no
// leader to learn from, must reach exactly the store it had; then the
// whole cluster, restarted, must too, and go on.
func TestClusterStoresRebuiltFromSnapshotAndWAL(t *testing.T) {
	c := newStoreCluster(t, 3, rafttest.Options{SnapshotInterval: 16})
	startWorkload(t, c, 4, 25, nil).wait()
	// Every member must have entries after its last snapshot, which only
	// its WAL holds.
	for i := 0; ; i++ {
		c.requireSameStores(t)
		pending := false
		for _, m := range c.Running() {
			if s := storeOf(m); s.lastSnapshot() >= s.Version() {
				pending = true
			}
		}
		if !pending {
			break
		}
		createOne(t, c, obj("service", fmt.Sprint("after-snapshot-", i)))
	}
	want := c.requireSameStores(t)
	members := c.Members()
	version := storeOf(members[0]).Version()
	for _, m := range members {
		if len(storeOf(m).snapshotVersions()) == 0 {
			t.Fatalf("%s took no snapshot", m.NodeID)
		}
		if err := m.Stop(); err != nil {
			t.Fatalf("stop %s: %v", m.NodeID, err)
		}
	}

	alone := members[0]
	alone.Restart()
	s := storeOf(alone)
	c.WaitFor("the member alone to replay its WAL", func() bool { return s.Version() >= version })
	applied, restores := s.history()
	if len(restores) != 1 || restores[0] >= version {
		t.Fatalf("restored snapshots %v, want one below version %d", restores, version)
	}
	if len(applied) == 0 || applied[len(applied)-1].index != version {
		t.Fatalf("after the snapshot at %d, replayed %d entries up to %d, want up to %d",
			restores[0], len(applied), lastIndex(applied), version)
	}
	if v, got := s.Hash(); v != version || got != want {
		t.Fatalf("rebuilt store at version %d hashes %s, want %d and %s\n%s", v, got, version, want, dump(t, s.Store))
	}

	for _, m := range members[1:] {
		m.Restart()
	}
	if got := c.requireSameStores(t); got != want {
		t.Fatalf("after restarting every member the stores hash %s, before %s", got, want)
	}
	createOne(t, c, obj("service", "after-restart"))
	c.requireSameStores(t)
}

func lastIndex(es []appliedEntry) uint64 {
	if len(es) == 0 {
		return 0
	}
	return es[len(es)-1].index
}

// others returns the running members but m.
func others(c *storeCluster, m *rafttest.Member) []*rafttest.Member {
	var out []*rafttest.Member
	for _, o := range c.Running() {
		if o != m {
			out = append(out, o)
		}
	}
	return out
}

// TestClusterForceNewClusterKeepsEveryObject: when a quorum is lost for
// good, one manager restarted with ForceNewCluster becomes a cluster of
// one from its own snapshot and WAL. Its store must hold every committed
// object, as before, and take writes again.
func TestClusterForceNewClusterKeepsEveryObject(t *testing.T) {
	c := newStoreCluster(t, 3, rafttest.Options{SnapshotInterval: 16})
	startWorkload(t, c, 4, 20, nil).wait()
	want := c.requireSameStores(t)
	survivor := c.Followers()[0]
	for _, m := range c.Members() {
		if err := m.Stop(); err != nil {
			t.Fatalf("stop %s: %v", m.NodeID, err)
		}
	}
	survivor.RestartForced()
	if got := c.Leader(); got != survivor {
		t.Fatalf("%s leads, want the survivor %s", got.NodeID, survivor.NodeID)
	}
	c.WaitApplied(survivor.Node().Status)
	s := storeOf(survivor)
	if _, got := s.Hash(); got != want {
		t.Fatalf("after ForceNewCluster the store hashes %s, before %s\n%s", got, want, dump(t, s.Store))
	}
	if _, restores := s.history(); len(restores) == 0 {
		t.Fatal("the survivor restarted without a snapshot; the test wants one")
	}
	after := createOne(t, c, obj("service", "after-force"))
	if _, err := get(t, s.Store, after.GetId()); err != nil {
		t.Fatalf("a write after ForceNewCluster: %v", err)
	}
}
