package raft

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft/membership"
)

// A membership change is one ConfChangeV2 with a single change, whose
// context is an api.RaftEntry (proposer, proposal ID) around the member as
// it is to be after the change:
//
//	add a learner    ConfChangeAddLearnerNode  on a new Raft ID
//	promote          ConfChangeAddNode         on a learner
//	demote           ConfChangeAddLearnerNode  on a voter
//	new address      ConfChangeUpdateNode
//	remove           ConfChangeRemoveNode
//
// Older logs hold ConfChange (v1) entries, which apply the same way: the
// bootstrap entry that adds the first voter is one.

// memberChange is one membership change to propose.
type memberChange struct {
	typ    raftpb.ConfChangeType
	member *api.RaftMember
}

// changeMembership proposes the change that decide returns and waits until
// it is applied. Changes run one at a time, each until it is applied or
// this node stops leading, whatever their callers do: a caller whose ctx
// ends gets ctx's error, and the next change still waits for this one.
// decide runs once it is this change's turn, on a leader that has applied
// every earlier change, so its checks see the membership the change will
// apply to; an error from decide refuses the change before anything is
// proposed, and errUnchanged makes it succeed without one. It must be
// called on the leader (a *NotLeaderError otherwise).
func (n *Node) changeMembership(ctx context.Context, decide func() (memberChange, error)) error {
	if err := n.checkRunning(); err != nil {
		return err
	}
	if !n.leadership.isRaftLeader() {
		return n.notLeader()
	}
	select {
	case n.confChangeTurn <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("raft: waiting for an earlier membership change: %w", ctx.Err())
	case <-n.stopped:
		return ErrStopped
	}
	release := func() { <-n.confChangeTurn }
	done, err := n.proposeMemberChange(ctx, decide)
	if errors.Is(err, errUnchanged) {
		release()
		return nil
	}
	if err != nil {
		release()
		return err
	}
	// The turn is released once the change is applied, or this node stops
	// leading (the waiter fails then) or stops; not when ctx ends. The
	// goroutine is not in n.wg, which a caller must not add to while Run
	// shuts down; it ends as soon as the node stops.
	result := make(chan error, 1)
	go func() {
		defer release()
		select {
		case res := <-done:
			result <- res.err
		case <-n.stopped:
			result <- ErrStopped
		}
	}()
	select {
	case err := <-result:
		return err
	case <-ctx.Done():
		return fmt.Errorf("raft: gave up waiting; the membership change may still be applied: %w", ctx.Err())
	}
}

// proposeMemberChange decides and proposes one change, with the turn held.
func (n *Node) proposeMemberChange(ctx context.Context, decide func() (memberChange, error)) (<-chan proposalResult, error) {
	if err := n.waitReadyLeader(ctx); err != nil {
		return nil, err
	}
	// Raft drops a change proposed before it was told that the previous
	// one is applied (Advance); wait until it was.
	select {
	case <-n.advanced.wait(n.applied.get()):
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-n.stopped:
		return nil, ErrStopped
	}
	change, err := decide()
	if err != nil {
		return nil, err
	}
	payload, err := proto.Marshal(change.member)
	if err != nil {
		return nil, err
	}
	id := n.proposalSeq.Add(1)
	cctx, err := proto.Marshal(&api.RaftEntry{Proposer: n.id, ProposalId: id, Payload: payload})
	if err != nil {
		return nil, err
	}
	cc := &raftpb.ConfChangeV2{
		Changes: []*raftpb.ConfChangeSingle{{Type: change.typ.Enum(), NodeId: proto.Uint64(change.member.GetRaftId())}},
		Context: cctx,
	}
	done := n.proposals.register(id)
	n.pendingConfChange.Store(id)
	if err := n.raftNode.ProposeConfChange(ctx, cc); err != nil {
		n.pendingConfChange.CompareAndSwap(id, 0)
		n.proposals.forget(id)
		return nil, n.proposeError(err)
	}
	n.log.Info("proposed a membership change", "change", change.typ.String(),
		"peer", fmt.Sprintf("%x", change.member.GetRaftId()), "peer_node_id", change.member.GetNodeId())
	return done, nil
}

// confChangeOf decodes a configuration change entry of either version into
// its single change and its context.
func confChangeOf(e *raftpb.Entry) (*raftpb.ConfChangeSingle, []byte, error) {
	switch e.GetType() {
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return nil, nil, err
		}
		return &raftpb.ConfChangeSingle{Type: cc.Type, NodeId: cc.NodeId}, cc.GetContext(), nil
	default:
		var cc raftpb.ConfChangeV2
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return nil, nil, err
		}
		if len(cc.GetChanges()) != 1 || cc.GetTransition() != raftpb.ConfChangeTransitionAuto {
			return nil, nil, fmt.Errorf("%d changes with transition %v; shoal proposes one at a time", len(cc.GetChanges()), cc.GetTransition())
		}
		return cc.GetChanges()[0], cc.GetContext(), nil
	}
}

