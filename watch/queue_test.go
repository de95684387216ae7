package watch_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/shoal-project/shoal/watch"
)

func newQueue(t testing.TB, history int) *watch.Queue[int] {
	t.Helper()
	q, err := watch.NewQueue[int](watch.Config{History: history})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(q.Close)
	return q
}

func mustWatch(t testing.TB, q *watch.Queue[int], from uint64, match func(int) bool) *watch.Watcher[int] {
	t.Helper()
	w, err := q.Watch(from, match)
	if err != nil {
		t.Fatalf("Watch(%d): %v", from, err)
	}
	t.Cleanup(w.Close)
	return w
}

func mustPublish(t testing.TB, q *watch.Queue[int], version uint64, values ...int) {
	t.Helper()
	if err := q.Publish(version, values...); err != nil {
		t.Fatalf("Publish(%d): %v", version, err)
	}
}

// collect reads n events; it fails the test on any error.
func collect(t testing.TB, w *watch.Watcher[int], n int) []watch.Event[int] {
	t.Helper()
	var out []watch.Event[int]
	for range n {
		ev, err := w.Next(context.Background())
		if err != nil {
			t.Fatalf("Next after %d events: %v", len(out), err)
		}
		out = append(out, ev)
	}
	return out
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     watch.Config
		wantErr bool
	}{
		{"default", watch.DefaultConfig(), false},
		{"one", watch.Config{History: 1}, false},
		{"zero", watch.Config{History: 0}, true},
		{"negative", watch.Config{History: -5}, true},
		{"bytes", watch.Config{History: 1, HistoryBytes: 1 << 20}, false},
		{"negative bytes", watch.Config{History: 1, HistoryBytes: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, want error %v", err, tt.wantErr)
			}
			if _, err := watch.NewSizedQueue(tt.cfg, func(int) int { return 1 }); (err != nil) != tt.wantErr {
				t.Fatalf("NewSizedQueue() = %v, want error %v", err, tt.wantErr)
			}
			// A bound in bytes needs the events' sizes.
			wantErr := tt.wantErr || tt.cfg.HistoryBytes > 0
			if _, err := watch.NewQueue[int](tt.cfg); (err != nil) != wantErr {
				t.Fatalf("NewQueue() = %v, want error %v", err, wantErr)
			}
		})
	}
}

// TestHistoryBytes bounds a history of 100 events by the sum of their
// sizes, each event's size being its value: the oldest are dropped until
// the new one fits, the newest always stays, and a watch must start after
// the last version dropped.
func TestHistoryBytes(t *testing.T) {
	tests := []struct {
		name      string
		publish   [][]int // values per version, versions 1, 2, ...
		want      []int   // retained values, oldest first
		watchFrom uint64  // the lowest version a watch may start at
	}{
		{"within the bound", [][]int{{3}, {3}, {4}}, []int{3, 3, 4}, 0},
		{"oldest dropped", [][]int{{3}, {3}, {4}, {2}}, []int{3, 4, 2}, 1},
		{"several dropped for a large one", [][]int{{3}, {3}, {4}, {9}}, []int{9}, 3},
		{"larger than the bound, kept alone", [][]int{{1}, {25}}, []int{25}, 1},
		{"then the next replaces it", [][]int{{1}, {25}, {2}}, []int{2}, 2},
		// Version 2 lost one of its events: a watch starts after it.
		{"one version in part", [][]int{{1}, {4, 4, 4}, {1}}, []int{1}, 2},
		{"empty events cost nothing", [][]int{{0}, {0}, {10}, {0}}, []int{0, 0, 10, 0}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := watch.NewSizedQueue(watch.Config{History: 100, HistoryBytes: 10}, func(v int) int { return v })
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			for i, values := range tt.publish {
				mustPublish(t, q, uint64(i+1), values...)
			}
			if tt.watchFrom > 0 {
				if _, err := q.Watch(tt.watchFrom-1, nil); !errors.Is(err, watch.ErrCompacted) {
					t.Fatalf("Watch(%d) = %v, want ErrCompacted", tt.watchFrom-1, err)
				}
			}
			w := mustWatch(t, q, tt.watchFrom, nil)
			var got []int
			for _, ev := range collect(t, w, len(tt.want)) {
				got = append(got, ev.Value)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("retained %v, want %v", got, tt.want)
			}
		})
	}
}

