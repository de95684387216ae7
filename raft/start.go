package raft

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/internal/crashpoint"
	"github.com/shoal-project/shoal/raft/membership"
	"github.com/shoal-project/shoal/raft/storage"
	"github.com/shoal-project/shoal/raft/transport"
)

// JoinAndStart brings the node up in one of three ways:
//
//   - restart: StateDir holds a WAL; the node reloads the newest snapshot
//     and the entries after it (with ForceNewCluster, it then makes itself
//     the only member);
//   - bootstrap: no WAL and no Join; the node founds a one-member
//     cluster with a random Raft ID and campaigns at once; with an
//     InitialState, its log starts with a snapshot of that state;
//   - join: no WAL and a Join; the node asks the cluster to add it as a
//     learner (RaftMembership.Join), receives its Raft ID and the members,
//     then starts empty and catches up from the leader.
//
// The caller must serve the node's Raft service (NewRaftServer) before a
// join, so the leader can reach it, and must call Run afterwards.
func (n *Node) JoinAndStart(ctx context.Context) error {
	if n.started.Load() {
		return fmt.Errorf("raft: JoinAndStart called twice")
	}
	n.memStore = raft.NewMemoryStorage()
	scfg := storage.Config{
		Dir: n.cfg.StateDir, Logger: n.log, KeepOldSnapshots: n.cfg.KeepOldSnapshots,
		WAL: n.cfg.WAL, Cipher: n.cfg.Cipher,
	}
	var err error
	switch {
	case storage.Exists(n.cfg.StateDir):
		err = n.restart(scfg)
	case n.cfg.ForceNewCluster:
		err = fmt.Errorf("raft: --force-new-cluster needs existing state, and %s holds no WAL", n.cfg.StateDir)
	case n.cfg.Join == nil && n.cfg.Learner:
		err = fmt.Errorf("raft: a learner joins an existing cluster: give the address of one of its managers (--join)")
	case n.cfg.Join == nil && n.cfg.InitialState != nil:
		err = n.bootstrapFrom(scfg, n.cfg.InitialState)
	case n.cfg.Join == nil:
		err = n.bootstrap(scfg)
	default:
		err = n.join(ctx, scfg)
	}
	if err != nil {
		if n.disk != nil {
			_ = n.disk.Close()
		}
		if n.transport != nil {
			n.transport.Stop()
		}
		return err
	}
	n.log = n.log.With("raft_id", fmt.Sprintf("%x", n.id))
	n.started.Store(true)
	return nil
}

func (n *Node) newTransport() error {
	t, err := transport.New(transport.Config{
		ID:          n.id,
		Raft:        (*transportEvents)(n),
		Snapshots:   n,
		DialOptions: n.cfg.DialOptions,
		Logger:      n.log,
	})
	if err != nil {
		return err
	}
	n.transport = t
	return nil
}

// createState creates the WAL, which names this node and the peers it
// joined through, and the transport, once n.id is known.
func (n *Node) createState(scfg storage.Config, peers []*api.RaftMember) error {
	meta, err := proto.Marshal(&api.WALMetadata{RaftId: n.id, NodeId: n.cfg.NodeID, Peers: peers})
	if err != nil {
		return err
	}
	if n.disk, err = storage.Create(scfg, meta); err != nil {
		return err
	}
	return n.newTransport()
}

func (n *Node) bootstrap(scfg storage.Config) error {
	n.id = n.newRaftID()
	if err := n.createState(scfg, nil); err != nil {
		return err
	}
	return n.found()
}

// found starts the Raft node of a new one-member cluster, this node, on a
// WAL that holds nothing yet.
func (n *Node) found() error {
	self, err := n.memberContext(&api.RaftMember{RaftId: n.id, NodeId: n.cfg.NodeID, Addr: n.cfg.AdvertiseAddr})
	if err != nil {
		return err
	}
	n.raftNode = raft.StartNode(n.raftConfig(0), []raft.Peer{{ID: n.id, Context: self}})
	// Raft refuses to campaign while the configuration change that makes
	// this node a voter is unapplied, so Run campaigns once it is applied.
	n.loop.campaignAt = 1
	n.log.Info("bootstrapped a new cluster", "raft_id", fmt.Sprintf("%x", n.id), "addr", n.cfg.AdvertiseAddr)
	return nil
}

