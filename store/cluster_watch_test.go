package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft/rafttest"
	"github.com/shoal-project/shoal/store"
)

// TestClusterWatchAcrossLeaderChange: a watcher on a follower, with a
// label selector that objects enter and leave, reads while writers change
// objects through whoever leads and the leader is stopped and restarted.
// It must see exactly the events the committed entries make, in version
// order, none missing, none twice. The entries are known from another
// follower's record of what Raft applied, not from any watch. Then a watch
// resumed on any member from a version seen before the leader change must
// get exactly the events after it: versions are Raft indexes, the same on
// every member.
func TestClusterWatchAcrossLeaderChange(t *testing.T) {
	c := newStoreCluster(t, 3, rafttest.Options{})
	for i := range 6 {
		createOne(t, c, obj("service", fmt.Sprint("s", i), "team=a"))
	}
	c.requireSameStores(t)
	leader := c.Leader()
	followers := c.Followers()
	watched, witness := followers[0], followers[1]
	sel := store.Selector{Kind: "service", Labels: map[string]string{"team": "a"}}
	from := storeOf(watched).Version()
	r := startReading(t, storeOf(watched).Store, from, sel)

	w := startWorkload(t, c, 4, 50, nil)
	w.waitDone(w.total / 3)
	if err := leader.Stop(); err != nil {
		t.Fatalf("stop %s: %v", leader.NodeID, err)
	}
	seenBefore := r.events()
	if len(seenBefore) == 0 {
		t.Fatal("the watcher saw nothing before the leader change")
	}
	c.Leader()
	w.waitDone(2 * w.total / 3)
	leader.Restart()
	acked := w.wait()
	c.requireSameStores(t)

	if _, restores := storeOf(witness).history(); len(restores) != 0 {
		t.Fatalf("%s restored a snapshot; its history is partial", witness.NodeID)
	}
	history := storeOf(witness).accepted()
	requireAcknowledged(t, witness, acked)
	want := expectedEvents(history, sel, from)
	requireEvents(t, "the watcher on "+watched.NodeID, r.stop(t), want)

	resumeAt := seenBefore[len(seenBefore)-1].Version
	after := eventsAfter(want, resumeAt)
	t.Logf("%d events from %d entries; resuming at %d gives %d", len(want), len(history), resumeAt, len(after))
	for _, m := range c.Running() {
		resumed := mustWatch(t, storeOf(m).Store, resumeAt, sel)
		requireEvents(t, fmt.Sprintf("a watch on %s resumed at %d", m.NodeID, resumeAt), nextEventsWithin(t, resumed, len(after)), after)
		requireNoEvent(t, resumed)
	}
}

// reader collects a watcher's events on its own goroutine.
type reader struct {
	w      *store.Watcher
	cancel context.CancelFunc
	done   chan error

	mu   sync.Mutex
	seen []store.Event
}

func startReading(t *testing.T, s *store.Store, from uint64, sel store.Selector) *reader {
	ctx, cancel := context.WithCancel(context.Background())
	r := &reader{w: mustWatch(t, s, from, sel), cancel: cancel, done: make(chan error, 1)}
	t.Cleanup(cancel)
	go func() {
		for {
			ev, err := r.w.Next(ctx)
			if err != nil {
				r.done <- err
				return
			}
			r.mu.Lock()
			r.seen = append(r.seen, ev)
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *reader) events() []store.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]store.Event(nil), r.seen...)
}

// stop ends the reading goroutine, checks that the watcher had not failed,
// and returns every event seen and every event already published: Next
// with an ended context still returns a pending event. So once the store
// has applied an entry, stop returns its events without waiting.
func (r *reader) stop(t *testing.T) []store.Event {
	t.Helper()
	r.cancel()
	if err := <-r.done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the watcher failed: %v", err)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	seen := r.events()
	for {
		ev, err := r.w.Next(ended)
		if errors.Is(err, context.Canceled) {
			return seen
		}
		if err != nil {
			t.Fatalf("the watcher failed: %v", err)
		}
		seen = append(seen, ev)
	}
}

