package raft

import (
	"context"
	"fmt"
	"sync"

	"go.etcd.io/raft/v3"
)

// Leadership says whether this node leads the cluster.
type Leadership int

const (
	// Follower: this node does not lead (it may be a candidate).
	Follower Leadership = iota
	// Leader: this node leads and has applied every entry of earlier
	// terms, so its state machine is as new as any committed state.
	Leader
)

func (l Leadership) String() string {
	if l == Leader {
		return "leader"
	}
	return "follower"
}

// LeadershipEvent is sent to leadership subscribers.
type LeadershipEvent struct {
	State Leadership
	// Term is the Raft term in which the state began.
	Term uint64
}

// leadership tracks who leads, as seen by this node, and tells the
// subscribers. Subscribers always see the latest state: a slow subscriber
// misses intermediate states, never the last one.
type leadership struct {
	mu          sync.Mutex
	leaderID    uint64
	term        uint64
	raftState   raft.StateType
	readyLeader bool          // this node is Leader in the LeadershipEvent sense
	changed     chan struct{} // closed and replaced when leaderID or readyLeader changes
	subscribers map[chan LeadershipEvent]struct{}
	last        LeadershipEvent
}

func newLeadership() *leadership {
	return &leadership{changed: make(chan struct{}), subscribers: map[chan LeadershipEvent]struct{}{}}
}

// snapshot returns the leader ID, the term and this node's raft state.
func (l *leadership) snapshot() (leaderID, term uint64, state raft.StateType) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leaderID, l.term, l.raftState
}

// isRaftLeader reports whether raft considers this node the leader.
func (l *leadership) isRaftLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raftState == raft.StateLeader
}

// isReadyLeader reports whether this node leads and has caught up.
func (l *leadership) isReadyLeader() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.readyLeader
}

// changes returns a channel closed at the next change of leader or of
// readiness.
func (l *leadership) changes() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// update records raft's soft state and the current term.
func (l *leadership) update(leaderID, term uint64, state raft.StateType) {
	l.mu.Lock()
	defer l.mu.Unlock()
	changed := l.leaderID != leaderID || l.raftState != state
	l.leaderID, l.term, l.raftState = leaderID, term, state
	if state != raft.StateLeader && l.readyLeader {
		l.readyLeader = false
		changed = true
		l.publishLocked(LeadershipEvent{State: Follower, Term: term})
	}
	if changed {
		l.notifyLocked()
	}
}

// setReady marks this node a leader that has applied every entry of
// earlier terms.
func (l *leadership) setReady(term uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.readyLeader || l.raftState != raft.StateLeader {
		return
	}
	l.readyLeader = true
	l.publishLocked(LeadershipEvent{State: Leader, Term: term})
	l.notifyLocked()
}

func (l *leadership) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *leadership) publishLocked(ev LeadershipEvent) {
	l.last = ev
	for ch := range l.subscribers {
		replaceLatest(ch, ev)
	}
}

// replaceLatest leaves ev as the only value in ch, a channel of capacity
// one; the caller holds the lock that serialises senders.
func replaceLatest(ch chan LeadershipEvent, ev LeadershipEvent) {
	select {
	case <-ch:
	default:
	}
	ch <- ev
}

func (l *leadership) subscribe() (<-chan LeadershipEvent, func()) {
	ch := make(chan LeadershipEvent, 1)
	l.mu.Lock()
	l.subscribers[ch] = struct{}{}
	ch <- l.last
	l.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			l.mu.Lock()
			delete(l.subscribers, ch)
			l.mu.Unlock()
		})
	}
}

// SubscribeLeadership returns a channel that receives this node's
// leadership state: the current one at once, then every change. A
// subscriber that falls behind sees only the latest state. The node becomes
// Leader only after it has applied every entry of earlier terms. Call the
// returned function to unsubscribe; the channel is not closed.
func (n *Node) SubscribeLeadership() (<-chan LeadershipEvent, func()) {
	return n.leadership.subscribe()
}

// LeaderChanged returns a channel closed at the next change of the leader
// this node knows, or of its own readiness to lead; call it again for the
// change after. Read Leader after taking the channel, so no change is missed.
func (n *Node) LeaderChanged() <-chan struct{} { return n.leadership.changes() }

// IsLeader reports whether this node is the leader and has applied every
// entry of earlier terms.
func (n *Node) IsLeader() bool { return n.leadership.isReadyLeader() }

// Leader returns the Raft ID of the leader as this node knows it, 0 when
// unknown.
func (n *Node) Leader() uint64 {
	id, _, _ := n.leadership.snapshot()
	return id
}

