package raft

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
)

// ProposeValue proposes payload as one entry and returns after the entry is
// committed and applied on this node, with what StateMachine.Apply returned
// for it. It works on the leader, and on a follower that knows a leader when
// Config.ForwardProposals is set; many calls may be in flight at once, and
// none waits for another.
//
// Errors: a *NotLeaderError (wrapping ErrNotLeader) on a follower without
// ForwardProposals, or without a leader;
// ErrProposalTooLarge when payload exceeds Config.MaxProposalSize (nothing
// is proposed); ErrProposalDropped when Raft refused it (nothing
// committed); ErrLostLeadership when leadership was lost while waiting (the
// entry may still commit); ErrStopped; ctx's error when ctx ended first (the
// entry may still commit). An error from Apply is returned as is.
func (n *Node) ProposeValue(ctx context.Context, payload []byte) (any, error) {
	if err := n.checkRunning(); err != nil {
		return nil, err
	}
	if len(payload) > n.cfg.MaxProposalSize {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrProposalTooLarge, len(payload), n.cfg.MaxProposalSize)
	}
	if !n.canPropose() {
		return nil, n.notLeader()
	}
	id := n.proposalSeq.Add(1)
	data, err := proto.Marshal(&api.RaftEntry{Proposer: n.id, ProposalId: id, Payload: payload})
	if err != nil {
		return nil, fmt.Errorf("raft: encoding entry: %w", err)
	}
	done := n.proposals.register(id)
	if err := n.raftNode.Propose(ctx, data); err != nil {
		n.proposals.forget(id)
		return nil, n.proposeError(err)
	}
	return n.waitProposal(ctx, id, done)
}

func (n *Node) waitProposal(ctx context.Context, id uint64, done <-chan proposalResult) (any, error) {
	select {
	case res := <-done:
		return res.result, res.err
	case <-ctx.Done():
		n.proposals.forget(id)
		return nil, fmt.Errorf("raft: gave up waiting; the entry may still be committed: %w", ctx.Err())
	case <-n.stopped:
		n.proposals.forget(id)
		return nil, ErrStopped
	}
}

// CanPropose reports whether ProposeValue may propose here now: this node
// leads, or it follows a leader it knows and reaches, and
// Config.ForwardProposals is set. A caller that gets false forwards its
// call instead, after waiting for a leader; a follower whose leader just
// died (its connection broke) so does not hand proposals to a dead peer.
func (n *Node) CanPropose() bool {
	if n.checkRunning() != nil {
		return false
	}
	leader, _, state := n.leadership.snapshot()
	return state == raft.StateLeader || (n.canPropose() && n.transport.Active(leader))
}

// canPropose is whether Raft takes a proposal here: on the leader, or on a
// follower that knows a leader and forwards proposals.
func (n *Node) canPropose() bool {
	leader, _, state := n.leadership.snapshot()
	return state == raft.StateLeader || (n.cfg.ForwardProposals && leader != 0 && state == raft.StateFollower)
}

func (n *Node) proposeError(err error) error {
	switch {
	case errors.Is(err, raft.ErrProposalDropped):
		if !n.canPropose() {
			return n.notLeader()
		}
		return ErrProposalDropped
	case errors.Is(err, raft.ErrStopped):
		return ErrStopped
	}
	return err
}
