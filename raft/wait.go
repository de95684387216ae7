package raft

import "sync"

// proposalResult is what Apply returned for a proposed entry.
type proposalResult struct {
	result any
	err    error
}

// proposalWaiters holds the callers of ProposeValue (and of membership
// changes) waiting for their entry to be applied, by proposal ID.
type proposalWaiters struct {
	mu      sync.Mutex
	waiting map[uint64]chan proposalResult
}

func newProposalWaiters() *proposalWaiters {
	return &proposalWaiters{waiting: map[uint64]chan proposalResult{}}
}

// register returns the channel on which the result for id arrives, once.
func (w *proposalWaiters) register(id uint64) <-chan proposalResult {
	ch := make(chan proposalResult, 1)
	w.mu.Lock()
	w.waiting[id] = ch
	w.mu.Unlock()
	return ch
}

// forget drops the waiter for id, if any (the caller gave up).
func (w *proposalWaiters) forget(id uint64) {
	w.mu.Lock()
	delete(w.waiting, id)
	w.mu.Unlock()
}

// deliver hands a result to the waiter for id, if one still waits.
func (w *proposalWaiters) deliver(id uint64, res proposalResult) {
	w.mu.Lock()
	ch, ok := w.waiting[id]
	delete(w.waiting, id)
	w.mu.Unlock()
	if ok {
		ch <- res // buffered, never blocks
	}
}

// failAll hands err to every waiter.
func (w *proposalWaiters) failAll(err error) {
	w.mu.Lock()
	waiting := w.waiting
	w.waiting = map[uint64]chan proposalResult{}
	w.mu.Unlock()
	for _, ch := range waiting {
		ch <- proposalResult{err: err}
	}
}

// appliedIndex is the index of the last applied entry, with a way to wait
// until it reaches a given value.
type appliedIndex struct {
	mu      sync.Mutex
	index   uint64
	waiters []indexWaiter
}

type indexWaiter struct {
	index uint64
	ch    chan struct{}
}

// get returns the applied index.
func (a *appliedIndex) get() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.index
}

// set records that index was applied and wakes the waiters it satisfies.
func (a *appliedIndex) set(index uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.index = index
	kept := a.waiters[:0]
	for _, w := range a.waiters {
		if w.index <= index {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	clear(a.waiters[len(kept):])
	a.waiters = kept
}

// wait returns a channel closed once the applied index is at least index.
func (a *appliedIndex) wait(index uint64) <-chan struct{} {
	ch := make(chan struct{})
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.index >= index {
		close(ch)
		return ch
	}
	a.waiters = append(a.waiters, indexWaiter{index: index, ch: ch})
	return ch
}