// bootstrapFrom founds a one-member cluster whose log starts with a
// snapshot of init: the state file, the snapshot (term 1, this node the
// only voter and member) and a HardState committing it are durable before
// the WAL that names them is (storage.CreateInitial); then the node starts
// as it restarts, from that snapshot, and campaigns at once. Entries of
// the new cluster come after init.Index.
func (n *Node) bootstrapFrom(scfg storage.Config, init *InitialState) error {
	n.id = n.newRaftID()
	meta, err := proto.Marshal(&api.WALMetadata{RaftId: n.id, NodeId: n.cfg.NodeID})
	if err != nil {
		return err
	}
	members := membership.NewCluster()
	if err := members.Add(membership.Member{RaftID: n.id, NodeID: n.cfg.NodeID, Addr: n.cfg.AdvertiseAddr}); err != nil {
		return err
	}
	const term = 1
	err = storage.CreateInitial(scfg, meta, func(disk *storage.Storage) error {
		w, err := disk.CreateState(term, init.Index)
		if err != nil {
			return err
		}
		defer w.Discard() // nothing once installed
		if err := init.Write(w); err != nil {
			return fmt.Errorf("raft: writing the initial state: %w", err)
		}
		state, err := w.Finish()
		if err != nil {
			return err
		}
		if err := w.Install(); err != nil {
			return err
		}
		data, err := encodeSnapshotData(members.State(), state)
		if err != nil {
			return err
		}
		snap := &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{
			Index: proto.Uint64(init.Index), Term: proto.Uint64(term),
			ConfState: &raftpb.ConfState{Voters: []uint64{n.id}},
		}}
		if err := disk.SaveSnapshot(snap); err != nil {
			return err
		}
		return disk.Save(&raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(0), Commit: proto.Uint64(init.Index)}, nil)
	})
	if err != nil {
		return fmt.Errorf("raft: founding the cluster from an initial state at index %d: %w", init.Index, err)
	}
	if err := n.restart(scfg); err != nil {
		return err
	}
	// Its only voter, the node wins at once.
	if err := n.raftNode.Campaign(context.Background()); err != nil {
		return fmt.Errorf("raft: campaigning: %w", err)
	}
	n.log.Info("founded a new cluster from an initial state", "raft_id", fmt.Sprintf("%x", n.id),
		"index", init.Index, "addr", n.cfg.AdvertiseAddr)
	return nil
}

// foundedNothing reports whether a WAL holds nothing but the metadata of a
// founding start: no peers (a joiner's names those it joined through), no
// snapshot, no entry, no vote.
func foundedNothing(meta *api.WALMetadata, loaded *storage.Loaded) bool {
	hs := loaded.HardState
	return len(meta.GetPeers()) == 0 && (loaded.Snapshot == nil || raft.IsEmptySnap(loaded.Snapshot)) &&
		len(loaded.Entries) == 0 && (hs == nil || raft.IsEmptyHardState(hs))
}

// memberContext is the context of a configuration change about m; a
// bootstrap change has no proposer.
func (n *Node) memberContext(m *api.RaftMember) ([]byte, error) {
	payload, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(&api.RaftEntry{Payload: payload})
}

func (n *Node) join(ctx context.Context, scfg storage.Config) error {
	resp, err := n.cfg.Join(ctx, &api.JoinRequest{NodeId: n.cfg.NodeID, Addr: n.cfg.AdvertiseAddr, Learner: n.cfg.Learner})
	if err != nil {
		return fmt.Errorf("raft: %w", err)
	}
	n.id = resp.GetRaftId()
	crashpoint.Hit(crashpoint.JoinAnswered)
	// The membership itself is rebuilt from the log the leader sends, as
	// on every member, so that each change is decided from the same state;
	// the addresses are needed to answer the leader, now and after a
	// restart that comes before the log names any member, so the WAL
	// keeps them.
	var peers []*api.RaftMember
	for _, m := range resp.GetMembers() {
		if m.GetRaftId() != n.id {
			peers = append(peers, m)
		}
	}
	if err := n.createState(scfg, peers); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.JoinWALCreated)
	if err := n.addJoinPeers(peers); err != nil {
		return err
	}
	n.raftNode = raft.RestartNode(n.raftConfig(0))
	n.log.Info("joined the cluster as a learner", "raft_id", fmt.Sprintf("%x", n.id),
		"members", len(resp.GetMembers()), "stays_learner", n.cfg.Learner)
	return nil
}

