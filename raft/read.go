package raft

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
)

// readBatcher gathers LinearizableRead callers so that one ReadIndex round
// serves all who arrived while the previous round ran.
type readBatcher struct {
	mu      sync.Mutex
	pending []*readWaiter
	signal  chan struct{} // capacity 1: "there are pending readers"
	seq     uint64        // owned by the read loop
}

type readWaiter struct {
	done chan struct{}
	err  error
}

func (b *readBatcher) init() { b.signal = make(chan struct{}, 1) }

func (b *readBatcher) add() *readWaiter {
	w := &readWaiter{done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, w)
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
	return w
}

func (b *readBatcher) take() []*readWaiter {
	b.mu.Lock()
	defer b.mu.Unlock()
	batch := b.pending
	b.pending = nil
	return batch
}

// LinearizableRead returns once this node's state machine reflects every
// entry committed before the call began, so a read of it that follows sees
// every write acknowledged before the call. It works on followers too: the
// leader confirms its leadership with a quorum (ReadIndex) and hands back
// its commit index, and the call waits until this node has applied it.
//
// It fails with ErrNoLeader when no leader confirms a read index within
// Config.ReadTimeout, with ErrStopped, or with ctx's error.
func (n *Node) LinearizableRead(ctx context.Context) error {
	if err := n.checkRunning(); err != nil {
		return err
	}
	w := n.reads.add()
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopped:
		return ErrStopped
	}
}

// WaitApplied returns once this node has applied the entry at index, so
// that its state machine reflects it, or fails with ErrStopped or ctx's
// error. A write that another member answered (its entry's index in hand)
// is visible here once it returns.
func (n *Node) WaitApplied(ctx context.Context, index uint64) error {
	applied := n.applied.wait(index)
	select {
	case <-applied:
		return nil
	default:
	}
	if err := n.checkRunning(); err != nil {
		return err
	}
	select {
	case <-applied:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopped:
		return ErrStopped
	}
}

// readLoop runs ReadIndex rounds, one at a time, each for every reader
// waiting when it starts.
func (n *Node) readLoop() {
	for {
		select {
		case <-n.reads.signal:
		case <-n.stopped:
			for _, w := range n.reads.take() {
				w.err = ErrStopped
				close(w.done)
			}
			return
		}
		batch := n.reads.take()
		if len(batch) == 0 {
			continue
		}
		err := n.readIndexRound()
		for _, w := range batch {
			w.err = err
			close(w.done)
		}
	}
}

// readIndexRound asks Raft for a read index and waits until it is applied.
// A request that gets no answer (the leader changed, a message was lost) is
// sent again every half election timeout until Config.ReadTimeout.
func (n *Node) readIndexRound() error {
	deadline := n.clock.After(n.cfg.ReadTimeout)
	n.reads.seq++
	rctx := binary.BigEndian.AppendUint64(nil, n.reads.seq)
	for {
		if err := n.raftNode.ReadIndex(context.Background(), rctx); err != nil {
			return ErrStopped
		}
		retry := n.clock.After(n.cfg.electionTimeout() / 2)
	wait:
		for {
			select {
			case rs := <-n.readStates:
				if !bytes.Equal(rs.RequestCtx, rctx) {
					continue // the answer to an earlier, abandoned round
				}
				select {
				case <-n.applied.wait(rs.Index):
					return nil
				case <-deadline:
					return fmt.Errorf("raft: read index %d not applied within %v", rs.Index, n.cfg.ReadTimeout)
				case <-n.stopped:
					return ErrStopped
				}
			case <-retry:
				break wait
			case <-deadline:
				return fmt.Errorf("%w: no read index confirmed within %v", ErrNoLeader, n.cfg.ReadTimeout)
			case <-n.stopped:
				return ErrStopped
			}
		}
	}
}
