package store_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/store"
	"github.com/shoal-project/shoal/watch"
)

func mustWatch(t testing.TB, s *store.Store, from uint64, sel store.Selector) *store.Watcher {
	t.Helper()
	w, err := s.Watch(from, sel)
	if err != nil {
		t.Fatalf("Watch(%d): %v", from, err)
	}
	t.Cleanup(w.Close)
	return w
}

func nextEvents(t testing.TB, w *store.Watcher, n int) []store.Event {
	t.Helper()
	var out []store.Event
	for range n {
		ev, err := w.Next(context.Background())
		if err != nil {
			t.Fatalf("Next after %d events: %v", len(out), err)
		}
		out = append(out, ev)
	}
	return out
}

// requireNoEvent checks that w has nothing more to deliver now: Next with
// an ended context returns an event if one is pending.
func requireNoEvent(t testing.TB, w *store.Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ev, err := w.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("unexpected event %d:%s:%s (err %v)", ev.Version, ev.Type, ev.Object.GetName(), err)
	}
}

func describe(evs []store.Event) string {
	s := ""
	for _, ev := range evs {
		s += fmt.Sprintf("%d:%s:%s ", ev.Version, ev.Type, ev.Object.GetName())
	}
	return s
}

// replay applies events to a map by id, checking order on the way, and
// keeps the sequence it saw.
type replay struct {
	objs map[string]*api.Object
	last uint64
	seen []store.Event
}

func newReplay(objs []*api.Object, version uint64) *replay {
	r := &replay{objs: map[string]*api.Object{}, last: version}
	for _, o := range objs {
		r.objs[o.GetId()] = o
	}
	return r
}

func (r *replay) apply(ev store.Event) error {
	if ev.Version < r.last {
		return fmt.Errorf("event of version %d after %d", ev.Version, r.last)
	}
	r.seen = append(r.seen, ev)
	r.last = ev.Version
	switch ev.Type {
	case store.EventCreate, store.EventUpdate:
		if ev.Object.GetVersion() != ev.Version {
			return fmt.Errorf("%s event of version %d carries object version %d", ev.Type, ev.Version, ev.Object.GetVersion())
		}
		r.objs[ev.Object.GetId()] = ev.Object
	case store.EventDelete:
		delete(r.objs, ev.Object.GetId())
	}
	return nil
}

// results records what accepted Updates returned: the events there must
// be, each once, in order.
type results struct {
	mu  sync.Mutex
	all []*store.Result
}

func (rs *results) add(res *store.Result, err error) {
	if err != nil {
		return
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.all = append(rs.all, res)
}

// sameEvents checks that seen holds exactly one event per object of every
// result above version from, in version and then action order.
func (rs *results) sameEvents(t testing.TB, seen []store.Event, from uint64) {
	t.Helper()
	rs.mu.Lock()
	defer rs.mu.Unlock()
	all := slices.Clone(rs.all)
	slices.SortFunc(all, func(a, b *store.Result) int { return cmp.Compare(a.Version, b.Version) })
	var want []store.Event
	for _, res := range all {
		if res.Version <= from {
			continue
		}
		for _, o := range res.Objects {
			want = append(want, store.Event{Version: res.Version, Object: o})
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("saw %d events, %d changes were made", len(seen), len(want))
	}
	for i := range want {
		if seen[i].Version != want[i].Version || seen[i].Object != want[i].Object {
			t.Fatalf("event %d is %d:%s, want %d:%s", i, seen[i].Version, seen[i].Object.GetName(), want[i].Version, want[i].Object.GetName())
		}
	}
}

func (r *replay) equal(t testing.TB, s *store.Store) {
	t.Helper()
	final := list(t, s, store.Selector{})
	if len(final) != len(r.objs) {
		t.Fatalf("replayed %d objects, store has %d", len(r.objs), len(final))
	}
	for _, o := range final {
		if !proto.Equal(r.objs[o.GetId()], o) {
			t.Fatalf("replayed %v, store has %v", r.objs[o.GetId()], o)
		}
	}
}

// TestWatchSeesEveryChange: writers on several goroutines make random
// changes, conflicts included, while a watcher reads. Replaying the events
// on nothing must give the final store: no gap, no duplicate, in version
// order. A last, known change tells the reader where the end is.
func TestWatchSeesEveryChange(t *testing.T) {
	const writers, writesEach = 4, 100
	cfg := testConfig(t)
	cfg.WatchHistory = 100000 // this test is not about lagging
	l := newFakeLog(t, 1, cfg)
	s := l.replicas[0].store
	w := mustWatch(t, s, 0, store.Selector{})

	r := newReplay(nil, 0)
	done := make(chan error, 1)
	go func() {
		for {
			ev, err := w.Next(context.Background())
			if err == nil {
				err = r.apply(ev)
			}
			if err != nil || ev.Object.GetName() == "end" {
				done <- err
				return
			}
		}
	}()
	var rs results
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			rng := newRand(i)
			for range writesEach {
				rs.add(s.Update(context.Background(), func(tx store.Tx) error { return randomChange(tx, rng) }))
			}
		})
	}
	wg.Wait()
	rs.add(s.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.Create(obj("node", "end"))
		return err
	}))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rs.sameEvents(t, r.seen, 0)
	requireNoEvent(t, w)
	r.equal(t, s)
}

