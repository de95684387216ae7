// Package watch is a bounded, versioned event history with subscriptions:
// the part of the store that tells watchers what changed.
//
// A Queue retains the most recent events in a ring of fixed size. Each
// event carries the version (Raft index) that produced it; versions never
// go down. A Watcher is only a cursor into that ring, so publishing is O(1)
// whatever the number of watchers, never waits for any of them, and a
// watcher that stops reading costs nothing. A watcher that falls so far
// behind that the events it has not read were overwritten is cut off: its
// next call to Next returns ErrLagged. It must then list again and watch
// from the version of that list.
//
// The package owns the ordering and delivery guarantees: a watcher gets
// every event that matches its filter exactly once, in the order they were
// published, with no gap, or an error that says it must list again. It must
// not know what the events are: the store decides what an event holds and
// how a filter matches it.
//
// Usage:
//
//	q, err := watch.NewQueue[string](watch.DefaultConfig())
//	w, err := q.Watch(0, func(s string) bool { return s != "noise" })
//	defer w.Close()
//	q.Publish(7, "created a") // on the apply goroutine
//	ev, err := w.Next(ctx)   // ev.Version == 7, ev.Value == "created a"
package watch
