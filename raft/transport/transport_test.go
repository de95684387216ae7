package transport

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft/membership"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestConfigValidate(t *testing.T) {
	r, src := newRecordingRaft(), &stateSource{}
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"defaults", Config{ID: 1, Raft: r, Snapshots: src}, true},
		{"zero ID", Config{Raft: r, Snapshots: src}, false},
		{"no Raft", Config{ID: 1, Snapshots: src}, false},
		{"no Snapshots", Config{ID: 1, Raft: r}, false},
		{"negative queue", Config{ID: 1, Raft: r, Snapshots: src, QueueSize: -1}, false},
		{"negative unary size", Config{ID: 1, Raft: r, Snapshots: src, MaxUnaryMessageSize: -1}, false},
		{"unary size above gRPC's limit", Config{ID: 1, Raft: r, Snapshots: src, MaxUnaryMessageSize: 4 << 20}, false},
		{"largest unary size", Config{ID: 1, Raft: r, Snapshots: src, MaxUnaryMessageSize: maxFrameSize}, true},
		{"chunk above gRPC's limit", Config{ID: 1, Raft: r, Snapshots: src, ChunkSize: 8 << 20}, false},
		{"negative chunk", Config{ID: 1, Raft: r, Snapshots: src, ChunkSize: -5}, false},
		{"negative timeout", Config{ID: 1, Raft: r, Snapshots: src, SendTimeout: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.ok && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestNewRefusesDialOptionsWithoutCredentials(t *testing.T) {
	_, err := New(Config{ID: 1, Raft: newRecordingRaft(), DialOptions: []grpc.DialOption{grpc.WithUserAgent("x")}})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("New = %v, want ErrInvalidConfig for options without credentials", err)
	}
}

func TestMessagesArriveInOrder(t *testing.T) {
	a := startNode(t, 1, nil)
	b := startNode(t, 2, nil)
	c := startNode(t, 3, nil)
	connect(t, a, b, c)

	const n = 500
	types := []raftpb.MessageType{raftpb.MsgApp, raftpb.MsgHeartbeat, raftpb.MsgVote, raftpb.MsgReadIndex}
	for i := range uint64(n) {
		typ := types[i%uint64(len(types))]
		a.tr.Send([]*raftpb.Message{msg(typ, 1, 2, i), msg(typ, 1, 3, i)})
	}
	for _, peer := range []*testNode{b, c} {
		for i := range uint64(n) {
			m := peer.receive(t)
			if m.GetIndex() != i || m.GetTo() != peer.id || m.GetFrom() != 1 {
				t.Fatalf("node %x: message %d is %v", peer.id, i, m)
			}
		}
	}
	syncPeer(t, a, b)
	syncPeer(t, a, c)
	waitActive(t, a, 2)
	waitActive(t, a, 3)
	if since := a.tr.ActiveSince(2); since.IsZero() || since.After(time.Now()) {
		t.Fatalf("ActiveSince = %v", since)
	}
}

func TestEveryMessageTypeRoundTrips(t *testing.T) {
	a := startNode(t, 1, nil)
	b := startNode(t, 2, nil)
	connect(t, a, b)

	for typ := range raftpb.MessageType_name {
		typ := raftpb.MessageType(typ)
		if typ == raftpb.MsgSnap {
			continue // TestSnapshotIsStreamedInChunks
		}
		m := fullMessage(typ, 1, 2)
		a.tr.Send([]*raftpb.Message{m})
		got := b.receive(t)
		if !proto.Equal(got, m) {
			t.Fatalf("%v: received\n%v\nwant\n%v", typ, got, m)
		}
	}
}

func TestSnapshotIsStreamedInChunks(t *testing.T) {
	a := startNode(t, 1, nil)
	b := startNode(t, 2, nil)
	connect(t, a, b)

	// Bigger than gRPC's 4 MiB default message limit, and not a multiple
	// of the chunk size.
	m := snapshotMsg(1, 2, 16<<20+12345)
	a.tr.Send([]*raftpb.Message{m})
	got := b.receive(t)
	if !proto.Equal(got, m) {
		t.Fatalf("snapshot differs: %d data bytes received, %d sent", len(got.GetSnapshot().GetData()), len(m.Snapshot.Data))
	}
	if r := a.expectSnapshotReport(t); r != (snapshotReport{2, raft.SnapshotFinish}) {
		t.Fatalf("report = %+v, want Finish for 2", r)
	}
}

func TestHeartbeatsFlowDuringSnapshot(t *testing.T) {
	h := newRecordingHandler()
	h.gate = func(m *raftpb.Message) bool { return m.GetType() == raftpb.MsgSnap }
	a := startNode(t, 1, nil)
	b := startNode(t, 2, h)
	connect(t, a, b)

	a.tr.Send([]*raftpb.Message{snapshotMsg(1, 2, 1<<20)})
	select {
	case <-h.entered: // the snapshot is held by the receiver
	case <-time.After(waitTimeout):
		t.Fatal("snapshot never reached the handler")
	}
	// A second snapshot while the first is in flight is coalesced into it.
	a.tr.Send([]*raftpb.Message{snapshotMsg(1, 2, 1<<10)})
	for i := range uint64(10) {
		a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, i)})
		if got := b.receive(t); got.GetType() != raftpb.MsgHeartbeat || got.GetIndex() != i {
			t.Fatalf("got %v, want heartbeat %d", got, i)
		}
	}
	expectNothing(t, a.raft.snapshots, "snapshot report before the receiver answered")

	close(h.release)
	if got := b.receive(t); got.GetType() != raftpb.MsgSnap {
		t.Fatalf("got %v, want the snapshot", got)
	}
	if r := a.expectSnapshotReport(t); r.status != raft.SnapshotFinish {
		t.Fatalf("report = %+v, want Finish", r)
	}
	expectNothing(t, a.raft.snapshots, "second snapshot report")
}

