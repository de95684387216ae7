package watch

import (
	"fmt"
	"log/slog"
	"sort"
	"sync"
)

// Event is one published value and the version that produced it. Several
// events may share a version (one Raft entry changing several objects);
// they keep the order in which they were published.
type Event[T any] struct {
	Version uint64
	Value   T
}

// Queue is a bounded history of events with any number of watchers.
//
// Publish, Reset and Close are meant for one writer (the apply goroutine)
// but are safe to call from any goroutine; Watch may be called from any
// goroutine. None of them waits for a watcher.
type Queue[T any] struct {
	log *slog.Logger

	mu sync.RWMutex
	// ring holds the events with sequence numbers start..head-1 at
	// ring[seq%len(ring)]. Sequence numbers count every event ever
	// published and never repeat, so a watcher's cursor stays meaningful
	// across wrap-around and resets.
	ring  []Event[T]
	start uint64
	head  uint64
	// With Config.HistoryBytes (limit), sizes[seq%len(ring)] is the size
	// of the event in that slot and bytes their sum over start..head-1;
	// without, sizes is nil and size is not called.
	size  func(T) int
	sizes []int
	bytes int64
	limit int64
	// floor is the highest version of which some event may be missing
	// from the ring (overwritten, or from before a reset): a watch must
	// start at floor or later.
	floor uint64
	// last is the highest version published or reset to.
	last uint64
	// epoch changes on every Reset; a watcher of an older epoch is told to
	// list again.
	epoch uint64
	// changed is closed (and replaced) whenever waiting watchers should
	// look again: on publish, reset and close.
	changed chan struct{}
	closed  bool
}

// NewQueue returns an empty queue at version 0, bounded by cfg.History
// events.
func NewQueue[T any](cfg Config) (*Queue[T], error) {
	return NewSizedQueue[T](cfg, nil)
}

// NewSizedQueue returns an empty queue at version 0 that also bounds its
// history by cfg.HistoryBytes, counting each event's value as size says:
// it is called once per event, in Publish, and not at all when
// cfg.HistoryBytes is 0 (size may then be nil).
func NewSizedQueue[T any](cfg Config, size func(T) int) (*Queue[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HistoryBytes > 0 && size == nil {
		return nil, fmt.Errorf("watch: HistoryBytes %d needs a size for each event: use NewSizedQueue", cfg.HistoryBytes)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	q := &Queue[T]{
		log:     log,
		ring:    make([]Event[T], cfg.History),
		changed: make(chan struct{}),
	}
	if cfg.HistoryBytes > 0 {
		q.size, q.sizes, q.limit = size, make([]int, cfg.History), cfg.HistoryBytes
	}
	return q, nil
}

// Publish appends values as events of version, in order. version must be
// above every version published or reset to before (ErrOutOfOrder
// otherwise); a call with no values only moves the version on. It never
// blocks on watchers: a watcher whose unread events are dropped (beyond
// Config.History, or Config.HistoryBytes) gets ErrLagged when it next
// reads.
func (q *Queue[T]) Publish(version uint64, values ...T) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if version <= q.last {
		return fmt.Errorf("%w: %d after %d", ErrOutOfOrder, version, q.last)
	}
	q.last = version
	if len(values) == 0 {
		return nil
	}
	n := uint64(len(q.ring))
	for _, v := range values {
		size := 0
		if q.sizes != nil {
			size = q.size(v)
		}
		for q.head-q.start == n || (q.sizes != nil && q.head > q.start && q.bytes+int64(size) > q.limit) {
			q.dropOldestLocked()
		}
		q.ring[q.head%n] = Event[T]{Version: version, Value: v}
		if q.sizes != nil {
			q.sizes[q.head%n] = size
			q.bytes += int64(size)
		}
		q.head++
	}
	q.wakeLocked()
	return nil
}

// dropOldestLocked drops the oldest retained event, letting go of its
// value: a watch must then start at its version or later.
func (q *Queue[T]) dropOldestLocked() {
	i := q.start % uint64(len(q.ring))
	q.floor = max(q.floor, q.ring[i].Version)
	q.ring[i] = Event[T]{}
	if q.sizes != nil {
		q.bytes -= int64(q.sizes[i])
		q.sizes[i] = 0
	}
	q.start++
}

// Reset drops the whole history and sets the version to version, for when
// the state the events describe was replaced wholesale. Every existing
// watcher gets ErrReset; new watches may start from version on.
func (q *Queue[T]) Reset(version uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.ring) // let go of the old values
	clear(q.sizes)
	q.bytes = 0
	q.start = q.head
	q.floor = version
	q.last = version
	q.epoch++
	q.wakeLocked()
	q.log.Info("watch history reset", "index", version)
}

// Close ends every watcher with ErrClosed and refuses new watches and
// events. It is idempotent.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	close(q.changed)
}

// Version returns the highest version published or reset to.
func (q *Queue[T]) Version() uint64 {
	q.mu.RLock()
	defer q.mu.RUnlock()
	return q.last
}

// Watch starts a watcher that gets the events of versions above from for
// which match returns true (every event if match is nil). from may be
// ahead of the queue: the watcher then waits for such versions. It fails
// with ErrCompacted if events above from are no longer all retained.
//
// match is called on the watcher's goroutine, inside Next, never while the
// queue is locked, so it cannot slow publishing down.
func (q *Queue[T]) Watch(from uint64, match func(T) bool) (*Watcher[T], error) {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return nil, ErrClosed
	}
	if from < q.floor {
		return nil, fmt.Errorf("%w: asked for events after %d, history starts after %d", ErrCompacted, from, q.floor)
	}
	// Versions in the ring never go down, so the first event above from is
	// found by binary search.
	n := uint64(len(q.ring))
	size := int(q.head - q.start)
	i := sort.Search(size, func(i int) bool {
		return q.ring[(q.start+uint64(i))%n].Version > from
	})
	return &Watcher[T]{
		q:      q,
		epoch:  q.epoch,
		next:   q.start + uint64(i),
		from:   from,
		match:  match,
		closed: make(chan struct{}),
	}, nil
}

func (q *Queue[T]) wakeLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}
