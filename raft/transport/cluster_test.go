package transport

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shoal-project/shoal/api"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
)

type snapshotReport struct {
	id     uint64
	status raft.SnapshotStatus
}

// recordingRaft records the transport's reports on channels large enough
// that the transport never waits for the test.
type recordingRaft struct {
	unreachable chan uint64
	snapshots   chan snapshotReport
	removed     chan struct{}
	removals    atomic.Int32
}

func newRecordingRaft() *recordingRaft {
	return &recordingRaft{
		unreachable: make(chan uint64, 1<<16),
		snapshots:   make(chan snapshotReport, 1024),
		removed:     make(chan struct{}, 16),
	}
}

func (r *recordingRaft) ReportUnreachable(id uint64) {
	select {
	case r.unreachable <- id:
	default:
	}
}

func (r *recordingRaft) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	r.snapshots <- snapshotReport{id, status}
}

func (r *recordingRaft) NotifyRemoved() {
	r.removals.Add(1)
	r.removed <- struct{}{}
}

// testNode is one node of a test cluster: a gRPC server on loopback TCP
// serving the Raft service, and a Transport.
type testNode struct {
	t       testing.TB
	id      uint64
	addr    string
	raft    *recordingRaft
	source  *stateSource
	handler *recordingHandler // nil when started with another Handler
	serves  Handler
	tr      *Transport

	mu  sync.Mutex
	srv *grpc.Server
}

type nodeOption func(*Config, *ServerConfig)

func withConfig(f func(*Config)) nodeOption {
	return func(c *Config, _ *ServerConfig) { f(c) }
}

// startNode starts a node with Raft ID id. Its transport and server stop
// when the test ends.
func startNode(t testing.TB, id uint64, handler *recordingHandler, opts ...nodeOption) *testNode {
	t.Helper()
	if handler == nil {
		handler = newRecordingHandler()
	}
	n := startNodeWithHandler(t, id, handler, opts...)
	n.handler = handler
	return n
}

// startNodeWithHandler is startNode with any Handler.
func startNodeWithHandler(t testing.TB, id uint64, h Handler, opts ...nodeOption) *testNode {
	t.Helper()
	logger := testLogger(t).With(slog.String("node", idString(id)))
	n := &testNode{t: t, id: id, raft: newRecordingRaft(), source: &stateSource{}, serves: h}
	cfg := Config{ID: id, Raft: n.raft, Snapshots: n.source, Logger: logger}
	scfg := ServerConfig{Logger: logger}
	for _, o := range opts {
		o(&cfg, &scfg)
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	n.tr = tr
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	n.addr = lis.Addr().String()
	n.serve(lis, scfg)
	t.Cleanup(func() {
		n.tr.Stop()
		n.stopServer()
	})
	return n
}

func (n *testNode) serve(lis net.Listener, scfg ServerConfig) {
	srv := grpc.NewServer(ServerOptions()...)
	api.RegisterRaftServer(srv, NewServer(n.serves, scfg))
	n.mu.Lock()
	n.srv = srv
	n.mu.Unlock()
	go func() { _ = srv.Serve(lis) }()
}

// stopServer stops the node's server, closing its listener and connections.
func (n *testNode) stopServer() {
	n.mu.Lock()
	srv := n.srv
	n.srv = nil
	n.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// restartServer serves again on the node's address.
func (n *testNode) restartServer() {
	n.t.Helper()
	lis, err := net.Listen("tcp", n.addr)
	if err != nil {
		n.t.Fatalf("listen again on %s: %v", n.addr, err)
	}
	n.serve(lis, ServerConfig{Logger: testLogger(n.t)})
}

// connect makes every node a peer of every other.
func connect(t testing.TB, nodes ...*testNode) {
	t.Helper()
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				if err := a.tr.AddPeer(b.id, b.addr); err != nil {
					t.Fatalf("AddPeer(%x, %s) on %x: %v", b.id, b.addr, a.id, err)
				}
			}
		}
	}
}

// receive waits for the next message n's handler accepted.
func (n *testNode) receive(t testing.TB) *raftpb.Message {
	t.Helper()
	select {
	case m := <-n.handler.msgs:
		return m
	case <-time.After(waitTimeout):
		t.Fatalf("node %x: no message within %v", n.id, waitTimeout)
		return nil
	}
}

// expectUnreachable waits until n reported peer unreachable.
func (n *testNode) expectUnreachable(t testing.TB, peer uint64) {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case id := <-n.raft.unreachable:
			if id == peer {
				return
			}
		case <-deadline:
			t.Fatalf("node %x: peer %x not reported unreachable within %v", n.id, peer, waitTimeout)
		}
	}
}

// expectSnapshotReport waits for n's next snapshot report.
func (n *testNode) expectSnapshotReport(t testing.TB) snapshotReport {
	t.Helper()
	select {
	case r := <-n.raft.snapshots:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("node %x: no snapshot report within %v", n.id, waitTimeout)
		return snapshotReport{}
	}
}