func TestSnapshotToStoppedPeerFails(t *testing.T) {
	a := startNode(t, 1, nil)
	b := startNode(t, 2, nil)
	connect(t, a, b)
	b.stopServer()

	a.tr.Send([]*raftpb.Message{snapshotMsg(1, 2, 1<<20)})
	if r := a.expectSnapshotReport(t); r != (snapshotReport{2, raft.SnapshotFailure}) {
		t.Fatalf("report = %+v, want Failure for 2", r)
	}
	a.expectUnreachable(t, 2)
	if a.tr.Active(2) {
		t.Fatal("stopped peer is active")
	}
}

func TestLargeMessageIsStreamedInOrder(t *testing.T) {
	a := startNode(t, 1, nil, withConfig(func(c *Config) {
		c.MaxUnaryMessageSize = 64 << 10
		c.ChunkSize = 16 << 10
	}))
	b := startNode(t, 2, nil)
	connect(t, a, b)

	big := msg(raftpb.MsgApp, 1, 2, 1)
	big.Entries = []*raftpb.Entry{{Index: new(uint64(2)), Data: make([]byte, 300<<10)}}
	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgApp, 1, 2, 0), big, msg(raftpb.MsgApp, 1, 2, 2)})
	for i := range uint64(3) {
		got := b.receive(t)
		if got.GetIndex() != i {
			t.Fatalf("message %d has index %d", i, got.GetIndex())
		}
		if i == 1 && !proto.Equal(got, big) {
			t.Fatal("large message differs")
		}
	}
}

func TestUnreachablePeerComesBack(t *testing.T) {
	a := startNode(t, 1, nil)
	b := startNode(t, 2, nil)
	connect(t, a, b)

	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0)})
	syncPeer(t, a, b)
	waitActive(t, a, 2)

	b.stopServer()
	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 1)})
	a.expectUnreachable(t, 2)
	if a.tr.Active(2) {
		t.Fatal("peer still active after a failed send")
	}

	b.restartServer()
	// Raft sends a heartbeat every tick; do the same until one arrives.
	// Heartbeat 1 may arrive too: a send can fail on the sender's side
	// after the receiver got it.
	giveUp := time.After(waitTimeout)
	for i, arrived := uint64(2), false; !arrived; i++ {
		a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, i)})
		tick := time.After(100 * time.Millisecond)
	wait:
		for {
			select {
			case m := <-b.handler.msgs:
				if m.GetIndex() >= 2 {
					arrived = true
					break wait
				}
			case <-tick:
				break wait
			case <-giveUp:
				t.Fatal("no message reached the restarted peer")
			}
		}
	}
	syncPeer(t, a, b)
	waitActive(t, a, 2)
}

