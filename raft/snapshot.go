package raft

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/internal/crashpoint"
	"github.com/shoal-project/shoal/raft/storage"
)

// A snapshot's data is small: the membership, then a descriptor of the
// state file that holds the state machine's bytes (raft/storage keeps it
// beside the snapshot file):
//
//	uvarint(len(membership)) | membership (api.RaftMembershipState) |
//	"SHOALSF1" | uint64 state size | SHA-256 of the state (32 bytes)
//
// so Raft's in-memory log, the WAL's snapshot record and the MsgSnap hold
// a few hundred bytes whatever the size of the store, and the state
// streams from and to its file.

// maxMembershipHeader bounds the membership header of a snapshot, so a
// corrupt length cannot make the decoder allocate without limit.
const maxMembershipHeader = 64 << 20

const (
	stateDescriptorMagic = "SHOALSF1"
	stateDescriptorBytes = len(stateDescriptorMagic) + 8 + sha256.Size
)

var errBadSnapshot = errors.New("raft: malformed snapshot data")

// encodeSnapshotData returns the data of a snapshot whose membership is st
// and whose state file holds state.
func encodeSnapshotData(st *api.RaftMembershipState, state storage.StateInfo) ([]byte, error) {
	b, err := proto.Marshal(st)
	if err != nil {
		return nil, err
	}
	data := make([]byte, 0, binary.MaxVarintLen64+len(b)+stateDescriptorBytes)
	data = binary.AppendUvarint(data, uint64(len(b)))
	data = append(data, b...)
	data = append(data, stateDescriptorMagic...)
	data = binary.BigEndian.AppendUint64(data, state.Size)
	return append(data, state.SHA256[:]...), nil
}

// decodeSnapshotData splits snapshot data into the membership and the
// descriptor of the state file.
func decodeSnapshotData(data []byte) (*api.RaftMembershipState, storage.StateInfo, error) {
	var state storage.StateInfo
	size, n := binary.Uvarint(data)
	if n <= 0 {
		return nil, state, fmt.Errorf("%w: bad header length", errBadSnapshot)
	}
	if size > maxMembershipHeader || size > uint64(len(data)-n) {
		return nil, state, fmt.Errorf("%w: header of %d bytes does not fit", errBadSnapshot, size)
	}
	st := &api.RaftMembershipState{}
	if err := proto.Unmarshal(data[n:n+int(size)], st); err != nil {
		return nil, state, fmt.Errorf("%w: %w", errBadSnapshot, err)
	}
	desc := data[n+int(size):]
	if len(desc) != stateDescriptorBytes || string(desc[:len(stateDescriptorMagic)]) != stateDescriptorMagic {
		return nil, state, fmt.Errorf("%w: %d bytes after the membership, not a state file descriptor", errBadSnapshot, len(desc))
	}
	desc = desc[len(stateDescriptorMagic):]
	state.Size = binary.BigEndian.Uint64(desc)
	copy(state.SHA256[:], desc[8:])
	return st, state, nil
}

// snapshotResult is a snapshot taken in the background.
type snapshotResult struct {
	index uint64
	saved bool   // false when a newer snapshot was saved meanwhile
	bytes uint64 // of the state
	took  time.Duration
	err   error
}

// maybeSnapshot starts a snapshot once SnapshotInterval entries, or
// SnapshotLogBytes of them, were applied since the last one, and enough
// bytes for SnapshotCostRatio. The state machine captures a view on this
// goroutine; everything else runs on another, so that ticks, heartbeats
// and applying go on meanwhile: writing the bytes, and saving them
// (sealing, the file and its fsyncs, the WAL record), which takes seconds for a large store,
// longer than an election timeout.
func (n *Node) maybeSnapshot() error {
	queued := n.loop.queued
	asked := n.loop.snapshotAt != 0 && queued >= n.loop.snapshotAt
	due := (queued-n.loop.snapshotIndex >= n.cfg.SnapshotInterval || n.loop.queuedBytes >= n.cfg.SnapshotLogBytes) &&
		n.loop.queuedBytes >= n.loop.snapshotBytes/n.cfg.SnapshotCostRatio
	if n.loop.snapshotting || (!due && !asked) {
		return nil
	}
	if err := n.drainApply(); err != nil {
		return err
	}
	applied := n.applied.get()
	n.loop.snapshotAt = 0
	n.loop.queuedBytes = 0
	write, err := n.sm.Snapshot()
	if err != nil {
		return fmt.Errorf("raft: state machine snapshot at index %d: %w", applied, err)
	}
	members := n.cluster.State()
	cs := proto.Clone(n.loop.confState).(*raftpb.ConfState)
	n.loop.snapshotting = true
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		start := n.clock.Now()
		res := n.takeSnapshot(applied, cs, members, write)
		res.took = n.clock.Since(start)
		select {
		case n.snapshotDone <- res:
		case <-n.stopped:
		}
	}()
	return nil
}