// addJoinPeers makes the members a joining node was told of its peers,
// until its log says who the members are.
func (n *Node) addJoinPeers(peers []*api.RaftMember) error {
	for _, m := range peers {
		if err := n.transport.AddPeer(m.GetRaftId(), m.GetAddr()); err != nil {
			return err
		}
	}
	return nil
}

func (n *Node) restart(scfg storage.Config) error {
	disk, loaded, err := storage.Open(scfg)
	if err != nil {
		return err
	}
	n.disk = disk
	var meta api.WALMetadata
	if err := proto.Unmarshal(loaded.Metadata, &meta); err != nil {
		return fmt.Errorf("raft: WAL metadata cannot be decoded: %w", err)
	}
	if meta.GetNodeId() != n.cfg.NodeID {
		return fmt.Errorf("raft: the WAL in %s belongs to node %q, not %q", n.cfg.StateDir, meta.GetNodeId(), n.cfg.NodeID)
	}
	n.id = meta.GetRaftId()
	if err := n.newTransport(); err != nil {
		return err
	}
	if err := n.addJoinPeers(meta.GetPeers()); err != nil {
		return err
	}
	if foundedNothing(&meta, loaded) && !n.cfg.ForceNewCluster {
		// A founding start stopped after creating its WAL, before its
		// first entry, the configuration that makes it the member, was
		// saved: restarted as it is, the node would belong to no cluster
		// and never campaign. Nothing was acknowledged to anyone, so it
		// founds its cluster again, under the same Raft ID.
		n.log.Warn("the WAL holds no entry of the cluster this node founded: founding it again")
		return n.found()
	}

	var applied uint64
	n.loop.confState = &raftpb.ConfState{}
	if snap := loaded.Snapshot; snap != nil && !raft.IsEmptySnap(snap) {
		if err := n.memStore.ApplySnapshot(snap); err != nil {
			return fmt.Errorf("raft: loading snapshot: %w", err)
		}
		if err := n.restoreSnapshot(snap); err != nil {
			return err
		}
		applied = snap.GetMetadata().GetIndex()
	}
	hs, ents := loaded.HardState, loaded.Entries
	if n.cfg.ForceNewCluster {
		if hs, ents, err = n.forceNewCluster(loaded); err != nil {
			return err
		}
	}
	if hs != nil {
		if err := n.memStore.SetHardState(hs); err != nil {
			return fmt.Errorf("raft: loading hard state: %w", err)
		}
		n.loop.term = hs.GetTerm()
	}
	if err := n.memStore.Append(ents); err != nil {
		return fmt.Errorf("raft: loading entries: %w", err)
	}
	n.raftNode = raft.RestartNode(n.raftConfig(applied))
	n.restartCommit = hs.GetCommit()
	n.log.Info("restarted from disk", "raft_id", fmt.Sprintf("%x", n.id), "snapshot_index", applied,
		"entries", len(ents), "commit", hs.GetCommit())
	return nil
}

