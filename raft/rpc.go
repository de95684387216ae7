package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/internal/crashpoint"
	"github.com/shoal-project/shoal/raft/membership"
	"github.com/shoal-project/shoal/raft/storage"
	"github.com/shoal-project/shoal/raft/transport"
)

// NewRaftServer returns the gRPC Raft service of this node, to register on
// the manager's listener.
func (n *Node) NewRaftServer() api.RaftServer {
	return transport.NewServer(n, transport.ServerConfig{})
}

// ProcessRaftMessage steps a message from a peer into the node. It
// implements transport.Handler. A message from a removed member is refused
// with membership.ErrMemberRemoved, which tells the sender to stop. A
// snapshot is refused here: it comes with its state, by ReceiveSnapshot.
func (n *Node) ProcessRaftMessage(ctx context.Context, m *raftpb.Message) error {
	if err := n.checkIncoming(m); err != nil {
		return err
	}
	switch m.GetType() {
	case raftpb.MsgSnap:
		return fmt.Errorf("raft: a snapshot from %x came without its state; snapshots travel by StreamSnapshot", m.GetFrom())
	case raftpb.MsgProp:
		return n.stepForwarded(ctx, m)
	}
	return n.step(ctx, m)
}

// stepForwarded steps a proposal a follower forwarded, or drops it. etcd's
// Raft takes a proposal only while it knows a leader, and until then the
// step waits; stepped on the stream it came by, the proposal would hold
// back every message behind it, the new leader's among them, which this
// node needs to learn of that leader. A leader that stepped down while
// forwarded proposals were on the way (held by a one-way partition, say)
// would then never hear from its successor. So a forwarded proposal is
// dropped when this node knows no leader, or when Raft does not take it
// within a tick, as a lost message would be: its proposer fails it when
// it learns of the new leader, or when its context ends.
func (n *Node) stepForwarded(ctx context.Context, m *raftpb.Message) error {
	if n.Leader() == 0 {
		n.log.Debug("dropped a forwarded proposal: no leader known", "peer", fmt.Sprintf("%x", m.GetFrom()))
		return nil
	}
	sctx, cancel := context.WithTimeout(ctx, n.cfg.TickInterval)
	defer cancel()
	err := n.step(sctx, m)
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
		n.log.Debug("dropped a forwarded proposal: Raft did not take it within a tick", "peer", fmt.Sprintf("%x", m.GetFrom()))
		return nil
	}
	return err
}

// ReceiveSnapshot takes a snapshot from the leader with its state, read
// from state to its end. It implements transport.Handler. The state goes
// straight to a temporary file, encrypted as every state file; only once
// the file is durable and holds the bytes the snapshot names (length and
// checksum) is the snapshot handed to Raft. The Ready that carries it then
// installs the file (installReceivedState). An error leaves nothing that
// is ever used: the temporary file is removed, or, after a crash, removed
// by the next start.
func (n *Node) ReceiveSnapshot(ctx context.Context, m *raftpb.Message, state io.Reader) error {
	if err := n.checkIncoming(m); err != nil {
		return err
	}
	meta := m.GetSnapshot().GetMetadata()
	if m.GetType() != raftpb.MsgSnap || raft.IsEmptySnap(m.GetSnapshot()) {
		return fmt.Errorf("raft: a %v message with no snapshot came as a snapshot", m.GetType())
	}
	_, want, err := decodeSnapshotData(m.GetSnapshot().GetData())
	if err != nil {
		return fmt.Errorf("raft: snapshot at index %d from %x: %w", meta.GetIndex(), m.GetFrom(), err)
	}
	w, err := n.disk.CreateState(meta.GetTerm(), meta.GetIndex())
	if err != nil {
		return fmt.Errorf("raft: receiving snapshot at index %d: %w", meta.GetIndex(), err)
	}
	kept := false
	defer func() {
		if !kept {
			_ = w.Discard()
		}
	}()
	if _, err := io.Copy(w, state); err != nil {
		return fmt.Errorf("raft: receiving snapshot at index %d from %x: %w", meta.GetIndex(), m.GetFrom(), err)
	}
	got, err := w.Finish()
	if err != nil {
		return fmt.Errorf("raft: receiving snapshot at index %d: %w", meta.GetIndex(), err)
	}
	if got != want {
		return fmt.Errorf("raft: snapshot at index %d from %x: received a state of %v, the snapshot names %v",
			meta.GetIndex(), m.GetFrom(), got, want)
	}
	crashpoint.Hit(crashpoint.SnapshotStateReceived)
	n.received.put(meta.GetTerm(), meta.GetIndex(), w, n.applied.get())
	kept = true
	n.log.Info("received snapshot state", "index", meta.GetIndex(), "term", meta.GetTerm(), "bytes", got.Size,
		"peer", fmt.Sprintf("%x", m.GetFrom()))
	if err := n.step(ctx, m); err != nil {
		n.received.discard(meta.GetTerm(), meta.GetIndex())
		return err
	}
	return nil
}