// takeSnapshot writes the snapshot at index, makes it durable, and compacts
// the in-memory log, keeping LogEntriesForSlowFollowers entries before it.
// It runs off the Run goroutine: MemoryStorage and the Storage are safe for
// that, and the Storage refuses a snapshot older than one it saved (one
// received from the leader meanwhile) with ErrOlderSnapshot, and this one
// is then dropped.
//
// Ordering: the state file is durable in snap/ before the snapshot enters
// the in-memory log (from where Raft may send it to a follower, whose
// transport reads the file) and before the snapshot file and WAL record
// that name it.
func (n *Node) takeSnapshot(index uint64, cs *raftpb.ConfState, members *api.RaftMembershipState,
	write func(io.Writer) error) snapshotResult {
	res := snapshotResult{index: index}
	term, err := n.memStore.Term(index)
	if errors.Is(err, raft.ErrCompacted) {
		return res // a newer snapshot arrived from the leader meanwhile
	}
	if err != nil {
		res.err = fmt.Errorf("raft: term of the snapshot at index %d: %w", index, err)
		return res
	}
	crashpoint.Hit(crashpoint.SnapshotSaveBefore)
	state, err := n.writeState(term, index, write)
	if err != nil {
		res.err = fmt.Errorf("raft: writing snapshot at index %d: %w", index, err)
		return res
	}
	res.bytes = state.Size
	data, err := encodeSnapshotData(members, state)
	if err != nil {
		res.err = fmt.Errorf("raft: writing snapshot at index %d: %w", index, err)
		return res
	}
	snap, err := n.memStore.CreateSnapshot(index, cs, data)
	if errors.Is(err, raft.ErrSnapOutOfDate) {
		if snap, err = n.snapshotAgain(index, cs, data); snap == nil && err == nil {
			return res // a newer snapshot arrived from the leader meanwhile
		}
	}
	if err != nil {
		res.err = fmt.Errorf("raft: creating snapshot at index %d: %w", index, err)
		return res
	}
	err = n.disk.SaveSnapshot(snap)
	if errors.Is(err, storage.ErrOlderSnapshot) {
		// The Run goroutine saved one received from the leader
		// meanwhile; it puts it in the in-memory log after the disk.
		return res
	}
	if err != nil {
		res.err = fmt.Errorf("raft: saving snapshot at index %d: %w", index, err)
		return res
	}
	crashpoint.Hit(crashpoint.SnapshotSaveAfter)
	res.saved = true
	if compact := n.compactIndex(index); compact != 0 {
		if err := n.memStore.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
			res.err = fmt.Errorf("raft: compacting the in-memory log to %d: %w", compact, err)
		}
	}
	return res
}

// compactIndex is the index to compact the in-memory log to after a
// snapshot at index, or 0 for none. It keeps the LogEntriesForSlowFollowers
// entries up to index, or fewer when their data would add up to more than
// SnapshotLogBytes: 500 entries of 1 MiB objects would hold 500 MiB on
// every manager.
func (n *Node) compactIndex(index uint64) uint64 {
	first, err := n.memStore.FirstIndex()
	if err != nil || first > index {
		return 0
	}
	lo := first
	if keep := n.cfg.LogEntriesForSlowFollowers; index-first+1 > keep {
		lo = index + 1 - keep
	}
	if lo > index {
		return index // none kept
	}
	ents, err := n.memStore.Entries(lo, index+1, math.MaxUint64)
	if err != nil {
		return 0 // compacted meanwhile, by a snapshot from the leader
	}
	kept, bytes := len(ents), uint64(0)
	for kept > 0 && bytes+uint64(len(ents[kept-1].GetData())) <= n.cfg.SnapshotLogBytes {
		kept--
		bytes += uint64(len(ents[kept].GetData()))
	}
	return lo - 1 + uint64(kept)
}

// writeState streams the state machine's bytes into the state file of the
// snapshot at term and index, and installs it in snap/.
func (n *Node) writeState(term, index uint64, write func(io.Writer) error) (storage.StateInfo, error) {
	w, err := n.disk.CreateState(term, index)
	if err != nil {
		return storage.StateInfo{}, err
	}
	defer w.Discard() // nothing once installed
	if err := write(w); err != nil {
		return storage.StateInfo{}, err
	}
	state, err := w.Finish()
	if err != nil {
		return storage.StateInfo{}, err
	}
	return state, w.Install()
}