// TestHistoryBytesCutsOffALaggingWatcher: events dropped for their size
// end a watcher that had not read them, as dropped by count does.
func TestHistoryBytesCutsOffALaggingWatcher(t *testing.T) {
	q, err := watch.NewSizedQueue(watch.Config{History: 100, HistoryBytes: 10}, func(v int) int { return v })
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	w := mustWatch(t, q, 0, nil)
	mustPublish(t, q, 1, 6)
	mustPublish(t, q, 2, 6) // drops version 1, unread
	if _, err := w.Next(context.Background()); !errors.Is(err, watch.ErrLagged) {
		t.Fatalf("Next = %v, want ErrLagged", err)
	}
	// After a reset the sizes count from nothing again.
	q.Reset(10)
	w = mustWatch(t, q, 10, nil)
	mustPublish(t, q, 11, 5)
	mustPublish(t, q, 12, 5)
	if got := collect(t, w, 2); got[0].Value != 5 || got[1].Version != 12 {
		t.Fatalf("after reset: %+v", got)
	}
}

// TestConcurrentWatchersSeeEverythingInOrder publishes from one goroutine
// while several watchers read concurrently: each must see every event once,
// in order, with no gap.
func TestConcurrentWatchersSeeEverythingInOrder(t *testing.T) {
	const versions, perVersion, watchers = 2000, 3, 4
	q := newQueue(t, versions*perVersion) // large enough that no one lags
	var ws []*watch.Watcher[int]
	for range watchers {
		ws = append(ws, mustWatch(t, q, 0, nil))
	}
	var wg sync.WaitGroup
	errs := make(chan error, watchers)
	for _, w := range ws {
		wg.Go(func() {
			for i := range versions * perVersion {
				ev, err := w.Next(context.Background())
				if err != nil {
					errs <- err
					return
				}
				wantVersion := uint64(i/perVersion + 1)
				if ev.Version != wantVersion || ev.Value != i {
					errs <- fmt.Errorf("event %d = %+v, want version %d value %d", i, ev, wantVersion, i)
					return
				}
			}
		})
	}
	for v := range versions {
		base := v * perVersion
		mustPublish(t, q, uint64(v+1), base, base+1, base+2)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestFilter(t *testing.T) {
	q := newQueue(t, 100)
	even := mustWatch(t, q, 0, func(v int) bool { return v%2 == 0 })
	for v := range 10 {
		mustPublish(t, q, uint64(v+1), v)
	}
	got := collect(t, even, 5)
	for i, ev := range got {
		if ev.Value != 2*i || ev.Version != uint64(2*i+1) {
			t.Errorf("event %d = %+v, want value %d", i, ev, 2*i)
		}
	}
}

// TestWatchFrom resumes from versions inside and around the retained
// history, which holds 4 events. Version 1 is overwritten whole and
// version 2 in part, so a watch must start at 2 or later.
func TestWatchFrom(t *testing.T) {
	history := func(t *testing.T) *watch.Queue[int] {
		q := newQueue(t, 4)
		mustPublish(t, q, 1, 10)
		mustPublish(t, q, 2, 20, 21)
		mustPublish(t, q, 3, 30)
		mustPublish(t, q, 5, 50) // ring: 20 21 30 50; version 1 overwritten
		mustPublish(t, q, 6, 60) // ring: 21 30 50 60; version 2 in part
		mustPublish(t, q, 7)     // a version without events
		return q
	}
	tests := []struct {
		from    uint64
		want    []int
		wantErr error
	}{
		{from: 0, wantErr: watch.ErrCompacted},
		{from: 1, wantErr: watch.ErrCompacted}, // 20 of version 2 is gone
		{from: 2, want: []int{30, 50, 60}},
		{from: 3, want: []int{50, 60}},
		{from: 4, want: []int{50, 60}},
		{from: 6, want: nil},
		{from: 7, want: nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("from ", tt.from), func(t *testing.T) {
			q := history(t)
			w, err := q.Watch(tt.from, nil)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Watch(%d) = %v, want %v", tt.from, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer w.Close()
			var got []int
			for _, ev := range collect(t, w, len(tt.want)) {
				got = append(got, ev.Value)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			// Nothing else is pending: the next event is the one published now.
			mustPublish(t, q, 8, 80)
			if ev := collect(t, w, 1)[0]; ev.Version != 8 || ev.Value != 80 {
				t.Fatalf("event after the history = %+v, want version 8 value 80", ev)
			}
		})
	}
}

func TestWatchAheadOfQueue(t *testing.T) {
	q := newQueue(t, 10)
	mustPublish(t, q, 1, 1)
	w := mustWatch(t, q, 3, nil)
	mustPublish(t, q, 2, 2) // not above 3: skipped
	mustPublish(t, q, 3, 3) // not above 3: skipped
	mustPublish(t, q, 4, 4)
	if got := collect(t, w, 1)[0]; got.Value != 4 {
		t.Fatalf("first event = %+v, want value 4", got)
	}
}

// TestStalledWatcherIsCutOff: a watcher that never reads does not hold up
// publishing; a reading watcher keeps up; the stalled one gets ErrLagged.
func TestStalledWatcherIsCutOff(t *testing.T) {
	const history, total = 8, 1000
	q := newQueue(t, history)
	stalled := mustWatch(t, q, 0, nil)
	live := mustWatch(t, q, 0, nil)

	acks := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		for i := range total {
			ev, err := live.Next(context.Background())
			if err != nil {
				done <- err
				return
			}
			if ev.Value != i {
				done <- fmt.Errorf("live watcher got %d, want %d", ev.Value, i)
				return
			}
			// The publisher waits for the live watcher below, so that it
			// cannot lag; the stalled one is never waited for.
			acks <- struct{}{}
		}
		done <- nil
	}()
	for i := range total {
		mustPublish(t, q, uint64(i+1), i)
		<-acks
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := stalled.Next(context.Background()); !errors.Is(err, watch.ErrLagged) {
		t.Fatalf("stalled watcher: Next = %v, want ErrLagged", err)
	}
	// The error is sticky.
	if _, err := stalled.Next(context.Background()); !errors.Is(err, watch.ErrLagged) {
		t.Fatalf("stalled watcher again: Next = %v, want ErrLagged", err)
	}
}

func TestReset(t *testing.T) {
	q := newQueue(t, 10)
	mustPublish(t, q, 1, 1)
	mustPublish(t, q, 2, 2)
	w := mustWatch(t, q, 2, nil)
	q.Reset(100)
	if _, err := w.Next(context.Background()); !errors.Is(err, watch.ErrReset) {
		t.Fatalf("Next after Reset = %v, want ErrReset", err)
	}
	if _, err := q.Watch(99, nil); !errors.Is(err, watch.ErrCompacted) {
		t.Fatalf("Watch(99) after Reset(100) = %v, want ErrCompacted", err)
	}
	if err := q.Publish(100, 0); !errors.Is(err, watch.ErrOutOfOrder) {
		t.Fatalf("Publish(100) after Reset(100) = %v, want ErrOutOfOrder", err)
	}
	w2 := mustWatch(t, q, 100, nil)
	mustPublish(t, q, 101, 7)
	if ev := collect(t, w2, 1)[0]; ev.Version != 101 || ev.Value != 7 {
		t.Fatalf("event after reset = %+v", ev)
	}
}

func TestPublishOutOfOrder(t *testing.T) {
	q := newQueue(t, 10)
	mustPublish(t, q, 5, 1)
	for _, v := range []uint64{5, 4, 0} {
		if err := q.Publish(v, 2); !errors.Is(err, watch.ErrOutOfOrder) {
			t.Errorf("Publish(%d) after 5 = %v, want ErrOutOfOrder", v, err)
		}
	}
}

func TestCloseWakesNext(t *testing.T) {
	tests := []struct {
		name  string
		close func(*watch.Queue[int], *watch.Watcher[int])
	}{
		{"watcher", func(_ *watch.Queue[int], w *watch.Watcher[int]) { w.Close() }},
		{"queue", func(q *watch.Queue[int], _ *watch.Watcher[int]) { q.Close() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(t, 10)
			w := mustWatch(t, q, 0, nil)
			errc := make(chan error, 1)
			go func() {
				_, err := w.Next(context.Background())
				errc <- err
			}()
			tt.close(q, w)
			if err := <-errc; !errors.Is(err, watch.ErrClosed) {
				t.Fatalf("Next = %v, want ErrClosed", err)
			}
		})
	}
}

func TestNextHonoursContext(t *testing.T) {
	q := newQueue(t, 10)
	w := mustWatch(t, q, 0, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := w.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next = %v, want context.Canceled", err)
	}
	// The watcher is still usable.
	mustPublish(t, q, 1, 42)
	if ev := collect(t, w, 1)[0]; ev.Value != 42 {
		t.Fatalf("event = %+v", ev)
	}
}

func BenchmarkPublish(b *testing.B) {
	for _, watchers := range []int{0, 1000} {
		b.Run(fmt.Sprint("watchers=", watchers), func(b *testing.B) {
			q := newQueue(b, 10000)
			for range watchers {
				mustWatch(b, q, 0, nil) // stalled: must not slow publishing
			}
			v := uint64(0)
			for b.Loop() {
				v++
				if err := q.Publish(v, 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