func TestWatchResume(t *testing.T) {
	s := newStore(t, testConfig(t))
	a := mustCreate(t, s, obj("service", "a"))[0]                         // version 1
	b := mustCreate(t, s, obj("service", "b"))[0]                         // version 2
	mustCreate(t, s, obj("service", "c"), obj("node", "n"))               // version 3
	if _, err := s.Update(context.Background(), func(tx store.Tx) error { // version 4
		if err := tx.Delete("service", a.GetId(), 0); err != nil {
			return err
		}
		return tx.Update(b)
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		from uint64
		sel  store.Selector
		want string
	}{
		{0, store.Selector{}, "1:create:a 2:create:b 3:create:c 3:create:n 4:delete:a 4:update:b "},
		{2, store.Selector{}, "3:create:c 3:create:n 4:delete:a 4:update:b "},
		{3, store.Selector{}, "4:delete:a 4:update:b "},
		{0, store.Selector{Kind: "node"}, "3:create:n "},
		{1, store.Selector{Kind: "service", NamePrefix: "b"}, "2:create:b 4:update:b "},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.from, tt.sel), func(t *testing.T) {
			w := mustWatch(t, s, tt.from, tt.sel)
			got := describe(nextEvents(t, w, countEvents(tt.want)))
			if got != tt.want {
				t.Fatalf("events %q, want %q", got, tt.want)
			}
			requireNoEvent(t, w)
		})
	}
}

func countEvents(s string) int {
	n := 0
	for _, c := range s {
		if c == ' ' {
			n++
		}
	}
	return n
}

func TestWatchSelectorSeesObjectsLeave(t *testing.T) {
	s := newStore(t, testConfig(t))
	front := store.Selector{Kind: "service", Labels: map[string]string{"tier": "front"}}
	w := mustWatch(t, s, 0, front)
	web := mustCreate(t, s, obj("service", "web", "tier=front"))[0]
	mustCreate(t, s, obj("service", "db", "tier=back"))
	moved := proto.CloneOf(web)
	moved.Labels = map[string]string{"tier": "back"}
	if _, err := s.Update(context.Background(), func(tx store.Tx) error { return tx.Update(moved) }); err != nil {
		t.Fatal(err)
	}
	evs := nextEvents(t, w, 2)
	if got := describe(evs); got != "1:create:web 3:update:web " {
		t.Fatalf("events %q", got)
	}
	if evs[1].Old.GetLabels()["tier"] != "front" || evs[1].Object.GetLabels()["tier"] != "back" {
		t.Fatalf("update event old %v new %v", evs[1].Old, evs[1].Object)
	}
	if front.Matches(evs[1].Object) {
		t.Fatal("the watcher cannot tell the object left its selection")
	}
}