// applyConfChange applies a membership change. Whether a change is refused
// depends only on replicated state, so every member decides the same, and
// a refused change is cancelled in Raft too.
func (n *Node) applyConfChange(e *raftpb.Entry) error {
	change, cctx, err := confChangeOf(e)
	if err != nil {
		return fmt.Errorf("raft: configuration change %d cannot be decoded: %w", e.GetIndex(), err)
	}
	var ctx api.RaftEntry
	if err := proto.Unmarshal(cctx, &ctx); err != nil {
		return fmt.Errorf("raft: configuration change %d has an undecodable context: %w", e.GetIndex(), err)
	}
	var member api.RaftMember
	if err := proto.Unmarshal(ctx.GetPayload(), &member); err != nil {
		return fmt.Errorf("raft: configuration change %d has an undecodable member: %w", e.GetIndex(), err)
	}
	id := change.GetNodeId()
	refused := n.changeCluster(e.GetIndex(), change.GetType(), id, &member)
	if refused != nil {
		refused = fmt.Errorf("%w: %w", ErrConfChangeRefused, refused)
		n.log.Warn("membership change refused", "index", e.GetIndex(), "change", change.GetType().String(),
			"peer", fmt.Sprintf("%x", id), "err", refused)
		// Raft skips a change on Raft ID 0; ApplyConfChange must still
		// be called.
		change = &raftpb.ConfChangeSingle{Type: change.Type, NodeId: proto.Uint64(0)}
	} else {
		m, _ := n.cluster.Get(id)
		n.log.Info("membership changed", "index", e.GetIndex(), "change", change.GetType().String(),
			"peer", fmt.Sprintf("%x", id), "peer_node_id", m.NodeID, "addr", m.Addr, "suffrage", m.Suffrage())
	}
	n.loop.confState = n.raftNode.ApplyConfChange(&raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{change}})
	if ctx.GetProposer() == n.id {
		n.pendingConfChange.CompareAndSwap(ctx.GetProposalId(), 0)
		n.proposals.deliver(ctx.GetProposalId(), proposalResult{err: refused})
	}
	return nil
}

// changeCluster applies one change to the membership and the transport,
// or returns why it is refused.
func (n *Node) changeCluster(index uint64, typ raftpb.ConfChangeType, id uint64, member *api.RaftMember) error {
	current, isMember := n.cluster.Get(id)
	switch typ {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		learner := typ == raftpb.ConfChangeAddLearnerNode
		if isMember {
			if current.Learner && learner && current.AutoPromote && !member.GetAutoPromote() {
				return n.cluster.SetSuffrage(id, true, false) // to stay a learner
			}
			if current.Learner == learner {
				return fmt.Errorf("%x is a %s already", id, current.Suffrage())
			}
			if learner && len(n.cluster.Voters()) == 1 {
				return fmt.Errorf("%x is the last voter", id)
			}
			return n.cluster.SetSuffrage(id, learner, member.GetAutoPromote())
		}
		m := membership.Member{RaftID: id, NodeID: member.GetNodeId(), Addr: member.GetAddr(),
			Learner: learner, AutoPromote: learner && member.GetAutoPromote()}
		if err := n.cluster.Add(m); err != nil {
			return err
		}
		if id == n.id {
			return nil
		}
		n.setPeer(id, m.Addr)
		if first, _ := n.memStore.FirstIndex(); first > 1 {
			// The new member needs a snapshot, the log before it being
			// compacted, and Raft's member refuses one that does not
			// list it: take one that does, now.
			n.loop.snapshotAt = max(n.loop.snapshotAt, index)
		}
		return nil
	case raftpb.ConfChangeUpdateNode:
		if err := n.cluster.UpdateAddr(id, member.GetAddr()); err != nil {
			return err
		}
		if id != n.id {
			if err := n.transport.UpdatePeer(id, member.GetAddr()); err != nil {
				n.log.Warn("updating peer", "peer", fmt.Sprintf("%x", id), "err", err)
			}
		}
		return nil
	case raftpb.ConfChangeRemoveNode:
		if isMember && !current.Learner && len(n.cluster.Voters()) == 1 {
			return fmt.Errorf("%x is the last voter", id)
		}
		n.cluster.Remove(id)
		if id == n.id {
			n.loop.removed = true
		} else {
			n.transport.RemovePeer(id)
		}
		return nil
	}
	return fmt.Errorf("change type %v is not used by shoal", typ)
}

// failDroppedConfChange is called for an empty entry that is not a new
// leader's first: Raft put it in place of a configuration change it
// refused to propose. Its proposer, if it is this node, learns that
// nothing changed.
func (n *Node) failDroppedConfChange() {
	if id := n.pendingConfChange.Swap(0); id != 0 {
		n.proposals.deliver(id, proposalResult{err: ErrProposalDropped})
	}
}