// forceNewCluster turns the loaded state into that of a one-member cluster:
// every entry in the WAL is kept, and entries removing every other member
// are appended after the last of them and saved, all committed, as if the
// cluster had agreed to them. The removed members can come back only by
// joining anew with empty state.
//
// The WAL's commit index does not say which entries were committed: a
// HardState that moves only the commit index is written without a sync, so
// after a crash entries that were committed and acknowledged may lie above
// it. Each entry in the WAL was durable here and may have been committed;
// one the old cluster never committed was acknowledged to no one, at most
// left with an unknown outcome. So none is dropped. (etcd's
// --force-new-cluster drops the entries above the saved commit index.)
func (n *Node) forceNewCluster(loaded *storage.Loaded) (*raftpb.HardState, []*raftpb.Entry, error) {
	hs := proto.Clone(loaded.HardState).(*raftpb.HardState)
	if hs == nil {
		hs = &raftpb.HardState{}
	}
	ents := loaded.Entries
	last := hs.GetCommit()
	if len(ents) > 0 {
		e := ents[len(ents)-1]
		last = e.GetIndex()
		if e.GetTerm() > hs.GetTerm() {
			// The HardState saved with these entries was lost with an
			// unsynced tail: the appended entries must not go back
			// to an older term.
			hs.Term, hs.Vote = proto.Uint64(e.GetTerm()), proto.Uint64(0)
		}
	} else if snap := loaded.Snapshot; snap != nil && snap.GetMetadata().GetIndex() > last {
		last = snap.GetMetadata().GetIndex()
	}
	var added []*raftpb.Entry
	appendChange := func(typ raftpb.ConfChangeType, m *api.RaftMember) error {
		cctx, err := n.memberContext(m)
		if err != nil {
			return err
		}
		data, err := proto.Marshal(&raftpb.ConfChange{Type: typ.Enum(), NodeId: proto.Uint64(m.GetRaftId()), Context: cctx})
		if err != nil {
			return err
		}
		last++
		added = append(added, &raftpb.Entry{
			Type: raftpb.EntryConfChange.Enum(), Term: proto.Uint64(hs.GetTerm()), Index: proto.Uint64(last), Data: data,
		})
		return nil
	}
	members, learners := n.membersIn(loaded.Snapshot, ents)
	if learners[n.id] {
		// The only member must vote: promote it before the others go.
		if err := appendChange(raftpb.ConfChangeAddNode, &api.RaftMember{RaftId: n.id, NodeId: n.cfg.NodeID}); err != nil {
			return nil, nil, err
		}
	}
	for _, id := range members {
		if id == n.id {
			continue
		}
		if err := appendChange(raftpb.ConfChangeRemoveNode, &api.RaftMember{RaftId: id}); err != nil {
			return nil, nil, err
		}
	}
	hs.Commit = proto.Uint64(last)
	if err := n.disk.Save(hs, added); err != nil {
		return nil, nil, fmt.Errorf("raft: saving the forced membership: %w", err)
	}
	n.log.Warn("forcing a new one-member cluster", "removed_members", len(added),
		"saved_commit", loaded.HardState.GetCommit(), "commit", last)
	return hs, append(ents, added...), nil
}

// membersIn returns the Raft IDs that are members, voters and learners,
// after the snapshot and the configuration changes in ents, and which of
// them are learners.
func (n *Node) membersIn(snap *raftpb.Snapshot, ents []*raftpb.Entry) ([]uint64, map[uint64]bool) {
	learner := map[uint64]bool{} // every member, true for a learner
	if snap != nil {
		cs := snap.GetMetadata().GetConfState()
		for _, id := range cs.GetVoters() {
			learner[id] = false
		}
		for _, id := range cs.GetLearners() {
			learner[id] = true
		}
	}
	for _, e := range ents {
		if e.GetType() != raftpb.EntryConfChange && e.GetType() != raftpb.EntryConfChangeV2 {
			continue
		}
		change, _, err := confChangeOf(e)
		if err != nil || change.GetNodeId() == 0 {
			continue
		}
		switch change.GetType() {
		case raftpb.ConfChangeAddNode:
			learner[change.GetNodeId()] = false
		case raftpb.ConfChangeAddLearnerNode:
			learner[change.GetNodeId()] = true
		case raftpb.ConfChangeRemoveNode:
			delete(learner, change.GetNodeId())
		}
	}
	ids := slices.Sorted(maps.Keys(learner))
	return ids, learner
}

// transportEvents is the Node as the transport sees it.
type transportEvents Node

// ReportUnreachable tells Raft, and, when id is the leader this node
// follows, fails the proposals waiting here: the message that carried one
// to the leader may be lost, and the leader alive, so that nothing else
// would end the wait before the caller's deadline.
func (t *transportEvents) ReportUnreachable(id uint64) {
	t.raftNode.ReportUnreachable(id)
	n := (*Node)(t)
	if leader, _, state := n.leadership.snapshot(); state != raft.StateLeader && id == leader {
		n.proposals.failAll(errLeaderUnreachable)
	}
}
func (t *transportEvents) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	t.raftNode.ReportSnapshot(id, status)
}

func (t *transportEvents) NotifyRemoved() {
	n := (*Node)(t)
	n.log.Warn("a peer refused our messages: this node was removed from the cluster")
	n.stop(ErrMemberRemoved)
}
