package raft

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft/membership"
)

// Join adds the manager nodeID, reachable at addr, to the cluster as a
// learner with a new Raft ID, and returns that ID and the membership after
// the change. The leader promotes the learner to a voter once it has caught
// up, unless permanentLearner is set. A learner never counts toward the
// quorum, so a joiner that never starts, or dies while it catches up,
// leaves the cluster's fault tolerance as it was.
//
// A node ID that is a member already is refused with
// membership.ErrNodeIsMember: one node has one Raft ID for life, and a
// manager that lost its Raft state must not come back under its old one
// (its votes and acknowledgements are forgotten). Leader only.
func (n *Node) Join(ctx context.Context, nodeID, addr string, permanentLearner bool) (uint64, *api.RaftMembershipState, error) {
	if nodeID == "" || addr == "" {
		return 0, nil, fmt.Errorf("raft: join needs a node ID and an address (got %q, %q)", nodeID, addr)
	}
	var id uint64
	err := n.changeMembership(ctx, func() (memberChange, error) {
		if m, ok := n.cluster.ByNodeID(nodeID); ok {
			return memberChange{}, fmt.Errorf("%w: node %s has Raft ID %x; if it lost its Raft state, remove it "+
				"('shoal node rm %s'), then start it again from an empty state directory", membership.ErrNodeIsMember,
				nodeID, m.RaftID, nodeID)
		}
		id = n.newRaftID()
		return memberChange{typ: raftpb.ConfChangeAddLearnerNode, member: &api.RaftMember{
			RaftId: id, NodeId: nodeID, Addr: addr, Learner: true, AutoPromote: !permanentLearner}}, nil
	})
	if err != nil {
		return 0, nil, err
	}
	return id, n.cluster.State(), nil
}

// UpdateAddress records addr as the address of the member with Raft ID id,
// which must have node ID nodeID. Leader only.
func (n *Node) UpdateAddress(ctx context.Context, id uint64, nodeID, addr string) error {
	if addr == "" {
		return fmt.Errorf("raft: an address update needs an address")
	}
	return n.changeMembership(ctx, func() (memberChange, error) {
		m, ok := n.cluster.Get(id)
		if !ok {
			return memberChange{}, fmt.Errorf("%w: Raft ID %x", membership.ErrUnknownMember, id)
		}
		if m.NodeID != nodeID {
			return memberChange{}, fmt.Errorf("%w: Raft ID %x belongs to node %s, not %s", ErrWrongNode, id, m.NodeID, nodeID)
		}
		if m.Addr == addr {
			return memberChange{}, errUnchanged
		}
		m.Addr = addr
		return memberChange{typ: raftpb.ConfChangeUpdateNode, member: m.Proto()}, nil
	})
}

// RemoveMember removes the member with Raft ID id from the cluster for
// good. Unless force is set, it refuses with membership.ErrCannotRemove a
// removal of a voter that would leave the other voters without a quorum of
// reachable ones. Leader only; the leader cannot remove itself (transfer
// leadership first, then ask the new leader).
func (n *Node) RemoveMember(ctx context.Context, id uint64, force bool) error {
	return n.changeMembership(ctx, func() (memberChange, error) {
		if id == n.id {
			return memberChange{}, fmt.Errorf("raft: the leader cannot remove itself; transfer leadership first")
		}
		if n.cluster.IsRemoved(id) {
			return memberChange{}, fmt.Errorf("%w: Raft ID %x", membership.ErrMemberRemoved, id)
		}
		m, ok := n.cluster.Get(id)
		if !ok {
			return memberChange{}, fmt.Errorf("%w: Raft ID %x", membership.ErrUnknownMember, id)
		}
		if !force && !n.confirm(ctx, func() bool { return membership.CanRemove(n.cluster.Members(), id, n.reachable) }) {
			return memberChange{}, membership.ErrCannotRemove
		}
		return memberChange{typ: raftpb.ConfChangeRemoveNode, member: m.Proto()}, nil
	})
}

// Promote makes the learner with Raft ID id a voter. It refuses with
// ErrCannotPromote a learner that is unreachable, or further behind the
// leader's commit index than Config.PromotionLag. Promoting a voter does
// nothing. Leader only.
func (n *Node) Promote(ctx context.Context, id uint64) error {
	return n.changeMembership(ctx, func() (memberChange, error) {
		m, ok := n.cluster.Get(id)
		if !ok {
			return memberChange{}, fmt.Errorf("%w: Raft ID %x", membership.ErrUnknownMember, id)
		}
		if !m.Learner {
			return memberChange{}, errUnchanged
		}
		if err := n.promotable(id); err != nil {
			return memberChange{}, err
		}
		m.Learner, m.AutoPromote = false, false
		return memberChange{typ: raftpb.ConfChangeAddNode, member: m.Proto()}, nil
	})
}

