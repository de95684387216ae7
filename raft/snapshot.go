package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/internal/crashpoint"
	"github.com/shoal-project/shoal/raft/storage"
)

// A snapshot's data is the membership, then the state machine's bytes:
//
//	uvarint(len(membership)) | membership (api.RaftMembershipState) | state
//
// so the state machine writes straight into the buffer after the header.

// maxMembershipHeader bounds the membership header of a snapshot, so a
// corrupt length cannot make the decoder allocate without limit.
const maxMembershipHeader = 64 << 20

var errBadSnapshot = errors.New("raft: malformed snapshot data")

// encodeSnapshotHeader writes the membership header to w.
func encodeSnapshotHeader(w io.Writer, st *api.RaftMembershipState) error {
	b, err := proto.Marshal(st)
	if err != nil {
		return err
	}
	var lenBuf [binary.MaxVarintLen64]byte
	if _, err := w.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(b)))]); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// decodeSnapshot splits snapshot data into the membership and a reader of
// the state machine's bytes.
func decodeSnapshot(data []byte) (*api.RaftMembershipState, io.Reader, error) {
	size, n := binary.Uvarint(data)
	if n <= 0 {
		return nil, nil, fmt.Errorf("%w: bad header length", errBadSnapshot)
	}
	if size > maxMembershipHeader || size > uint64(len(data)-n) {
		return nil, nil, fmt.Errorf("%w: header of %d bytes does not fit", errBadSnapshot, size)
	}
	st := &api.RaftMembershipState{}
	if err := proto.Unmarshal(data[n:n+int(size)], st); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadSnapshot, err)
	}
	return st, bytes.NewReader(data[n+int(size):]), nil
}

// snapshotResult is a snapshot taken in the background.
type snapshotResult struct {
	index uint64
	saved bool // false when a newer snapshot was saved meanwhile
	bytes int
	took  time.Duration
	err   error
}

// maybeSnapshot starts a snapshot once SnapshotInterval entries were applied
// since the last one. The state machine captures a view on this goroutine;
// everything else runs on another, so that ticks, heartbeats and applying
// go on meanwhile: writing the bytes, and saving them (sealing, the file
// and its fsyncs, the WAL record), which takes seconds for a large store,
// longer than an election timeout.
func (n *Node) maybeSnapshot() error {
	applied := n.applied.get()
	asked := n.loop.snapshotAt != 0 && applied >= n.loop.snapshotAt
	if n.loop.snapshotting || (applied-n.loop.snapshotIndex < n.cfg.SnapshotInterval && !asked) {
		return nil
	}
	n.loop.snapshotAt = 0
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
// received from the leader meanwhile), which is then dropped.
func (n *Node) takeSnapshot(index uint64, cs *raftpb.ConfState, members *api.RaftMembershipState,
	write func(io.Writer) error) snapshotResult {
	res := snapshotResult{index: index}
	var buf bytes.Buffer
	if err := encodeSnapshotHeader(&buf, members); err != nil {
		res.err = fmt.Errorf("raft: writing snapshot at index %d: %w", index, err)
		return res
	}
	if err := write(&buf); err != nil {
		res.err = fmt.Errorf("raft: writing snapshot at index %d: %w", index, err)
		return res
	}
	data := buf.Bytes()
	res.bytes = len(data)
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
	crashpoint.Hit(crashpoint.SnapshotSaveBefore)
	err = n.disk.SaveSnapshot(snap)
	if errors.Is(err, storage.ErrInvalidSnapshot) && n.loopSavedNewer(index) {
		return res
	}
	if err != nil {
		res.err = fmt.Errorf("raft: saving snapshot at index %d: %w", index, err)
		return res
	}
	crashpoint.Hit(crashpoint.SnapshotSaveAfter)
	res.saved = true
	if index > n.cfg.LogEntriesForSlowFollowers {
		compact := index - n.cfg.LogEntriesForSlowFollowers
		if err := n.memStore.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
			res.err = fmt.Errorf("raft: compacting the in-memory log to %d: %w", compact, err)
		}
	}
	return res
}

// loopSavedNewer reports whether the in-memory log holds a snapshot newer
// than index: one received from the leader, saved on the Run goroutine.
func (n *Node) loopSavedNewer(index uint64) bool {
	cur, err := n.memStore.Snapshot()
	return err == nil && cur.GetMetadata().GetIndex() > index
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
func (n *Node) restoreSnapshot(snap *raftpb.Snapshot) error {
	meta := snap.GetMetadata()
	members, state, err := decodeSnapshot(snap.GetData())
	if err != nil {
		return fmt.Errorf("raft: snapshot at index %d: %w", meta.GetIndex(), err)
	}
	if err := n.sm.Restore(meta.GetIndex(), state); err != nil {
		return fmt.Errorf("raft: restoring the state machine from snapshot %d: %w", meta.GetIndex(), err)
	}
	n.cluster.Restore(members)
	n.syncPeers()
	n.loop.confState = proto.Clone(meta.GetConfState()).(*raftpb.ConfState)
	n.loop.snapshotIndex = meta.GetIndex()
	n.loop.appliedTerm = meta.GetTerm()
	if n.cluster.IsRemoved(n.id) {
		n.loop.removed = true
	}
	n.applied.set(meta.GetIndex())
	n.log.Info("restored snapshot", "index", meta.GetIndex(), "term", meta.GetTerm())
	return nil
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
