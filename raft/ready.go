package raft

import (
	"context"
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/internal/crashpoint"
)

// handleReady carries out one Ready in the order the Raft contract needs:
//
//  1. persist: the snapshot's state file (received with it, moved into
//     place), the snapshot file and its WAL record, then the hard state
//     and entries, fsynced; then the same into the in-memory log;
//  2. send messages: a follower only after step 1, since its replies vouch
//     for what it persisted; the leader before step 1, so that its fsync
//     overlaps the followers' (Raft thesis 10.2.1) — an entry still counts
//     as committed only once a quorum, the leader's own disk included, has
//     it;
//  3. apply the snapshot and the committed entries; if this Ready took
//     leadership away, only then fail the proposals still waiting, so that
//     an entry committed in it hands its result to its proposer;
//  4. advance.
//
// Any persistence error is returned and stops the node.
func (n *Node) handleReady(rd raft.Ready) error {
	if rd.HardState != nil && rd.HardState.GetTerm() != 0 {
		n.loop.term = rd.HardState.GetTerm()
	}
	// Leadership is recorded at once, so that the messages below are sent
	// as this node's new role requires, but waiting proposals are failed
	// only after the committed entries.
	lostLeadership := false
	if rd.SoftState != nil {
		lostLeadership = n.updateSoftState(rd.SoftState)
	}
	for _, rs := range rd.ReadStates {
		select {
		case n.readStates <- rs:
		default: // the read loop resends a request it gets no answer for
		}
	}

	leader := n.leadership.isRaftLeader()
	if leader {
		n.transport.Send(rd.Messages)
	}

	hasSnap := rd.Snapshot != nil && !raft.IsEmptySnap(rd.Snapshot)
	if hasSnap {
		crashpoint.Hit(crashpoint.SnapshotReceivedBefore)
		if err := n.installReceivedState(rd.Snapshot); err != nil {
			return err
		}
		if err := n.disk.SaveSnapshot(rd.Snapshot); err != nil {
			return fmt.Errorf("raft: saving received snapshot at index %d: %w", rd.Snapshot.GetMetadata().GetIndex(), err)
		}
		crashpoint.Hit(crashpoint.SnapshotReceivedAfter)
	}
	toSave := len(rd.Entries) > 0 || (rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState))
	if toSave {
		crashpoint.Hit(crashpoint.WALSaveBefore)
	}
	if err := n.disk.Save(rd.HardState, rd.Entries); err != nil {
		return fmt.Errorf("raft: saving entries: %w", err)
	}
	if toSave {
		crashpoint.Hit(crashpoint.WALSaveAfter)
	}
	if hasSnap {
		if err := n.memStore.ApplySnapshot(rd.Snapshot); err != nil {
			return fmt.Errorf("raft: loading received snapshot into the in-memory log: %w", err)
		}
	}
	if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
		if err := n.memStore.SetHardState(rd.HardState); err != nil {
			return fmt.Errorf("raft: setting hard state: %w", err)
		}
	}
	if err := n.memStore.Append(rd.Entries); err != nil {
		return fmt.Errorf("raft: appending to the in-memory log: %w", err)
	}

	if !leader {
		n.transport.Send(rd.Messages)
	}

	if hasSnap {
		if err := n.restoreSnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	if len(rd.CommittedEntries) > 0 {
		crashpoint.Hit(crashpoint.ApplyBefore)
	}
	if err := n.applyEntries(rd.CommittedEntries); err != nil {
		return err
	}
	if len(rd.CommittedEntries) > 0 {
		crashpoint.Hit(crashpoint.ApplyAfter)
	}
	if lostLeadership {
		n.proposals.failAll(ErrLostLeadership)
	}
	n.raftNode.Advance()
	n.advanced.set(n.applied.get())
	if at := n.loop.campaignAt; at != 0 && n.applied.get() >= at {
		n.loop.campaignAt = 0
		if err := n.raftNode.Campaign(context.Background()); err != nil {
			return fmt.Errorf("raft: campaigning: %w", err)
		}
	}
	return n.maybeSnapshot()
}

// updateSoftState records who leads, and reports whether this node just
// lost leadership. The caller then fails every proposal still waiting once
// the Ready's committed entries are applied: the entry of each may or may
// not be committed by the next leader.
func (n *Node) updateSoftState(ss *raft.SoftState) (lost bool) {
	wasLeader := n.leadership.isRaftLeader()
	n.leadership.update(ss.Lead, n.loop.term, ss.RaftState)
	isLeader := ss.RaftState == raft.StateLeader
	switch {
	case isLeader && !wasLeader:
		n.loop.leaderTerm = n.loop.term
		n.log.Info("became leader", "term", n.loop.term)
	case !isLeader && wasLeader:
		n.loop.leaderTerm = 0
		n.log.Info("lost leadership", "term", n.loop.term, "leader", fmt.Sprintf("%x", ss.Lead))
		return true
	}
	return false
}

// applyEntries applies committed entries in order and records the applied
// index.
func (n *Node) applyEntries(ents []*raftpb.Entry) error {
	applied := n.applied.get()
	for _, e := range ents {
		if e.GetIndex() <= applied {
			continue // covered by a snapshot applied meanwhile
		}
		var err error
		switch e.GetType() {
		case raftpb.EntryNormal:
			err = n.applyNormal(e)
		case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
			err = n.applyConfChange(e)
		default:
			err = fmt.Errorf("raft: entry %d has type %v, which shoal never proposes", e.GetIndex(), e.GetType())
		}
		if err != nil {
			return err
		}
		applied = e.GetIndex()
		n.loop.appliedTerm = e.GetTerm()
		if n.loop.leaderTerm != 0 && e.GetTerm() == n.loop.leaderTerm {
			// An entry of our own term is applied, so is every entry
			// of earlier terms: this leader's state is current.
			n.loop.leaderTerm = 0
			n.leadership.setReady(e.GetTerm())
		}
	}
	if len(ents) > 0 {
		n.applied.set(applied)
	}
	return nil
}

func (n *Node) applyNormal(e *raftpb.Entry) error {
	if len(e.GetData()) == 0 {
		// A new leader appends an empty entry first in its term; Raft
		// puts any other empty entry in place of a configuration change
		// it would not propose.
		if e.GetTerm() == n.loop.appliedTerm {
			n.failDroppedConfChange()
		}
		return nil
	}
	var re api.RaftEntry
	if err := proto.Unmarshal(e.GetData(), &re); err != nil {
		return fmt.Errorf("raft: entry %d cannot be decoded: %w", e.GetIndex(), err)
	}
	result, err := n.sm.Apply(e.GetIndex(), re.GetPayload())
	if re.GetProposer() == n.id {
		n.proposals.deliver(re.GetProposalId(), proposalResult{result: result, err: err})
	}
	return nil
}
