package transport

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Raft is the part of the local node the transport reports to. Calls may
// come from any goroutine, including the one calling Send, and must not wait
// for the goroutine that calls RemovePeer or Stop. etcd's raft.Node
// satisfies the first two methods.
type Raft interface {
	// ReportUnreachable tells Raft the last message to id may be lost.
	ReportUnreachable(id uint64)
	// ReportSnapshot tells Raft how the last snapshot sent to id ended.
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
	// NotifyRemoved is called when a peer refused a message because this
	// node was removed from the cluster. It is called at most once; after
	// it the transport sends nothing more.
	NotifyRemoved()
}

// Transport sends the local node's Raft messages to its peers over gRPC. Each
// peer has a bounded queue and one goroutine that sends the queue's messages
// in order, plus at most one goroutine sending a snapshot. All methods are
// safe for concurrent use.
type Transport struct {
	cfg      Config
	log      *slog.Logger
	dialOpts []grpc.DialOption

	// ctx is the parent of every peer's context; Stop cancels it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts the goroutines of every peer, removed ones included, so
	// Stop can wait for all of them.
	wg sync.WaitGroup

	// removed is set once a peer refused a message because this node was
	// removed from the cluster.
	removed atomic.Bool

	mu      sync.RWMutex
	peers   map[uint64]*peer
	stopped bool
}

// New returns a Transport with no peers. It applies the defaults to cfg's
// zero fields, validates it, and checks that cfg.DialOptions can create a
// connection (that they carry transport credentials, above all).
func New(cfg Config) (*Transport, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	t := &Transport{
		cfg:      cfg,
		log:      cfg.Logger.With(slog.String("raft_id", idString(cfg.ID))),
		dialOpts: cfg.dialOptions(),
		peers:    make(map[uint64]*peer),
	}
	// grpc.NewClient connects lazily, so this opens no socket: it only
	// makes a bad option fail here rather than at the first AddPeer.
	probe, err := grpc.NewClient("passthrough:///probe", t.dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("%w: DialOptions: %w", ErrInvalidConfig, err)
	}
	_ = probe.Close()
	t.ctx, t.cancel = context.WithCancel(context.Background())
	return t, nil
}

// AddPeer makes the peer with Raft ID id, reachable at addr (host:port),
// known to the transport and starts its sender. The connection is made
// lazily, by the first message. Adding a peer again with the same address
// does nothing; with another address it fails with ErrPeerExists
// (UpdatePeer changes addresses). It never waits for the network.
func (t *Transport) AddPeer(id uint64, addr string) error {
	if err := t.checkPeer(id, addr); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return ErrStopped
	}
	if p, ok := t.peers[id]; ok {
		if cur := p.address(); cur != addr {
			return fmt.Errorf("%w: peer %s has address %s, not %s", ErrPeerExists, idString(id), cur, addr)
		}
		return nil
	}
	cc, err := grpc.NewClient(addr, t.dialOpts...)
	if err != nil {
		return fmt.Errorf("transport: connection to peer %s at %s: %w", idString(id), addr, err)
	}
	p := newPeer(t, id, addr, cc)
	t.peers[id] = p
	t.wg.Add(1)
	go p.run()
	t.log.Info("added peer", slog.String("peer", idString(id)), slog.String("addr", addr))
	return nil
}

// UpdatePeer points the peer with Raft ID id at a new address. The old
// connection is closed at once, which fails a send that was using it (Raft
// hears of it as usual); the peer counts as inactive until a send to the new
// address succeeds. It fails with ErrPeerNotFound for an unknown peer and
// never waits for the network.
func (t *Transport) UpdatePeer(id uint64, addr string) error {
	if err := t.checkPeer(id, addr); err != nil {
		return err
	}
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return ErrStopped
	}
	p, ok := t.peers[id]
	if !ok {
		t.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrPeerNotFound, idString(id))
	}
	if p.address() == addr {
		t.mu.Unlock()
		return nil
	}
	cc, err := grpc.NewClient(addr, t.dialOpts...)
	if err != nil {
		t.mu.Unlock()
		return fmt.Errorf("transport: connection to peer %s at %s: %w", idString(id), addr, err)
	}
	old := p.replaceConn(addr, cc)
	t.mu.Unlock()
	_ = old.Close()
	t.log.Info("updated peer address", slog.String("peer", idString(id)), slog.String("addr", addr))
	return nil
}

// RemovePeer stops the sender of the peer with Raft ID id, drops the
// messages still queued for it, cancels a send or snapshot in progress and
// closes its connection. It does not wait for the peer's goroutines to
// return (Stop does), so it may be called from the goroutine that serves the
// Raft callbacks; once it returns, nothing more is reported about that peer
// except, at most, the outcome of the send that was already finishing.
// Removing an unknown peer does nothing.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	p, ok := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if !ok {
		return
	}
	p.stop()
	t.log.Info("removed peer", slog.String("peer", idString(id)))
}

