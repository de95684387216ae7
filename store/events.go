package store

import (
	"context"
	"fmt"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/watch"
)

// EventType says what an Event reports.
type EventType int

// Event types.
const (
	EventCreate EventType = iota + 1
	EventUpdate
	EventDelete
)

func (t EventType) String() string {
	switch t {
	case EventCreate:
		return "create"
	case EventUpdate:
		return "update"
	case EventDelete:
		return "delete"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change to one object, made by the entry at Version.
type Event struct {
	Type    EventType
	Version uint64
	// Object is the object after a create or update, or as it was before a
	// delete (its own Version is then that of its last change).
	Object *api.Object
	// Old is, for an update, what selectors read of the object before it:
	// its kind, id, name and labels (no spec, version or times); nil
	// otherwise.
	Old *api.Object

	size int // of what the event holds, about: see Config.WatchHistoryBytes
}

// eventOverhead is what an event holds besides its objects' encoded
// bytes, about: the event, the decoded messages and their times.
const eventOverhead = 256

// matches reports whether a watch with sel gets ev. An update is sent if
// the object matches before or after it, so that a watcher sees objects
// leave its selection (by a label change or a rename) as well as enter it.
func (sel Selector) matchesEvent(ev Event) bool {
	return sel.Matches(ev.Object) || (ev.Old != nil && sel.Matches(ev.Old))
}

// Watcher delivers the events of one watch. Next must be called from one
// goroutine at a time; Close from any.
type Watcher struct {
	w *watch.Watcher[Event]
}

// Next returns the next event, waiting for it. Events come in version
// order, each once, with no gap. Besides ctx's error (after which the
// watcher is still usable) it fails for good with watch.ErrLagged (the
// watcher fell more than Config.WatchHistory events, or
// Config.WatchHistoryBytes, behind),
// watch.ErrReset (the store was restored from a snapshot) or
// watch.ErrClosed; after the first two, list again and watch from the
// version of that list. The objects are shared and must not be modified.
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	ev, err := w.w.Next(ctx)
	return ev.Value, err
}

// Close ends the watch; it may be called from any goroutine, also while
// Next waits, which then returns watch.ErrClosed.
func (w *Watcher) Close() { w.w.Close() }

// Watch returns a watcher of the events after version from that sel
// matches. from must be within the retained history (the last
// Config.WatchHistory events within Config.WatchHistoryBytes, and not
// before the last restore): otherwise
// it fails with an error wrapping watch.ErrCompacted, and the caller must
// list again. ErrInvalid if sel is invalid.
func (s *Store) Watch(from uint64, sel Selector) (*Watcher, error) {
	if err := sel.Validate(); err != nil {
		return nil, err
	}
	w, err := s.events.Watch(from, sel.matchesEvent)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Watcher{w: w}, nil
}

// ViewAndWatch runs fn with a read transaction, as View does, and returns
// a watcher of the events sel matches that come after the state fn read:
// together, a consistent list and the changes since. It fails with an
// error wrapping watch.ErrCompacted or watch.ErrReset if the history moved
// on too far (or the store was restored) while fn ran; the caller then
// tries again.
func (s *Store) ViewAndWatch(sel Selector, fn func(tx ReadTx)) (*Watcher, error) {
	if err := sel.Validate(); err != nil {
		return nil, err
	}
	tx := &readTx{st: s.cur.Load()}
	fn(tx)
	w, err := s.events.Watch(tx.Version(), sel.matchesEvent)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// A restore between the read and the watch would not show in the
	// history's versions if it went to an index at or below the one read.
	if s.cur.Load().restores != tx.st.restores {
		w.Close()
		return nil, fmt.Errorf("store: %w", watch.ErrReset)
	}
	return &Watcher{w: w}, nil
}