// waitActive waits until a finds the peer with Raft ID id active: the
// peer's answer to a batch arrives a moment after the batch itself.
func waitActive(t *testing.T, a *testNode, id uint64) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !a.tr.Active(id) {
		if time.Now().After(deadline) {
			t.Fatalf("peer %x not active after a successful send", id)
		}
		time.Sleep(time.Millisecond)
	}
}

// syncPeer sends one more heartbeat from a to b and waits for it: the
// messages sent before it have arrived too, in order.
func syncPeer(t *testing.T, a, b *testNode) {
	t.Helper()
	const marker = 1 << 40
	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, a.id, b.id, marker)})
	for {
		if m := b.receive(t); m.GetIndex() == marker {
			return
		}
	}
}

func TestRemovedMemberIsNotified(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			a := startNode(t, 1, nil)
			b := startNode(t, 2, nil)
			connect(t, a, b)
			b.handler.setErr(fmt.Errorf("refusing message from %x: %w", 1, membership.ErrMemberRemoved))

			m := msg(raftpb.MsgHeartbeat, 1, 2, 0)
			if snapshot {
				m = snapshotMsg(1, 2, 1<<10)
			}
			a.tr.Send([]*raftpb.Message{m})
			select {
			case <-a.raft.removed:
			case <-time.After(waitTimeout):
				t.Fatal("NotifyRemoved not called")
			}
			// Sending stops: nothing more reaches the peer or is reported.
			b.handler.err.Store(nil)
			a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 1)})
			expectNothing(t, b.handler.msgs, "message after removal")
			if n := a.raft.removals.Load(); n != 1 {
				t.Fatalf("NotifyRemoved called %d times", n)
			}
			if !snapshot {
				expectNothing(t, a.raft.unreachable, "unreachable report for a refusal")
			}
		})
	}
}

func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	h := newRecordingHandler()
	h.gate = func(*raftpb.Message) bool { return true }
	a := startNode(t, 1, nil, withConfig(func(c *Config) {
		c.QueueSize = 4
		c.SendTimeout = time.Minute // the blocked stream must outlast the test
	}))
	b := startNode(t, 2, h)
	connect(t, a, b)

	// The first message blocks the receiver in the handler, so it reads
	// nothing more from the stream: once gRPC's flow-control windows are
	// full, the sender blocks, and then the queue fills.
	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgApp, 1, 2, 0)})
	<-h.entered

	const n = 64
	batch := make([]*raftpb.Message, n)
	for i := range batch {
		batch[i] = msg(raftpb.MsgApp, 1, 2, uint64(i+1))
		batch[i].Entries = []*raftpb.Entry{{Data: make([]byte, 1<<20)}}
	}
	sent := make(chan struct{})
	go func() {
		a.tr.Send(batch)
		close(sent)
	}()
	select {
	case <-sent:
	case <-time.After(waitTimeout):
		t.Fatal("Send blocked on a full queue")
	}
	// Every message Send could not queue was dropped and reported at once.
	dropped := 0
	for len(a.raft.unreachable) > 0 {
		<-a.raft.unreachable
		dropped++
	}
	if dropped == 0 {
		t.Fatalf("no message of %d dropped while the peer read nothing", n)
	}
	close(h.release)
	// The others arrive, in order.
	for i, last := 0, int64(-1); i < n+1-dropped; i++ {
		got := b.receive(t)
		if int64(got.GetIndex()) <= last {
			t.Fatalf("message %d has index %d, after %d", i, got.GetIndex(), last)
		}
		last = int64(got.GetIndex())
	}
	expectNothing(t, b.handler.msgs, "dropped message")
}

func TestUnknownPeer(t *testing.T) {
	a := startNode(t, 1, nil)
	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgApp, 1, 9, 0)})
	a.expectUnreachable(t, 9)
	a.tr.Send([]*raftpb.Message{snapshotMsg(1, 9, 10)})
	a.expectUnreachable(t, 9)
	if r := a.expectSnapshotReport(t); r != (snapshotReport{9, raft.SnapshotFailure}) {
		t.Fatalf("report = %+v, want Failure for 9", r)
	}
	if a.tr.Active(9) || !a.tr.ActiveSince(9).IsZero() {
		t.Fatal("unknown peer is active")
	}
	if _, err := a.tr.PeerConn(9); !errors.Is(err, ErrPeerNotFound) {
		t.Fatalf("PeerConn = %v, want ErrPeerNotFound", err)
	}
}

