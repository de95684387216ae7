package watch

import (
	"context"
	"sync"
)

// batchSize is how many events Next copies out of the ring per lock; the
// filter then runs on them with the lock released.
const batchSize = 64

// Watcher is one subscription: a cursor into its queue's history.
//
// Next must be called from one goroutine at a time. Close may be called
// from any goroutine, also while Next waits.
type Watcher[T any] struct {
	q     *Queue[T]
	epoch uint64
	next  uint64 // sequence number of the next event to read
	from  uint64
	match func(T) bool

	buf []Event[T] // copied out of the ring, not yet filtered
	err error      // sticky: once set, every Next returns it

	closeOnce sync.Once
	closed    chan struct{}
}

// Next returns the next matching event, waiting for one if need be. It
// returns ctx's error if ctx ends first (the watcher stays usable), and
// otherwise one of ErrLagged, ErrReset or ErrClosed, after which the
// watcher is finished and returns that error again on every call.
func (w *Watcher[T]) Next(ctx context.Context) (Event[T], error) {
	select {
	case <-w.closed:
		w.err = ErrClosed
	default:
	}
	for {
		for len(w.buf) > 0 {
			ev := w.buf[0]
			w.buf[0] = Event[T]{}
			w.buf = w.buf[1:]
			if ev.Version > w.from && (w.match == nil || w.match(ev.Value)) {
				return ev, nil
			}
		}
		if w.err != nil {
			return Event[T]{}, w.err
		}
		changed := w.fill()
		if w.err != nil || len(w.buf) > 0 {
			continue
		}
		select {
		case <-changed:
		case <-w.closed:
			w.err = ErrClosed
		case <-ctx.Done():
			return Event[T]{}, ctx.Err()
		}
	}
}

// fill copies the next events into w.buf, or sets w.err, or returns the
// channel to wait on when there is nothing new.
func (w *Watcher[T]) fill() <-chan struct{} {
	select {
	case <-w.closed:
		w.err = ErrClosed
		return nil
	default:
	}
	q := w.q
	q.mu.RLock()
	defer q.mu.RUnlock()
	switch {
	case q.closed:
		w.err = ErrClosed
	case q.epoch != w.epoch:
		w.err = ErrReset
	case w.next < q.start:
		w.err = ErrLagged
	}
	if w.err != nil {
		return nil
	}
	n := uint64(len(q.ring))
	end := min(q.head, w.next+batchSize)
	w.buf = w.buf[:0]
	for ; w.next < end; w.next++ {
		w.buf = append(w.buf, q.ring[w.next%n])
	}
	return q.changed
}

// Close ends the watcher; a Next waiting in another goroutine returns
// ErrClosed. It is idempotent. The queue keeps no record of its watchers,
// so a watcher that is dropped without Close leaks nothing either.
func (w *Watcher[T]) Close() {
	w.closeOnce.Do(func() { close(w.closed) })
}