// promotable tells why the learner id cannot become a voter now, if so.
func (n *Node) promotable(id uint64) error {
	st := n.raftNode.Status()
	pr, ok := st.Progress[id]
	if !ok {
		return fmt.Errorf("%w: the leader has no progress for %x yet", ErrCannotPromote, id)
	}
	commit := st.HardState.GetCommit()
	if pr.Match+n.cfg.PromotionLag < commit || pr.State != tracker.StateReplicate {
		return fmt.Errorf("%w: %x has %d of %d entries (%s); wait until it has caught up", ErrCannotPromote, id,
			pr.Match, commit, strings.ToLower(pr.State.String()))
	}
	if !pr.RecentActive {
		return fmt.Errorf("%w: %x has not answered within an election timeout", ErrCannotPromote, id)
	}
	if !membership.CanPromote(n.cluster.Members(), id, n.reachable) {
		return fmt.Errorf("%w: too few voters are reachable for the larger quorum", ErrCannotPromote)
	}
	return nil
}

// Demote makes the voter with Raft ID id a learner, which keeps receiving
// the log but no longer votes, and is not promoted again automatically. It
// refuses with membership.ErrCannotDemote a demotion that would leave the
// other voters without a quorum of reachable ones. A learner that was to be
// promoted once caught up stays a learner for good; demoting any other
// learner does nothing. Leader only; the leader cannot demote itself (transfer
// leadership first, then ask the new leader).
func (n *Node) Demote(ctx context.Context, id uint64) error {
	return n.changeMembership(ctx, func() (memberChange, error) {
		if id == n.id {
			return memberChange{}, fmt.Errorf("%w: the leader cannot demote itself; transfer leadership first", ErrNotLeader)
		}
		m, ok := n.cluster.Get(id)
		if !ok {
			return memberChange{}, fmt.Errorf("%w: Raft ID %x", membership.ErrUnknownMember, id)
		}
		if m.Learner && !m.AutoPromote {
			return memberChange{}, errUnchanged
		}
		// A learner still to be promoted stays a learner for good.
		if !m.Learner && !n.confirm(ctx, func() bool { return membership.CanDemote(n.cluster.Members(), id, n.reachable) }) {
			return memberChange{}, membership.ErrCannotDemote
		}
		m.Learner, m.AutoPromote = true, false
		return memberChange{typ: raftpb.ConfChangeAddLearnerNode, member: m.Proto()}, nil
	})
}

// CheckDemote reports, with the quorum check Demote makes, whether
// demoting the member id would be refused: for the leader itself, before
// it hands over leadership to let another demote it. It returns
// membership.ErrCannotDemote, membership.ErrUnknownMember, or nil (a
// learner is demoted already).
func (n *Node) CheckDemote(ctx context.Context, id uint64) error {
	return n.checkVoterLeaves(ctx, id, membership.CanDemote, membership.ErrCannotDemote)
}

// CheckRemove is CheckDemote for RemoveMember without force.
func (n *Node) CheckRemove(ctx context.Context, id uint64) error {
	return n.checkVoterLeaves(ctx, id, membership.CanRemove, membership.ErrCannotRemove)
}

func (n *Node) checkVoterLeaves(ctx context.Context, id uint64,
	allowed func([]membership.Member, uint64, func(uint64) bool) bool, refused error) error {
	if err := n.checkRunning(); err != nil {
		return err
	}
	m, ok := n.cluster.Get(id)
	if !ok {
		return fmt.Errorf("%w: Raft ID %x", membership.ErrUnknownMember, id)
	}
	if m.Learner || n.confirm(ctx, func() bool { return allowed(n.cluster.Members(), id, n.reachable) }) {
		return nil
	}
	return refused
}

// promoteLearners promotes, while this node leads, every learner that
// joined to become a voter once it has caught up and answers. It checks
// every heartbeat interval.
func (n *Node) promoteLearners() {
	interval := time.Duration(n.cfg.HeartbeatTick) * n.cfg.TickInterval
	for {
		select {
		case <-n.clock.After(interval):
		case <-n.stopped:
			return
		}
		if !n.leadership.isReadyLeader() {
			continue
		}
		for _, m := range n.cluster.Members() {
			if !m.Learner || !m.AutoPromote || n.promotable(m.RaftID) != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.electionTimeout())
			err := n.Promote(ctx, m.RaftID)
			cancel()
			if err != nil {
				n.log.Info("promoting a caught-up learner", "peer", fmt.Sprintf("%x", m.RaftID), "err", err)
			} else {
				n.log.Info("promoted a caught-up learner to voter", "peer", fmt.Sprintf("%x", m.RaftID))
			}
		}
	}
}

// forgottenAfter is how many election timeouts a follower waits without a
// message before it asks whether it is still a member.
const forgottenAfter = 3