func TestPeerManagement(t *testing.T) {
	a := startNode(t, 1, nil)
	tr := a.tr
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"add", func() error { return tr.AddPeer(2, "127.0.0.1:1") }, nil},
		{"add again, same address", func() error { return tr.AddPeer(2, "127.0.0.1:1") }, nil},
		{"add again, other address", func() error { return tr.AddPeer(2, "127.0.0.1:2") }, ErrPeerExists},
		{"add ID 0", func() error { return tr.AddPeer(0, "127.0.0.1:1") }, ErrInvalidPeer},
		{"add own ID", func() error { return tr.AddPeer(1, "127.0.0.1:1") }, ErrInvalidPeer},
		{"add empty address", func() error { return tr.AddPeer(3, "") }, ErrInvalidPeer},
		{"update", func() error { return tr.UpdatePeer(2, "127.0.0.1:2") }, nil},
		{"update, same address", func() error { return tr.UpdatePeer(2, "127.0.0.1:2") }, nil},
		{"update unknown", func() error { return tr.UpdatePeer(3, "127.0.0.1:3") }, ErrPeerNotFound},
		{"conn", func() error { _, err := tr.PeerConn(2); return err }, nil},
		{"remove", func() error { tr.RemovePeer(2); return nil }, nil},
		{"remove again", func() error { tr.RemovePeer(2); return nil }, nil},
		{"conn after remove", func() error { _, err := tr.PeerConn(2); return err }, ErrPeerNotFound},
		{"re-add after remove", func() error { return tr.AddPeer(2, "127.0.0.1:1") }, nil},
		{"stop", func() error { tr.Stop(); return nil }, nil},
		{"stop again", func() error { tr.Stop(); return nil }, nil},
		{"add after stop", func() error { return tr.AddPeer(4, "127.0.0.1:4") }, ErrStopped},
		{"update after stop", func() error { return tr.UpdatePeer(2, "127.0.0.1:4") }, ErrStopped},
		{"conn after stop", func() error { _, err := tr.PeerConn(2); return err }, ErrStopped},
		{"send after stop", func() error { tr.Send([]*raftpb.Message{msg(raftpb.MsgApp, 1, 2, 0)}); return nil }, nil},
	}
	for _, tt := range tests {
		if err := tt.call(); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Fatalf("%s: err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if tr.Active(2) {
		t.Fatal("peer active after Stop")
	}
}

func TestUpdatePeerMovesTraffic(t *testing.T) {
	a := startNode(t, 1, nil)
	old := startNode(t, 2, nil)
	moved := startNode(t, 2, nil) // the same member, restarted elsewhere
	connect(t, a, old)

	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgApp, 1, 2, 0)})
	old.receive(t)
	if err := a.tr.UpdatePeer(2, moved.addr); err != nil {
		t.Fatalf("UpdatePeer: %v", err)
	}
	if a.tr.Active(2) {
		t.Fatal("peer active at a new address before any send")
	}
	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgApp, 1, 2, 1)})
	if got := moved.receive(t); got.GetIndex() != 1 {
		t.Fatalf("got %v at the new address", got)
	}
	expectNothing(t, old.handler.msgs, "message at the old address")
}

func TestRemovePeerCancelsBlockedSend(t *testing.T) {
	h := newRecordingHandler()
	h.gate = func(*raftpb.Message) bool { return true }
	a := startNode(t, 1, nil, withConfig(func(c *Config) { c.SendTimeout = time.Minute }))
	b := startNode(t, 2, h)
	connect(t, a, b)

	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgApp, 1, 2, 0), msg(raftpb.MsgApp, 1, 2, 1)})
	a.tr.Send([]*raftpb.Message{snapshotMsg(1, 2, 1<<10)})
	<-h.entered
	<-h.entered
	a.tr.RemovePeer(2)
	// Stop (in cleanup) waits for the goroutines; goleak checks them. A
	// removed peer is no longer reported on.
	a.tr.Stop()
	expectNothing(t, a.raft.unreachable, "report about a removed peer")
	expectNothing(t, a.raft.snapshots, "snapshot report about a removed peer")
}