// Send queues msgs for their peers and returns without waiting for the
// network: it is meant for the Raft loop, which calls it with the Messages of
// a Ready. Messages are encoded here, on the caller's goroutine, because
// Raft's log entries may not be encoded concurrently with the Raft loop;
// a MsgSnap, small since its state travels apart, is encoded here too, and
// its goroutine reads the state from Config.Snapshots.
//
// Messages to one peer are sent in the order given, except snapshots, which
// go alongside so that heartbeats keep flowing during a long transfer. A
// message that cannot be queued is dropped and reported to Raft: on the
// calling goroutine, with ReportUnreachable (and ReportSnapshot(Failure) for
// a snapshot). After Stop, or once this node learned it was removed, Send
// drops everything silently.
func (t *Transport) Send(msgs []*raftpb.Message) {
	var dropped []*raftpb.Message
	t.mu.RLock()
	if t.stopped || t.removed.Load() {
		t.mu.RUnlock()
		return
	}
	for _, m := range msgs {
		if !t.enqueue(m) {
			dropped = append(dropped, m)
		}
	}
	t.mu.RUnlock()

	// Reported once the lock is released, so that a Raft implementation
	// that calls back into the transport from a report cannot deadlock.
	for _, m := range dropped {
		to := m.GetTo()
		if to == t.cfg.ID {
			continue
		}
		t.cfg.Raft.ReportUnreachable(to)
		if m.GetType() == raftpb.MsgSnap {
			t.cfg.Raft.ReportSnapshot(to, raft.SnapshotFailure)
		}
	}
}

// enqueue hands m to its peer and reports whether it was accepted. The
// caller holds t.mu for reading.
//
// Dropping a message is safe for Raft, which is built for a network that
// loses messages: heartbeats and votes are sent again at the next tick or
// election timeout, and the leader moves a follower reported unreachable
// from pipelined replication back to probing, so it resends from the last
// index the follower acknowledged.
func (t *Transport) enqueue(m *raftpb.Message) bool {
	to := m.GetTo()
	p, ok := t.peers[to]
	if !ok {
		level := slog.LevelWarn
		if to == t.cfg.ID {
			level = slog.LevelError // Raft never sends to itself: a bug
		}
		t.log.Log(context.Background(), level, "dropped message to unknown peer",
			slog.String("peer", idString(to)), slog.String("type", m.GetType().String()))
		return false
	}
	data, err := proto.Marshal(m)
	if err != nil {
		p.log.Error("cannot encode message", slog.String("type", m.GetType().String()), slog.Any("error", err))
		return false
	}
	if m.GetType() == raftpb.MsgSnap {
		p.sendSnapshot(m, data)
		return true
	}
	select {
	case p.queue <- outgoing{typ: m.GetType(), data: data}:
		return true
	default:
		p.log.Debug("dropped message: queue full", slog.String("type", m.GetType().String()))
		return false
	}
}

// Active reports whether the last send to the peer with Raft ID id
// succeeded. It is false for an unknown peer and before the first send.
func (t *Transport) Active(id uint64) bool {
	return !t.ActiveSince(id).IsZero()
}

// Peers returns the Raft IDs of the peers, in no order.
func (t *Transport) Peers() []uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ids := make([]uint64, 0, len(t.peers))
	for id := range t.peers {
		ids = append(ids, id)
	}
	return ids
}

// ActiveSince returns the time since which every send to the peer with Raft
// ID id has succeeded, or the zero time when it is not Active.
func (t *Transport) ActiveSince(id uint64) time.Time {
	t.mu.RLock()
	p, ok := t.peers[id]
	t.mu.RUnlock()
	if !ok {
		return time.Time{}
	}
	return p.activeTime()
}

// PeerConn returns the connection to the peer with Raft ID id, to make other
// calls on it (forwarding to the leader). The transport owns the connection:
// do not close it, and ask again for each call, because UpdatePeer,
// RemovePeer and Stop close it. It fails with ErrPeerNotFound for an unknown
// peer and ErrStopped after Stop; it does not check that the peer is
// reachable (see Active).
func (t *Transport) PeerConn(id uint64) (*grpc.ClientConn, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.stopped {
		return nil, ErrStopped
	}
	p, ok := t.peers[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrPeerNotFound, idString(id))
	}
	return p.conn(), nil
}

// Stop stops every sender, cancels the sends in progress, waits until every
// goroutine of the transport has returned and closes every connection.
// Messages still queued are dropped without reports. Calling Stop again, or
// concurrently, waits for the same goroutines and does nothing else.
func (t *Transport) Stop() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		t.wg.Wait()
		return
	}
	t.stopped = true
	peers := t.peers
	t.peers = map[uint64]*peer{}
	t.mu.Unlock()

	t.cancel()
	t.wg.Wait()
	for _, p := range peers {
		_ = p.conn().Close()
	}
	t.log.Info("stopped")
}

// checkPeer refuses a Raft ID or address that no peer may have.
func (t *Transport) checkPeer(id uint64, addr string) error {
	switch {
	case id == 0:
		return fmt.Errorf("%w: Raft ID 0", ErrInvalidPeer)
	case id == t.cfg.ID:
		return fmt.Errorf("%w: %s is the local node's own Raft ID", ErrInvalidPeer, idString(id))
	case addr == "":
		return fmt.Errorf("%w: empty address for peer %s", ErrInvalidPeer, idString(id))
	}
	return nil
}

// memberRemoved is called by a peer's sender when the peer refused a
// message because this node was removed from the cluster.
func (t *Transport) memberRemoved(by uint64) {
	if t.removed.CompareAndSwap(false, true) {
		t.log.Warn("a peer refused our message: this node was removed from the cluster; sending stops",
			slog.String("peer", idString(by)))
		t.cfg.Raft.NotifyRemoved()
	}
}