// LeaderAddr returns the leader's Raft ID and address, or ErrNoLeader.
func (n *Node) LeaderAddr() (uint64, string, error) {
	id := n.Leader()
	if id == 0 {
		return 0, "", ErrNoLeader
	}
	m, ok := n.cluster.Get(id)
	if !ok {
		return id, "", fmt.Errorf("%w: leader %x is not a known member yet", ErrNoLeader, id)
	}
	return id, m.Addr, nil
}

// WaitForLeader blocks until the cluster has a leader that this node knows,
// or ctx ends. It fails at once with ErrNotStarted or ErrStopped when the
// node does not run.
func (n *Node) WaitForLeader(ctx context.Context) error {
	if err := n.checkRunning(); err != nil {
		return err
	}
	for {
		changed := n.leadership.changes()
		if n.Leader() != 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrNoLeader, ctx.Err())
		case <-n.stopped:
			return ErrStopped
		}
	}
}

// TransferLeadership hands leadership to the member with Raft ID to, or,
// when to is 0, to the most up-to-date reachable member. It returns once
// that member leads, and fails with ErrLeadershipTransfer when the transfer
// does not complete within two election timeouts (or ctx). Leader only.
func (n *Node) TransferLeadership(ctx context.Context, to uint64) error {
	if err := n.checkRunning(); err != nil {
		return err
	}
	if !n.leadership.isRaftLeader() {
		return n.notLeader()
	}
	if to == n.id {
		return nil
	}
	if to == 0 {
		to = n.transferTarget()
		if to == 0 {
			return fmt.Errorf("%w: no other reachable member", ErrLeadershipTransfer)
		}
	} else if m, ok := n.cluster.Get(to); !ok {
		return fmt.Errorf("%w: %x is not a member", ErrLeadershipTransfer, to)
	} else if m.Learner {
		return fmt.Errorf("%w: %x is a learner, which cannot lead; promote it first", ErrLeadershipTransfer, to)
	}
	n.log.Info("transferring leadership", "to", fmt.Sprintf("%x", to))
	timeout := n.clock.After(2 * n.cfg.electionTimeout())
	n.raftNode.TransferLeadership(ctx, n.id, to)
	// Raft gives up a transfer after an election timeout, as when the
	// target would not campaign with a membership change committed but
	// not yet applied; ask again while this node still leads.
	retry := n.clock.NewTicker(n.cfg.electionTimeout() / 2)
	defer retry.Stop()
	for {
		changed := n.leadership.changes()
		leader := n.Leader()
		if leader == to {
			return nil
		}
		if leader != 0 && leader != n.id {
			return fmt.Errorf("%w: %x became leader instead of %x", ErrLeadershipTransfer, leader, to)
		}
		select {
		case <-changed:
		case <-retry.Chan():
			if st := n.raftNode.Status(); st.RaftState == raft.StateLeader && st.LeadTransferee == 0 {
				n.raftNode.TransferLeadership(ctx, n.id, to)
			}
		case <-timeout:
			return fmt.Errorf("%w: %x did not take over in time", ErrLeadershipTransfer, to)
		case <-ctx.Done():
			return fmt.Errorf("%w: %w", ErrLeadershipTransfer, ctx.Err())
		case <-n.stopped:
			return ErrStopped
		}
	}
}

// transferTarget picks the reachable voter with the highest match index (a
// learner cannot lead).
func (n *Node) transferTarget() uint64 {
	st := n.raftNode.Status()
	var best, bestMatch uint64
	for _, m := range n.cluster.Voters() {
		if m.RaftID == n.id || !n.transport.Active(m.RaftID) {
			continue
		}
		if pr, ok := st.Progress[m.RaftID]; ok && (best == 0 || pr.Match > bestMatch) {
			best, bestMatch = m.RaftID, pr.Match
		}
	}
	return best
}

// waitReadyLeader waits until this node is Leader in the LeadershipEvent
// sense, for at most one election timeout.
func (n *Node) waitReadyLeader(ctx context.Context) error {
	timeout := n.clock.After(n.cfg.electionTimeout())
	for {
		changed := n.leadership.changes()
		if n.leadership.isReadyLeader() {
			return nil
		}
		if !n.leadership.isRaftLeader() {
			return n.notLeader()
		}
		select {
		case <-changed:
		case <-timeout:
			return fmt.Errorf("%w: the new leader has not caught up after %v", ErrNoLeader, n.cfg.electionTimeout())
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopped:
			return ErrStopped
		}
	}
}

// NotLeader returns the error for a call that needs the leader, on a node
// that is not it: a *NotLeaderError naming the leader when known.
func (n *Node) NotLeader() error { return n.notLeader() }

// notLeader builds the error for a call that needs the leader.
func (n *Node) notLeader() error {
	e := &NotLeaderError{}
	e.LeaderID, e.LeaderAddr, _ = n.LeaderAddr()
	return e
}