// expectedEvents replays accepted entries, in index order from the first,
// and returns the events they make that a watch with sel from version from
// gets: an update is sent if the object matches before or after it.
func expectedEvents(history []*store.Result, sel store.Selector, from uint64) []store.Event {
	objs := map[string]*api.Object{}
	var out []store.Event
	for _, res := range history {
		for _, o := range res.Objects {
			ev := store.Event{Version: res.Version, Object: o}
			switch old := objs[o.GetId()]; {
			case o.GetVersion() != res.Version: // a delete reports the object as it was
				ev.Type = store.EventDelete
				delete(objs, o.GetId())
			case old == nil:
				ev.Type = store.EventCreate
				objs[o.GetId()] = o
			default:
				// An update's Old is what selectors read of the object.
				ev.Type = store.EventUpdate
				ev.Old = &api.Object{Kind: old.GetKind(), Id: old.GetId(), Name: old.GetName(), Labels: old.GetLabels()}
				objs[o.GetId()] = o
			}
			if res.Version > from && (sel.Matches(ev.Object) || (ev.Old != nil && sel.Matches(ev.Old))) {
				out = append(out, ev)
			}
		}
	}
	return out
}

func eventsAfter(evs []store.Event, version uint64) []store.Event {
	for i, ev := range evs {
		if ev.Version > version {
			return evs[i:]
		}
	}
	return nil
}

// requireEvents checks that got are want: the same changes, in the same
// order, with equal objects.
func requireEvents(t *testing.T, who string, got, want []store.Event) {
	t.Helper()
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.Version != w.Version || g.Type != w.Type || !proto.Equal(g.Object, w.Object) || !proto.Equal(g.Old, w.Old) {
			t.Fatalf("%s: event %d of %d is %s, want %s", who, i, len(want), describe(got[i:i+1]), describe(want[i:i+1]))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%s saw %d events, want %d", who, len(got), len(want))
	}
}

// nextEventsWithin reads n events from w, failing the test if they do not
// come within the test's time limit.
func nextEventsWithin(t *testing.T, w *store.Watcher, n int) []store.Event {
	t.Helper()
	ctx := testContext(t)
	var out []store.Event
	for range n {
		ev, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d of %d events: %v", len(out), n, err)
		}
		out = append(out, ev)
	}
	return out
}

// TestClusterWatchResumedOnLaggingMember: a client that saw a version on
// the leader resumes its watch on a follower that has not applied it yet.
// The watch waits for the follower to catch up, then gives exactly the
// events after that version.
func TestClusterWatchResumedOnLaggingMember(t *testing.T) {
	c := newStoreCluster(t, 3, rafttest.Options{})
	for i := range 4 {
		createOne(t, c, obj("service", fmt.Sprint("s", i), "team=a"))
	}
	c.requireSameStores(t)
	leader := c.Leader()
	lagging := c.Followers()[0]
	c.Partition([]*rafttest.Member{lagging}, others(c, lagging))

	rng := newRand(11)
	var seen uint64 // a version the client saw on the leader
	for i := range 40 {
		res, err := c.update(testContext(t), func(tx store.Tx) error { return clusterChange(tx, rng) })
		if err != nil && !errors.Is(err, store.ErrExists) && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrVersionConflict) {
			t.Fatalf("write: %v", err)
		}
		if err == nil && i >= 20 && seen == 0 {
			seen = res.Version
		}
	}
	if v := storeOf(lagging).Version(); seen == 0 || v >= seen {
		t.Fatalf("the follower is at %d, the resumed version is %d: it does not lag", v, seen)
	}
	sel := store.Selector{Kind: "service"}
	resumed := mustWatch(t, storeOf(lagging).Store, seen, sel)
	requireNoEvent(t, resumed)

	c.Heal()
	c.requireSameStores(t)
	if _, restores := storeOf(leader).history(); len(restores) != 0 {
		t.Fatalf("%s restored a snapshot; its history is partial", leader.NodeID)
	}
	want := expectedEvents(storeOf(leader).accepted(), sel, seen)
	if len(want) == 0 {
		t.Fatal("no change after the resumed version")
	}
	requireEvents(t, "the watch resumed on "+lagging.NodeID, nextEventsWithin(t, resumed, len(want)), want)
	requireNoEvent(t, resumed)
}