// probeWhenForgotten finds out when this node was removed without being
// told. A member removed before it received the log that makes it a voter
// never campaigns, and once removed nobody sends to it: it would wait
// forever. So a node that hears nothing for forgottenAfter election
// timeouts sends each peer a message Raft ignores (a heartbeat answer at a
// term no newer than the cluster's); a peer that knows it was removed
// refuses it, and the transport then stops the node.
func (n *Node) probeWhenForgotten() {
	timeout := n.cfg.electionTimeout()
	for {
		select {
		case <-n.clock.After(timeout):
		case <-n.stopped:
			return
		}
		silent := n.clock.Since(time.Unix(0, n.lastHeard.Load()))
		if silent < forgottenAfter*timeout || n.leadership.isRaftLeader() {
			continue
		}
		term := n.raftNode.Status().GetTerm()
		var probes []*raftpb.Message
		for _, id := range n.transport.Peers() {
			probes = append(probes, &raftpb.Message{Type: raftpb.MsgHeartbeatResp.Enum(),
				To: proto.Uint64(id), From: proto.Uint64(n.id), Term: proto.Uint64(term)})
		}
		n.log.Info("no message for a while; asking the peers whether this node is still a member", "silent", silent)
		n.transport.Send(probes)
	}
}

// reachable reports whether a member answers: the transport's last send
// to it got through, or, on the leader, Raft heard from it within an
// election timeout. This node is always reachable to itself.
func (n *Node) reachable(id uint64) bool {
	if id == n.id || n.transport.Active(id) {
		return true
	}
	pr, ok := n.raftNode.Status().Progress[id]
	return ok && pr.RecentActive
}

// confirm reports whether cond holds, such as a quorum check over who is
// reachable. A leader learns who answers only as its heartbeats come back,
// so a false cond is confirmed over one more election timeout: a change
// asked right after an election is not refused for want of news.
func (n *Node) confirm(ctx context.Context, cond func() bool) bool {
	deadline := n.clock.After(n.cfg.electionTimeout())
	tick := time.Duration(n.cfg.HeartbeatTick) * n.cfg.TickInterval
	for {
		if cond() {
			return true
		}
		select {
		case <-n.clock.After(tick):
		case <-deadline:
			return false
		case <-ctx.Done():
			return false
		case <-n.stopped:
			return false
		}
	}
}

// MemberStatus is one member as the node sees it.
type MemberStatus struct {
	membership.Member
	// Leader is set on the member this node believes leads.
	Leader bool
	// Match is the highest log index known to be replicated on the member;
	// known on the leader only (0 elsewhere).
	Match uint64
	// Lag is how many entries the member is behind the commit index;
	// known on the leader only (0 elsewhere).
	Lag uint64
	// Reachable tells whether the last message to the member got through.
	Reachable bool
	// LastContact is when this node last received a message from the
	// member; zero when it never did (and for this node itself).
	LastContact time.Time
}

// Status is a snapshot of the node's view of the cluster.
type Status struct {
	ID       uint64
	NodeID   string
	Term     uint64
	Leader   uint64
	State    string // "leader", "follower", "candidate", "pre-candidate"
	Commit   uint64
	Applied  uint64
	Members  []MemberStatus
	Removed  []uint64
	IsLeader bool // leader and caught up (see Leadership)
}

// Status returns the node's current view: its term, the leader, its commit
// and applied indexes, and per member the match index and reachability.
func (n *Node) Status() (Status, error) {
	if err := n.checkRunning(); err != nil {
		return Status{}, err
	}
	rs := n.raftNode.Status()
	st := Status{
		ID:       n.id,
		NodeID:   n.cfg.NodeID,
		Term:     rs.HardState.GetTerm(),
		Leader:   rs.Lead,
		State:    stateName(rs.RaftState.String()),
		Commit:   rs.HardState.GetCommit(),
		Applied:  n.applied.get(),
		Removed:  n.cluster.Removed(),
		IsLeader: n.leadership.isReadyLeader(),
	}
	for _, m := range n.cluster.Members() {
		ms := MemberStatus{Member: m, Leader: m.RaftID == rs.Lead, Reachable: n.reachable(m.RaftID),
			LastContact: n.lastContactWith(m.RaftID)}
		if pr, ok := rs.Progress[m.RaftID]; ok {
			ms.Match = pr.Match
			ms.Lag = st.Commit - min(pr.Match, st.Commit)
		}
		st.Members = append(st.Members, ms)
	}
	return st, nil
}

// heardFrom records that a message from peer arrived now.
func (n *Node) heardFrom(peer uint64) {
	now := n.clock.Now().UnixNano()
	n.lastHeard.Store(now)
	if t, ok := n.lastContact.Load(peer); ok {
		t.(*atomic.Int64).Store(now)
		return
	}
	t := &atomic.Int64{}
	t.Store(now)
	n.lastContact.Store(peer, t)
}

func (n *Node) lastContactWith(peer uint64) time.Time {
	if t, ok := n.lastContact.Load(peer); ok {
		return time.Unix(0, t.(*atomic.Int64).Load())
	}
	return time.Time{}
}

func stateName(s string) string {
	switch s {
	case "StateLeader":
		return "leader"
	case "StateFollower":
		return "follower"
	case "StateCandidate":
		return "candidate"
	case "StatePreCandidate":
		return "pre-candidate"
	}
	return s
}