// RequestSnapshot asks for a snapshot at the current applied index, soon,
// instead of after SnapshotInterval entries, and also when the last
// snapshot is at that index already: after a data key rotation, a snapshot
// lets the old key go. It does not wait.
func (n *Node) RequestSnapshot() {
	select {
	case n.snapshotAsk <- struct{}{}:
	default: // one is asked for already
	}
}

// finishSnapshot records a snapshot taken in the background.
func (n *Node) finishSnapshot(res snapshotResult) error {
	n.loop.snapshotting = false
	if res.err != nil {
		return res.err
	}
	if res.saved {
		n.loop.snapshotIndex = max(n.loop.snapshotIndex, res.index)
		n.loop.snapshotBytes = res.bytes
		n.log.Info("snapshot saved", "index", res.index, "bytes", res.bytes, "took", res.took)
	}
	return n.maybeSnapshot() // one may have been asked for meanwhile
}

// snapshotAgain returns the snapshot to save when the in-memory log's
// snapshot is already at index: nothing was applied since, but one was
// asked for (RequestSnapshot), so that data sealed with an older key goes.
// The file at that index is written again, from the same state. It returns
// nil when the in-memory snapshot is newer.
func (n *Node) snapshotAgain(index uint64, cs *raftpb.ConfState, data []byte) (*raftpb.Snapshot, error) {
	cur, err := n.memStore.Snapshot()
	if err != nil || cur.GetMetadata().GetIndex() != index {
		return nil, err
	}
	return &raftpb.Snapshot{
		Data: data,
		Metadata: &raftpb.SnapshotMetadata{
			Index: proto.Uint64(index), Term: proto.Uint64(cur.GetMetadata().GetTerm()), ConfState: cs,
		},
	}, nil
}

// restoreSnapshot replaces the membership and the state machine with a
// snapshot: one received from the leader, or the newest one at restart.
// The state streams from its file into the state machine.
func (n *Node) restoreSnapshot(snap *raftpb.Snapshot) error {
	meta := snap.GetMetadata()
	members, state, err := decodeSnapshotData(snap.GetData())
	if err != nil {
		return fmt.Errorf("raft: snapshot at index %d: %w", meta.GetIndex(), err)
	}
	if err := n.restoreState(meta.GetTerm(), meta.GetIndex(), state); err != nil {
		return fmt.Errorf("raft: restoring the state machine from snapshot %d: %w; "+
			"the state directory is damaged: restore it from a backup, or remove this member from the cluster "+
			"and join it again with an empty state directory", meta.GetIndex(), err)
	}
	n.cluster.Restore(members)
	n.syncPeers()
	n.loop.confState = proto.Clone(meta.GetConfState()).(*raftpb.ConfState)
	n.loop.snapshotIndex = meta.GetIndex()
	n.loop.snapshotBytes, n.loop.queuedBytes = state.Size, 0
	n.loop.queued = meta.GetIndex()
	n.apply.appliedTerm = meta.GetTerm()
	if n.cluster.IsRemoved(n.id) {
		n.loop.removed = true
	}
	n.applied.set(meta.GetIndex())
	n.log.Info("restored snapshot", "index", meta.GetIndex(), "term", meta.GetTerm(), "bytes", state.Size)
	return nil
}

// restoreState streams the state file into the state machine. The file's
// length and checksum are checked when its end is read: the state machine
// reads to the end before it swaps the new state in, and whatever it left
// unread is read here, so a bad file is never restored without an error.
func (n *Node) restoreState(term, index uint64, state storage.StateInfo) error {
	r, err := n.disk.OpenState(term, index, state)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := n.sm.Restore(index, r); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, r)
	return err
}

// setPeer makes the transport reach peer id at addr.
func (n *Node) setPeer(id uint64, addr string) {
	if err := n.transport.AddPeer(id, addr); err != nil {
		if err := n.transport.UpdatePeer(id, addr); err != nil {
			n.log.Warn("updating peer", "peer", fmt.Sprintf("%x", id), "err", err)
		}
	}
}

// syncPeers makes the transport's peers the current members.
func (n *Node) syncPeers() {
	for _, m := range n.cluster.Members() {
		if m.RaftID == n.id {
			continue
		}
		n.setPeer(m.RaftID, m.Addr)
	}
	for _, id := range n.cluster.Removed() {
		n.transport.RemovePeer(id)
	}
}