func TestPeerConnServesOtherCalls(t *testing.T) {
	a := startNode(t, 1, nil)
	b := startNode(t, 2, nil)
	connect(t, a, b)

	cc, err := a.tr.PeerConn(2)
	if err != nil {
		t.Fatalf("PeerConn: %v", err)
	}
	data, _ := proto.Marshal(msg(raftpb.MsgHeartbeat, 1, 2, 5))
	if _, err := api.NewRaftClient(cc).ProcessRaftMessage(t.Context(), &api.ProcessRaftMessageRequest{Messages: [][]byte{data}}); err != nil {
		t.Fatalf("call on PeerConn: %v", err)
	}
	if got := b.receive(t); got.GetIndex() != 5 {
		t.Fatalf("got %v", got)
	}
}

func TestConcurrentSendAndStop(t *testing.T) {
	a := startNode(t, 1, nil)
	b := startNode(t, 2, nil)
	connect(t, a, b)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range uint64(1000) {
			a.tr.Send([]*raftpb.Message{msg(raftpb.MsgApp, 1, 2, i)})
			if i == 100 {
				a.tr.Send([]*raftpb.Message{snapshotMsg(1, 2, 1<<20)})
			}
		}
	}()
	b.receive(t)
	a.tr.Stop()
	<-done
}

// TestLargestFramesPass sends a unary message and stream chunks of the
// largest size the configuration allows to a server with gRPC's default
// message limit.
func TestLargestFramesPass(t *testing.T) {
	a := startNode(t, 1, nil, withConfig(func(c *Config) {
		c.MaxUnaryMessageSize = maxFrameSize
		c.ChunkSize = maxFrameSize
	}))
	b := startNode(t, 2, nil)
	connect(t, a, b)

	app := msg(raftpb.MsgApp, 1, 2, 0)
	app.Entries = []*raftpb.Entry{{Index: new(uint64(1)), Data: make([]byte, maxFrameSize-64)}}
	for n := proto.Size(app); n != maxFrameSize; n = proto.Size(app) {
		app.Entries[0].Data = make([]byte, len(app.Entries[0].Data)+maxFrameSize-n)
	}
	snap := snapshotMsg(1, 2, 2*maxFrameSize+1)
	a.tr.Send([]*raftpb.Message{app, snap})
	for range 2 {
		got := b.receive(t)
		if want := map[raftpb.MessageType]*raftpb.Message{raftpb.MsgApp: app, raftpb.MsgSnap: snap}[got.GetType()]; !proto.Equal(got, want) {
			t.Fatalf("%v differs", got.GetType())
		}
	}
	if r := a.expectSnapshotReport(t); r.status != raft.SnapshotFinish {
		t.Fatalf("report = %+v, want Finish", r)
	}
}

// unaryOnlyServer is the Raft service of a version before RaftMessages.
type unaryOnlyServer struct{ api.RaftServer }

func (unaryOnlyServer) RaftMessages(grpc.BidiStreamingServer[api.ProcessRaftMessageRequest, api.ProcessRaftMessageResponse]) error {
	return status.Error(codes.Unimplemented, "unknown method RaftMessages")
}

// A peer that does not serve RaftMessages gets every batch in a
// ProcessRaftMessage call instead, after the one batch the refusal lost.
func TestPeerWithoutStreamsGetsUnaryCalls(t *testing.T) {
	a := startNode(t, 1, nil)
	h := newRecordingHandler()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(ServerOptions()...)
	api.RegisterRaftServer(srv, unaryOnlyServer{NewServer(h, ServerConfig{Logger: testLogger(t)})})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	if err := a.tr.AddPeer(2, lis.Addr().String()); err != nil {
		t.Fatal(err)
	}
	b := &testNode{t: t, id: 2, handler: h}

	a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, 0)})
	a.expectUnreachable(t, 2) // the refused stream lost it
	for i := range uint64(100) {
		a.tr.Send([]*raftpb.Message{msg(raftpb.MsgHeartbeat, 1, 2, i+1)})
	}
	for i := range uint64(100) {
		if got := b.receive(t); got.GetIndex() != i+1 {
			t.Fatalf("message %d has index %d", i+1, got.GetIndex())
		}
	}
	waitActive(t, a, 2)
}
