package raft

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft/membership"
)

// Join adds the manager nodeID, reachable at addr, to the cluster and
// returns its new Raft ID and the membership after the change. A manager
// that is already a member keeps its Raft ID; its address is updated when
// it changed. Leader only; a join that would leave the cluster without a
// quorum of reachable members is refused with ErrConfChangeRefused.
func (n *Node) Join(ctx context.Context, nodeID, addr string) (uint64, *api.RaftMembershipState, error) {
	if err := n.checkRunning(); err != nil {
		return 0, nil, err
	}
	if nodeID == "" || addr == "" {
		return 0, nil, fmt.Errorf("raft: join needs a node ID and an address (got %q, %q)", nodeID, addr)
	}
	if !n.leadership.isRaftLeader() {
		return 0, nil, n.notLeader()
	}
	if m, ok := n.cluster.ByNodeID(nodeID); ok {
		if m.Addr != addr {
			n.log.Info("member rejoined with a new address", "peer", fmt.Sprintf("%x", m.RaftID), "old", m.Addr, "new", addr)
			err := n.proposeConfChange(ctx, raftpb.ConfChangeUpdateNode, &api.RaftMember{RaftId: m.RaftID, NodeId: nodeID, Addr: addr})
			if err != nil {
				return 0, nil, err
			}
		}
		return m.RaftID, n.cluster.State(), nil
	}
	if !membership.CanAdd(n.cluster.Members(), n.reachable) {
		return 0, nil, fmt.Errorf("%w: too few members are reachable to add one safely", ErrConfChangeRefused)
	}
	id := n.newRaftID()
	if err := n.proposeConfChange(ctx, raftpb.ConfChangeAddNode, &api.RaftMember{RaftId: id, NodeId: nodeID, Addr: addr}); err != nil {
		return 0, nil, err
	}
	return id, n.cluster.State(), nil
}

// RemoveMember removes the member with Raft ID id from the cluster for
// good. Unless force is set, it refuses with membership.ErrCannotRemove a
// removal that would leave the other members without a quorum of reachable
// ones. Leader only; the leader cannot remove itself (transfer leadership
// first, then ask the new leader).
func (n *Node) RemoveMember(ctx context.Context, id uint64, force bool) error {
	if err := n.checkRunning(); err != nil {
		return err
	}
	if !n.leadership.isRaftLeader() {
		return n.notLeader()
	}
	if n.cluster.IsRemoved(id) {
		return fmt.Errorf("%w: Raft ID %x", membership.ErrMemberRemoved, id)
	}
	m, ok := n.cluster.Get(id)
	if !ok {
		return fmt.Errorf("%w: Raft ID %x", membership.ErrUnknownMember, id)
	}
	if id == n.id {
		return fmt.Errorf("raft: the leader cannot remove itself; transfer leadership first")
	}
	if !force && !n.canRemove(ctx, id) {
		return membership.ErrCannotRemove
	}
	return n.proposeConfChange(ctx, raftpb.ConfChangeRemoveNode, m.Proto())
}

// announceAddress makes the cluster record Config.AdvertiseAddr when the
// node restarted at an address other than the one its peers know. They
// cannot reach it at the old one, so it asks them: any member forwards the
// request to the leader. It retries every election timeout until the
// address is recorded or the node stops.
func (n *Node) announceAddress() {
	select {
	case <-n.applied.wait(n.restartCommit): // the membership is replayed
	case <-n.stopped:
		return
	}
	for {
		m, ok := n.cluster.Get(n.id)
		if !ok || m.Addr == n.cfg.AdvertiseAddr {
			return
		}
		n.log.Info("announcing a new address", "old", m.Addr, "new", n.cfg.AdvertiseAddr)
		for _, peer := range n.cluster.Members() {
			if peer.RaftID != n.id && n.askToUpdateAddress(peer.RaftID) {
				return
			}
		}
		select {
		case <-n.clock.After(n.cfg.electionTimeout()):
		case <-n.stopped:
			return
		}
	}
}

func (n *Node) askToUpdateAddress(peer uint64) bool {
	conn, err := n.transport.PeerConn(peer)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*n.cfg.electionTimeout())
	defer cancel()
	go func() {
		select {
		case <-n.stopped:
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err = api.NewRaftMembershipClient(conn).Join(ctx, &api.JoinRequest{NodeId: n.cfg.NodeID, Addr: n.cfg.AdvertiseAddr})
	if err != nil {
		n.log.Warn("announcing the new address", "peer", fmt.Sprintf("%x", peer), "err", errorFromStatus(err))
		return false
	}
	return true
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

// canRemove reports whether removing id keeps a quorum of reachable
// members. A leader learns who answers only as its heartbeats come back,
// so a refusal is confirmed over one more election timeout: a removal
// asked right after an election is not refused for want of news.
func (n *Node) canRemove(ctx context.Context, id uint64) bool {
	deadline := n.clock.After(n.cfg.electionTimeout())
	tick := time.Duration(n.cfg.HeartbeatTick) * n.cfg.TickInterval
	for {
		if membership.CanRemove(n.cluster.Members(), id, n.reachable) {
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
	// Reachable tells whether the last message to the member got through.
	Reachable bool
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
		ms := MemberStatus{Member: m, Leader: m.RaftID == rs.Lead, Reachable: n.reachable(m.RaftID)}
		if pr, ok := rs.Progress[m.RaftID]; ok {
			ms.Match = pr.Match
		}
		st.Members = append(st.Members, ms)
	}
	return st, nil
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