func TestWatchCompacted(t *testing.T) {
	cfg := testConfig(t)
	cfg.WatchHistory = 4
	s := newStore(t, cfg)
	for i := range 10 {
		mustCreate(t, s, obj("service", fmt.Sprint("s", i)))
	}
	if _, err := s.Watch(1, store.Selector{}); !errors.Is(err, watch.ErrCompacted) {
		t.Fatalf("Watch(1) = %v, want ErrCompacted", err)
	}
	w := mustWatch(t, s, 6, store.Selector{})
	if got := describe(nextEvents(t, w, 4)); got != "7:create:s6 8:create:s7 9:create:s8 10:create:s9 " {
		t.Fatalf("events %q", got)
	}
	if _, err := s.Watch(0, store.Selector{NamePrefix: "x"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Watch with an invalid selector = %v, want ErrInvalid", err)
	}
}

// TestWatchHistoryBytes: large objects fill the history's bound in bytes
// long before its count of events. Each create of a 16 KiB object holds
// that much; 64 KiB keep the last three.
func TestWatchHistoryBytes(t *testing.T) {
	cfg := testConfig(t)
	cfg.WatchHistory = 1000
	cfg.WatchHistoryBytes = 64 << 10
	s := newStore(t, cfg)
	for i := range 10 {
		o := obj("service", fmt.Sprint("s", i))
		o.Spec = bytes.Repeat([]byte("x"), 16<<10)
		mustCreate(t, s, o)
	}
	if _, err := s.Watch(6, store.Selector{}); !errors.Is(err, watch.ErrCompacted) {
		t.Fatalf("Watch(6) = %v, want ErrCompacted", err)
	}
	w := mustWatch(t, s, 7, store.Selector{})
	if got := describe(nextEvents(t, w, 3)); got != "8:create:s7 9:create:s8 10:create:s9 " {
		t.Fatalf("events %q", got)
	}
}

// TestStalledWatcherDoesNotBlockWrites: a watcher that never reads while
// far more changes than the history holds are applied; every Update
// completes, and the watcher is then told it fell behind.
func TestStalledWatcherDoesNotBlockWrites(t *testing.T) {
	cfg := testConfig(t)
	cfg.WatchHistory = 8
	s := newStore(t, cfg)
	stalled := mustWatch(t, s, 0, store.Selector{})
	for i := range 100 {
		mustCreate(t, s, obj("service", fmt.Sprint("s", i)))
	}
	if _, err := stalled.Next(context.Background()); !errors.Is(err, watch.ErrLagged) {
		t.Fatalf("stalled watcher: Next = %v, want ErrLagged", err)
	}
	// Listing again and watching from the list's version works.
	fresh, err := s.ViewAndWatch(store.Selector{}, func(tx store.ReadTx) {})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	mustCreate(t, s, obj("service", "after"))
	if got := describe(nextEvents(t, fresh, 1)); got != "101:create:after " {
		t.Fatalf("events %q", got)
	}
}

// TestViewAndWatch lists while writers run; the list plus the events after
// it must replay to the final store.
func TestViewAndWatch(t *testing.T) {
	cfg := testConfig(t)
	cfg.WatchHistory = 100000
	l := newFakeLog(t, 1, cfg)
	s := l.replicas[0].store
	for i := range 20 {
		mustCreate(t, s, obj("service", fmt.Sprint("s", i)))
	}
	var rs results
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			rng := newRand(100 + i)
			for range 100 {
				rs.add(s.Update(context.Background(), func(tx store.Tx) error { return randomChange(tx, rng) }))
			}
		})
	}
	var r *replay
	var listed uint64
	w, err := s.ViewAndWatch(store.Selector{Kind: "service"}, func(tx store.ReadTx) {
		objs, err := tx.List(store.Selector{Kind: "service"})
		if err != nil {
			t.Error(err)
		}
		listed = tx.Version()
		r = newReplay(objs, listed)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	wg.Wait()
	// Every Update has returned, so every change is applied: read as many
	// events as the changes after the list made.
	for len(r.seen) < countObjects(&rs, listed) {
		ev, err := w.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := r.apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	rs.sameEvents(t, r.seen, listed)
	requireNoEvent(t, w)
	r.equal(t, s)
}

// countObjects is how many events the results above version from make.
func countObjects(rs *results, from uint64) int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	n := 0
	for _, res := range rs.all {
		if res.Version > from {
			n += len(res.Objects)
		}
	}
	return n
}

func TestRestoreTellsWatchersToListAgain(t *testing.T) {
	src := newStore(t, testConfig(t))
	mustCreate(t, src, obj("service", "from-snapshot"))
	write, err := src.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	snap := writeToBuffer(t, write)

	s := newStore(t, testConfig(t))
	mustCreate(t, s, obj("service", "before"))
	w := mustWatch(t, s, 1, store.Selector{})
	if err := s.Restore(50, snap); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(context.Background()); !errors.Is(err, watch.ErrReset) {
		t.Fatalf("Next after Restore = %v, want ErrReset", err)
	}
	if _, err := s.Watch(1, store.Selector{}); !errors.Is(err, watch.ErrCompacted) {
		t.Fatalf("Watch from before the restore = %v, want ErrCompacted", err)
	}
	if names(list(t, s, store.Selector{})) != "service/from-snapshot" || s.Version() != 50 {
		t.Fatalf("after restore: %s at %d", names(list(t, s, store.Selector{})), s.Version())
	}
	w2 := mustWatch(t, s, 50, store.Selector{})
	if _, err := s.Apply(51, payload(t, validAction(api.StoreActionKind_STORE_ACTION_KIND_CREATE, withID(obj("node", "n1"), "n1"), 0))); err != nil {
		t.Fatal(err)
	}
	if got := describe(nextEvents(t, w2, 1)); got != "51:create:n1 " {
		t.Fatalf("events after restore %q", got)
	}
}

func withID(o *api.Object, id string) *api.Object {
	o.Id = id
	return o
}
