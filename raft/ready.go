package raft

import (
	"context"
	"errors"
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
//     leadership away, or changed the leader a follower forwards to, only
//     then fail the proposals still waiting, so that an entry committed in
//     it hands its result to its proposer;
//  4. advance.
//
// Committed entries that all carry data are queued to the apply goroutine,
// so that this goroutine persists and sends the next Ready while they are
// applied, as etcd's server does; Raft is told they are applied when they
// are queued, which only the order of application needs. Every other Ready
// (a snapshot, a configuration change or an empty entry, a change of
// leadership, a campaign to start) waits until the queue is applied, then
// applies on this goroutine. So does a Ready of a few entries when nothing
// is queued (inlineRun).
//
// Any persistence error is returned and stops the node.
func (n *Node) handleReady(rd raft.Ready) error {
	hasSnap := rd.Snapshot != nil && !raft.IsEmptySnap(rd.Snapshot)
	inline := hasSnap || rd.SoftState != nil || n.loop.campaignAt != 0 || !allData(rd.CommittedEntries) ||
		(len(rd.CommittedEntries) <= inlineRun && n.applyIdle())
	if inline {
		if err := n.drainApply(); err != nil {
			return err
		}
	}
	if rd.HardState != nil && rd.HardState.GetTerm() != 0 {
		n.loop.term = rd.HardState.GetTerm()
	}
	// Leadership is recorded at once, so that the messages below are sent
	// as this node's new role requires, but waiting proposals are failed
	// only after the committed entries.
	var failWaiting error
	if rd.SoftState != nil {
		failWaiting = n.updateSoftState(rd.SoftState)
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
	ents := n.toApply(rd.CommittedEntries)
	if inline {
		if err := n.applyCommitted(ents); err != nil {
			return err
		}
	} else if len(ents) > 0 {
		select {
		case n.applyc <- ents:
		case <-n.stopped:
			return errStopping
		}
	}
	if failWaiting != nil {
		n.proposals.failAll(failWaiting)
	}
	n.raftNode.Advance()
	n.advanced.set(n.loop.queued)
	if at := n.loop.campaignAt; at != 0 && n.applied.get() >= at {
		n.loop.campaignAt = 0
		if err := n.raftNode.Campaign(context.Background()); err != nil {
			return fmt.Errorf("raft: campaigning: %w", err)
		}
	}
	return n.maybeSnapshot()
}

// inlineRun is the most committed entries a Ready may hold to be applied
// on the Ready goroutine when the apply goroutine is idle: under a light
// load, handing a few entries over would only add a goroutine switch to
// every write's latency, and there is no next Ready to overlap with.
const inlineRun = 4

// applyQueue is how many runs of committed entries may wait for the apply
// goroutine before a Ready waits for it: Raft hands at most MaxSizePerMsg
// of committed entries per Ready.
const applyQueue = 64

// errStopping ends the Run goroutine's work when the node stops while it
// waits for the apply goroutine; Run returns the stop's reason instead.
var errStopping = errors.New("raft: node stopping")

// allData reports whether every entry is a normal entry with data, which
// the apply goroutine may apply on its own.
func allData(ents []*raftpb.Entry) bool {
	for _, e := range ents {
		if e.GetType() != raftpb.EntryNormal || len(e.GetData()) == 0 {
			return false
		}
	}
	return true
}

// toApply returns the committed entries not handed to apply before (a
// snapshot may have covered some), and records them as handed.
func (n *Node) toApply(ents []*raftpb.Entry) []*raftpb.Entry {
	for len(ents) > 0 && ents[0].GetIndex() <= n.loop.queued {
		ents = ents[1:]
	}
	for _, e := range ents {
		n.loop.queuedBytes += uint64(len(e.GetData()))
	}
	if len(ents) > 0 {
		n.loop.queued = ents[len(ents)-1].GetIndex()
	}
	return ents
}

// applyLoop is the apply goroutine: it applies the runs of committed
// entries that handleReady queues, in order, until the node stops. An
// error stops the node with it.
func (n *Node) applyLoop() {
	for {
		select {
		case ents := <-n.applyc:
			if err := n.applyCommitted(ents); err != nil {
				n.stop(err)
				return
			}
		case <-n.stopped:
			return
		}
	}
}

// applyIdle reports whether everything handed to apply is applied.
func (n *Node) applyIdle() bool { return n.applied.get() >= n.loop.queued }

// drainApply waits until the apply goroutine has applied everything queued
// to it, so that the Run goroutine may apply, snapshot or restore.
func (n *Node) drainApply() error {
	if n.applyIdle() {
		return nil
	}
	select {
	case <-n.applied.wait(n.loop.queued):
		return nil
	case <-n.stopped:
		return errStopping
	}
}

// applyCommitted applies committed entries, between the crash points that
// surround applying.
func (n *Node) applyCommitted(ents []*raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	crashpoint.Hit(crashpoint.ApplyBefore)
	if err := n.applyEntries(ents); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.ApplyAfter)
	return nil
}

// updateSoftState records who leads, and returns the error to fail every
// proposal still waiting with, once the Ready's committed entries are
// applied, or nil: ErrLostLeadership when this node just lost leadership,
// errLeaderChanged when it follows and the leader it forwarded proposals
// to is no longer the leader. Either way the entry of each may or may not
// be committed by the next leader, and a proposal that the old leader
// never received would otherwise wait out its caller's deadline. The
// callers retry with the request IDs the store recognises, so a write
// that did commit is not applied twice.
func (n *Node) updateSoftState(ss *raft.SoftState) error {
	oldLeader, _, oldState := n.leadership.snapshot()
	wasLeader := oldState == raft.StateLeader
	n.leadership.update(ss.Lead, n.loop.term, ss.RaftState)
	isLeader := ss.RaftState == raft.StateLeader
	switch {
	case isLeader && !wasLeader:
		n.apply.leaderTerm = n.loop.term
		n.log.Info("became leader", "term", n.loop.term)
	case !isLeader && wasLeader:
		n.apply.leaderTerm = 0
		n.log.Info("lost leadership", "term", n.loop.term, "leader", fmt.Sprintf("%x", ss.Lead))
		return ErrLostLeadership
	}
	if !wasLeader && oldLeader != 0 && ss.Lead != oldLeader {
		return errLeaderChanged
	}
	return nil
}

// applyEntries applies committed entries, which follow the applied index
// without a gap (toApply dropped those a snapshot covered), in order,
// records the applied index, and only then hands the results of normal entries to their
// proposers, so that a proposer that returns finds its entry applied in
// every read and in Status. Recording the index is also what tells
// drainApply that applyState is the Run goroutine's again: nothing of it
// is touched after.
func (n *Node) applyEntries(ents []*raftpb.Entry) error {
	var applied uint64
	run := n.apply.run[:0]
	var results []delivery
	readyTerm := uint64(0)
	for _, e := range ents {
		var err error
		switch {
		case e.GetType() == raftpb.EntryNormal && len(e.GetData()) > 0:
			run, err = n.addToRun(run, e, &results)
		case e.GetType() == raftpb.EntryNormal:
			run = n.applyRun(run, &results)
			n.applyEmpty(e)
		case e.GetType() == raftpb.EntryConfChange, e.GetType() == raftpb.EntryConfChangeV2:
			run = n.applyRun(run, &results)
			err = n.applyConfChange(e)
		default:
			err = fmt.Errorf("raft: entry %d has type %v, which shoal never proposes", e.GetIndex(), e.GetType())
		}
		if err != nil {
			return err
		}
		applied = e.GetIndex()
		n.apply.appliedTerm = e.GetTerm()
		if n.apply.leaderTerm != 0 && e.GetTerm() == n.apply.leaderTerm {
			// An entry of our own term is applied, so is every entry
			// of earlier terms: this leader's state is current, once
			// the run that holds the entry is applied too.
			n.apply.leaderTerm = 0
			readyTerm = e.GetTerm()
		}
	}
	n.apply.run = n.applyRun(run, &results)
	if readyTerm != 0 {
		n.leadership.setReady(readyTerm)
	}
	if len(ents) > 0 {
		n.applied.set(applied)
	}
	for _, d := range results {
		n.proposals.deliver(d.proposalID, d.result)
	}
	return nil
}

// delivery is the result of an applied entry this node proposed.
type delivery struct {
	proposalID uint64
	result     proposalResult
}

// runEntry is a decoded normal entry waiting in a run.
type runEntry struct {
	index      uint64
	proposer   uint64
	proposalID uint64
	payload    []byte
}

// addToRun decodes a normal entry with data and adds it to the run of
// such entries, which applyRun applies together. The entries of a run have
// consecutive indexes.
func (n *Node) addToRun(run []runEntry, e *raftpb.Entry, results *[]delivery) ([]runEntry, error) {
	var re api.RaftEntry
	if err := proto.Unmarshal(e.GetData(), &re); err != nil {
		return run, fmt.Errorf("raft: entry %d cannot be decoded: %w", e.GetIndex(), err)
	}
	if len(run) > 0 && run[len(run)-1].index+1 != e.GetIndex() {
		run = n.applyRun(run, results) // not reached: a run has no gap
	}
	return append(run, runEntry{
		index: e.GetIndex(), proposer: re.GetProposer(), proposalID: re.GetProposalId(), payload: re.GetPayload(),
	}), nil
}

// applyRun applies a run of normal entries and adds the results of those
// this node proposed to results, which applyEntries hands out. A
// BatchApplier applies the run at once; another state machine entry by
// entry. It returns the run emptied.
func (n *Node) applyRun(run []runEntry, results *[]delivery) []runEntry {
	if len(run) == 0 {
		return run
	}
	var values []any
	var errs []error
	if ba, ok := n.sm.(BatchApplier); ok {
		payloads := make([][]byte, len(run))
		for i, e := range run {
			payloads[i] = e.payload
		}
		values, errs = ba.ApplyBatch(run[0].index, payloads)
	} else {
		values, errs = make([]any, len(run)), make([]error, len(run))
		for i, e := range run {
			values[i], errs[i] = n.sm.Apply(e.index, e.payload)
		}
	}
	for i, e := range run {
		if e.proposer == n.id {
			*results = append(*results, delivery{e.proposalID, proposalResult{result: values[i], err: errs[i]}})
		}
	}
	clear(run)
	return run[:0]
}

// applyEmpty applies an entry without data. A new leader appends one first
// in its term; Raft puts any other in place of a configuration change it
// would not propose.
func (n *Node) applyEmpty(e *raftpb.Entry) {
	if e.GetTerm() == n.apply.appliedTerm {
		n.failDroppedConfChange()
	}
}