// checkIncoming refuses a message this node must not step.
func (n *Node) checkIncoming(m *raftpb.Message) error {
	if !n.started.Load() {
		return ErrNotStarted
	}
	if n.cluster.IsRemoved(m.GetFrom()) {
		return fmt.Errorf("%w: Raft ID %x", membership.ErrMemberRemoved, m.GetFrom())
	}
	if m.GetTo() != n.id {
		return fmt.Errorf("raft: message for %x reached %x", m.GetTo(), n.id)
	}
	return nil
}

func (n *Node) step(ctx context.Context, m *raftpb.Message) error {
	n.heardFrom(m.GetFrom())
	if err := n.raftNode.Step(ctx, m); err != nil {
		if errors.Is(err, raft.ErrStopped) {
			return ErrStopped
		}
		return err
	}
	return nil
}

// installReceivedState moves the state file received with snap into place,
// before the snapshot file and WAL record that name it are written.
func (n *Node) installReceivedState(snap *raftpb.Snapshot) error {
	meta := snap.GetMetadata()
	w := n.received.take(meta.GetTerm(), meta.GetIndex())
	if w == nil {
		return fmt.Errorf("raft: snapshot at index %d from the leader has no received state file", meta.GetIndex())
	}
	defer w.Discard() // nothing once installed
	if err := w.Install(); err != nil {
		return fmt.Errorf("raft: installing the state of the received snapshot at index %d: %w", meta.GetIndex(), err)
	}
	return nil
}

// OpenSnapshotState opens the state file that snap names, for the
// transport to send after the snapshot. It implements
// transport.SnapshotSource.
func (n *Node) OpenSnapshotState(snap *raftpb.Snapshot) (io.ReadCloser, uint64, error) {
	meta := snap.GetMetadata()
	_, state, err := decodeSnapshotData(snap.GetData())
	if err != nil {
		return nil, 0, fmt.Errorf("raft: snapshot at index %d: %w", meta.GetIndex(), err)
	}
	r, err := n.disk.OpenState(meta.GetTerm(), meta.GetIndex(), state)
	if err != nil {
		return nil, 0, err
	}
	return r, state.Size, nil
}

// receivedStates are the state files received with snapshots that Raft
// was handed, by snapshot, until a Ready installs one. Raft may ignore a
// snapshot (one older than what the node has), so each arrival drops the
// files that can no longer be used.
type receivedStates struct {
	mu    sync.Mutex
	files map[snapshotID]*storage.StateWriter
}

type snapshotID struct{ term, index uint64 }

// put keeps w for the snapshot at term and index, and discards the files
// of snapshots at or below applied, which Raft never hands back: the node
// has applied that far.
func (r *receivedStates) put(term, index uint64, w *storage.StateWriter, applied uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.files == nil {
		r.files = map[snapshotID]*storage.StateWriter{}
	}
	for id, f := range r.files {
		if id.index <= applied || id == (snapshotID{term, index}) {
			_ = f.Discard()
			delete(r.files, id)
		}
	}
	r.files[snapshotID{term, index}] = w
}

// take returns and forgets the file of the snapshot at term and index, and
// discards those of older snapshots.
func (r *receivedStates) take(term, index uint64) *storage.StateWriter {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.files[snapshotID{term, index}]
	delete(r.files, snapshotID{term, index})
	for id, f := range r.files {
		if id.index <= index {
			_ = f.Discard()
			delete(r.files, id)
		}
	}
	return w
}

func (r *receivedStates) discard(term, index uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.files[snapshotID{term, index}]; f != nil {
		_ = f.Discard()
		delete(r.files, snapshotID{term, index})
	}
}

func (r *receivedStates) discardAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, f := range r.files {
		_ = f.Discard()
		delete(r.files, id)
	}
}
