package raft

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/internal/crashpoint"
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

// snapshotResult is a snapshot written in the background.
type snapshotResult struct {
	index     uint64
	confState *raftpb.ConfState
	data      []byte
	err       error
}

// maybeSnapshot starts a snapshot once SnapshotInterval entries were applied
// since the last one. The state machine captures a view on this goroutine;
// the bytes are written on another, so applying goes on meanwhile.
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
		res := snapshotResult{index: applied, confState: cs}
		var buf bytes.Buffer
		res.err = encodeSnapshotHeader(&buf, members)
		if res.err == nil {
			res.err = write(&buf)
		}
		res.data = buf.Bytes()
		select {
		case n.snapshotDone <- res:
		case <-n.stopped:
		}
	}()
	return nil
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

// finishSnapshot makes a written snapshot durable, then compacts the
// in-memory log, keeping LogEntriesForSlowFollowers entries before it.
func (n *Node) finishSnapshot(res snapshotResult) error {
	n.loop.snapshotting = false
	if res.err != nil {
		return fmt.Errorf("raft: writing snapshot at index %d: %w", res.index, res.err)
	}
	snap, err := n.memStore.CreateSnapshot(res.index, res.confState, res.data)
	if errors.Is(err, raft.ErrSnapOutOfDate) {
		if snap, err = n.snapshotAgain(res); snap == nil && err == nil {
			return nil // a newer snapshot arrived from the leader meanwhile
		}
	}
	if err != nil {
		return fmt.Errorf("raft: creating snapshot at index %d: %w", res.index, err)
	}
	crashpoint.Hit(crashpoint.SnapshotSaveBefore)
	if err := n.disk.SaveSnapshot(snap); err != nil {
		return fmt.Errorf("raft: saving snapshot at index %d: %w", res.index, err)
	}
	crashpoint.Hit(crashpoint.SnapshotSaveAfter)
	n.loop.snapshotIndex = res.index
	if res.index > n.cfg.LogEntriesForSlowFollowers {
		compact := res.index - n.cfg.LogEntriesForSlowFollowers
		if err := n.memStore.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return fmt.Errorf("raft: compacting the in-memory log to %d: %w", compact, err)
		}
	}
	n.log.Info("snapshot saved", "index", res.index, "bytes", len(res.data))
	return n.maybeSnapshot() // one may have been asked for meanwhile
}

// snapshotAgain returns the snapshot to save when the in-memory log's
// snapshot is already at res.index: nothing was applied since, but one was
// asked for (RequestSnapshot), so that data sealed with an older key goes.
// The file at that index is written again, from the same state. It returns
// nil when the in-memory snapshot is newer.
func (n *Node) snapshotAgain(res snapshotResult) (*raftpb.Snapshot, error) {
	cur, err := n.memStore.Snapshot()
	if err != nil || cur.GetMetadata().GetIndex() != res.index {
		return nil, err
	}
	return &raftpb.Snapshot{
		Data: res.data,
		Metadata: &raftpb.SnapshotMetadata{
			Index: proto.Uint64(res.index), Term: proto.Uint64(cur.GetMetadata().GetTerm()), ConfState: res.confState,
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
