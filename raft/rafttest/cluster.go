// Package rafttest starts clusters of real raft.Nodes on loopback gRPC for
// tests: each member has its own state directory, gRPC server and TCP
// port, and tests can stop, restart, partition and add members. It is used
// by the tests of raft and of the packages built on it.
package rafttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/clusterrpc"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/transport"
)

// Options shape a test cluster. Zero fields take the defaults below.
type Options struct {
	// Tick is the Raft tick; default 50ms (an election timeout of 500ms,
	// which rides out the fsync stalls of a busy shared disk).
	Tick time.Duration
	// ElectionTick defaults to 10.
	ElectionTick int
	// SnapshotInterval defaults to raft's default; when set, it alone
	// decides when snapshots are taken (SnapshotCostRatio is set out of
	// the way).
	SnapshotInterval uint64
	// LogEntriesForSlowFollowers defaults to raft's default.
	LogEntriesForSlowFollowers uint64
	// NewStateMachine makes the state machine of member m each time it
	// starts; default a LogMachine. A state machine that proposes (a store)
	// reaches m's node through m.Node() when it proposes, since the node is
	// created after it.
	NewStateMachine func(m *Member) raft.StateMachine
	// Configure, if set, changes each member's config last.
	Configure func(*raft.Config)
	// Timeout bounds every wait of the harness; default 20s.
	Timeout time.Duration
	// Clock drives every member's ticks and timeouts; default the real
	// clock. With a fake clock, time passes only when the test advances it,
	// or while the harness waits (WaitFor advances it one Tick per poll).
	Clock clockwork.Clock
}

// Cluster is a set of members that tests drive.
type Cluster struct {
	t    testing.TB
	opts Options

	mu      sync.Mutex
	members []*Member
	blocked map[[2]uint64]bool // from, to Raft IDs whose messages are dropped
	seq     int
}

// Member is one manager of a test cluster.
type Member struct {
	c      *Cluster
	NodeID string
	Dir    string
	Addr   string

	mu      sync.Mutex
	node    *raft.Node
	sm      raft.StateMachine
	server  *grpc.Server
	runErr  chan error
	running bool
}

// NewCluster starts a cluster of size members: the first bootstraps, the
// others join one by one. It returns once every member has joined and a
// leader is ready. Everything is stopped at the end of the test.
func NewCluster(t testing.TB, size int, opts Options) *Cluster {
	t.Helper()
	if opts.Tick == 0 {
		opts.Tick = 50 * time.Millisecond
	}
	if opts.ElectionTick == 0 {
		opts.ElectionTick = 10
	}
	if opts.Timeout == 0 {
		opts.Timeout = 20 * time.Second
	}
	if opts.NewStateMachine == nil {
		opts.NewStateMachine = func(*Member) raft.StateMachine { return &LogMachine{} }
	}
	c := &Cluster{t: t, opts: opts, blocked: map[[2]uint64]bool{}}
	// The test's temporary directory is removed by a cleanup registered
	// at its first use: use it before registering stopAll, so that the
	// members stop (cleanups run last first) before their directories go.
	t.TempDir()
	t.Cleanup(c.stopAll)
	first := c.newMember()
	first.start("")
	c.Leader()
	for i := 1; i < size; i++ {
		c.AddMember()
	}
	return c
}

// AddMember starts a new member that joins through a running member
// (chosen in turn, so followers forward joins too), and waits until the
// leader has promoted it from learner to voter and it has applied
// everything the leader had then.
func (c *Cluster) AddMember() *Member {
	c.t.Helper()
	m := c.StartMember(nil)
	c.WaitFor(m.NodeID+" to become a voter", func() bool { return c.IsVoter(m) })
	c.WaitApplied(c.Leader().Node().Status)
	return m
}

// AddLearner starts a new member that joins as a learner for good, and
// waits until it has applied everything the leader had when it joined.
func (c *Cluster) AddLearner() *Member {
	c.t.Helper()
	m := c.StartMember(func(cfg *raft.Config) { cfg.Learner = true })
	c.WaitApplied(c.Leader().Node().Status)
	return m
}

// StartMember starts a new member that joins through a running member,
// with its config changed by configure if set, and returns once it runs:
// it is a learner then, and may not have caught up.
func (c *Cluster) StartMember(configure func(*raft.Config)) *Member {
	c.t.Helper()
	running := c.Running()
	if len(running) == 0 {
		c.t.Fatal("rafttest: no running member to join through")
	}
	through := running[len(c.members)%len(running)]
	m := c.newMember()
	cfg := c.config(m, through.Addr)
	if configure != nil {
		configure(&cfg)
	}
	m.startWith(cfg)
	return m
}

// IsVoter reports whether the leader's membership has m as a voter.
func (c *Cluster) IsVoter(m *Member) bool {
	got, ok := c.Leader().Node().Cluster().Get(m.ID())
	return ok && !got.Learner
}

func (c *Cluster) newMember() *Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	// The port is taken again in start; loopback ports are not handed out
	// again at once.
	m := &Member{c: c, NodeID: fmt.Sprintf("node-%d", c.seq), Dir: c.t.TempDir(), Addr: c.FreeAddr()}
	c.members = append(c.members, m)
	return m
}

func (c *Cluster) config(m *Member, joinAddr string) raft.Config {
	cfg := raft.DefaultConfig()
	cfg.NodeID = m.NodeID
	cfg.StateDir = m.Dir
	cfg.AdvertiseAddr = m.Addr
	cfg.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if joinAddr != "" {
		cfg.Join = clusterrpc.JoinThrough(joinAddr, cfg.DialOptions...)
	}
	cfg.TickInterval = c.opts.Tick
	cfg.ElectionTick = c.opts.ElectionTick
	cfg.ReadTimeout = time.Duration(c.opts.ElectionTick) * c.opts.Tick * 4
	if c.opts.SnapshotInterval != 0 {
		// A test that sets the interval counts entries: the bytes
		// never delay a snapshot.
		cfg.SnapshotInterval = c.opts.SnapshotInterval
		cfg.SnapshotCostRatio = math.MaxUint64
	}
	if c.opts.LogEntriesForSlowFollowers != 0 {
		cfg.LogEntriesForSlowFollowers = c.opts.LogEntriesForSlowFollowers
	}
	cfg.Logger = testLogger(c.t).With("node", m.NodeID)
	cfg.Clock = c.opts.Clock
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	return cfg
}

// start creates the member's node on its directory, serves it, and runs it.
func (m *Member) start(joinAddr string) { m.startWith(m.c.config(m, joinAddr)) }

func (m *Member) startWith(cfg raft.Config) {
	c := m.c
	c.t.Helper()
	sm := c.opts.NewStateMachine(m)
	node, err := raft.NewNode(cfg, sm)
	if err != nil {
		c.t.Fatalf("rafttest: %s: %v", m.NodeID, err)
	}
	lis, err := listenRetry(m.Addr, c.opts.Timeout)
	if err != nil {
		c.t.Fatalf("rafttest: %s: listen on %s: %v", m.NodeID, m.Addr, err)
	}
	server := grpc.NewServer(transport.ServerOptions()...)
	api.RegisterRaftServer(server, transport.NewServer(&cutHandler{c: c, node: node}, transport.ServerConfig{}))
	api.RegisterRaftMembershipServer(server, clusterrpc.NewMembershipServer(node, false))
	go func() { _ = server.Serve(lis) }()

	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	if err := node.JoinAndStart(ctx); err != nil {
		server.Stop()
		c.t.Fatalf("rafttest: %s: JoinAndStart: %v", m.NodeID, err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- node.Run(context.Background()) }()
	go clusterrpc.AnnounceAddress(context.Background(), node, cfg.AdvertiseAddr, cfg.Logger)

	m.mu.Lock()
	m.node, m.sm, m.server, m.runErr, m.running = node, sm, server, runErr, true
	m.mu.Unlock()
}

// listenRetry listens on addr, retrying while a previous server of the same
// member still releases the port.
func listenRetry(addr string, timeout time.Duration) (net.Listener, error) {
	deadline := time.Now().Add(timeout)
	for {
		lis, err := net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			return lis, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Node returns the member's current node (a new one after Restart).
func (m *Member) Node() *raft.Node {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.node
}

// SM returns the member's current state machine.
func (m *Member) SM() raft.StateMachine {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sm
}

// Log returns the member's state machine as a LogMachine (the default).
func (m *Member) Log() *LogMachine { return m.SM().(*LogMachine) }

// Running reports whether the member's node runs.
func (m *Member) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.running
}

// ID returns the member's Raft ID.
func (m *Member) ID() uint64 { return m.Node().ID() }

// Stop stops the member's node and server, as a crash between two Ready
// batches would: everything persisted stays, nothing is handed over.
// It returns what Run returned.
func (m *Member) Stop() error {
	m.mu.Lock()
	if !m.running {
		m.mu.Unlock()
		return nil
	}
	m.running = false
	node, server, runErr := m.node, m.server, m.runErr
	m.mu.Unlock()
	node.Stop()
	server.Stop()
	return <-runErr
}

// Restart starts the member again from its state directory.
func (m *Member) Restart() {
	m.c.t.Helper()
	if m.Running() {
		m.c.t.Fatalf("rafttest: %s is running", m.NodeID)
	}
	m.start("")
}

// RestartAt restarts a stopped member at a new address, as a manager
// moved to another host keeps its state directory.
func (m *Member) RestartAt(addr string) {
	m.c.t.Helper()
	m.Addr = addr
	m.Restart()
}

// FreeAddr returns a loopback address with a free port.
func (c *Cluster) FreeAddr() string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatalf("rafttest: listen: %v", err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// RestartForced restarts a stopped member with ForceNewCluster: it becomes
// the only member of a new cluster with all its committed entries.
func (m *Member) RestartForced() {
	m.c.t.Helper()
	cfg := m.c.config(m, "")
	cfg.ForceNewCluster = true
	m.startWith(cfg)
}

// RunErr returns what the member's Run returned, waiting for it to return.
func (m *Member) RunErr() error {
	m.c.t.Helper()
	m.mu.Lock()
	ch := m.runErr
	m.mu.Unlock()
	select {
	case err := <-ch:
		ch <- err
		return err
	case <-time.After(m.c.opts.Timeout):
		m.c.t.Fatalf("rafttest: %s did not stop", m.NodeID)
		return nil
	}
}

// Members returns every member ever started, running or not.
func (c *Cluster) Members() []*Member {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Member(nil), c.members...)
}

// Running returns the running members.
func (c *Cluster) Running() []*Member {
	var out []*Member
	for _, m := range c.Members() {
		if m.Running() {
			out = append(out, m)
		}
	}
	return out
}

func (c *Cluster) stopAll() {
	for _, m := range c.Members() {
		_ = m.Stop()
	}
}

// Leader waits until one running member is a ready leader and every other
// running member that can hear it agrees, and returns it.
func (c *Cluster) Leader() *Member {
	c.t.Helper()
	var leader *Member
	c.WaitFor("a leader", func() bool {
		leader = nil
		for _, m := range c.Running() {
			if m.Node().IsLeader() {
				if leader != nil {
					return false // an old leader has not stepped down yet
				}
				leader = m
			}
		}
		return leader != nil
	})
	return leader
}

// Followers returns the running members other than the leader.
func (c *Cluster) Followers() []*Member {
	leader := c.Leader()
	var out []*Member
	for _, m := range c.Running() {
		if m != leader {
			out = append(out, m)
		}
	}
	return out
}

// Propose proposes payload through the leader, retrying while leadership
// moves, and returns the apply result and the leader it went through.
func (c *Cluster) Propose(payload string) (any, error) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	for {
		leader := c.Leader()
		res, err := leader.Node().ProposeValue(ctx, []byte(payload))
		if (errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrStopped)) && ctx.Err() == nil {
			continue
		}
		return res, err
	}
}

// MustPropose proposes payload and fails the test on error.
func (c *Cluster) MustPropose(payload string) uint64 {
	c.t.Helper()
	res, err := c.Propose(payload)
	if err != nil {
		c.t.Fatalf("rafttest: propose %q: %v", short(payload), err)
	}
	index, _ := res.(uint64)
	return index
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// WaitApplied waits until every running member has applied at least the
// commit index that status reports.
func (c *Cluster) WaitApplied(status func() (raft.Status, error)) {
	c.t.Helper()
	st, err := status()
	if err != nil {
		c.t.Fatalf("rafttest: status: %v", err)
	}
	c.WaitAppliedIndex(st.Commit)
}

// WaitAppliedIndex waits until every running member has applied index.
func (c *Cluster) WaitAppliedIndex(index uint64) {
	c.t.Helper()
	c.WaitFor(fmt.Sprintf("every member to apply %d", index), func() bool {
		for _, m := range c.Running() {
			st, err := m.Node().Status()
			if err != nil || st.Applied < index {
				return false
			}
		}
		return true
	})
}

// WaitFor polls cond until it holds, failing the test after the cluster's
// timeout. It waits for a condition, it does not stand in for one. On a
// fake clock, each poll advances the clock by one tick.
func (c *Cluster) WaitFor(what string, cond func() bool) {
	c.t.Helper()
	fake, _ := c.opts.Clock.(*clockwork.FakeClock)
	deadline := time.Now().Add(c.opts.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("rafttest: timed out after %v waiting for %s", c.opts.Timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
		if fake != nil {
			fake.Advance(c.opts.Tick)
		}
	}
}

// Partition cuts every link between members of different groups, in both
// directions: their Raft messages are refused as if the network dropped
// them. Members in no group keep every link.
func (c *Cluster) Partition(groups ...[]*Member) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					c.blocked[[2]uint64{a.ID(), b.ID()}] = true
				}
			}
		}
	}
}

// Heal restores every link.
func (c *Cluster) Heal() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.blocked)
}

func (c *Cluster) isBlocked(from, to uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.blocked[[2]uint64{from, to}]
}

// cutHandler drops the messages of cut links at the receiver.
type cutHandler struct {
	c    *Cluster
	node *raft.Node
}

func (h *cutHandler) ProcessRaftMessage(ctx context.Context, m *raftpb.Message) error {
	if h.c.isBlocked(m.GetFrom(), m.GetTo()) {
		return status.Error(codes.Unavailable, "rafttest: link cut")
	}
	return h.node.ProcessRaftMessage(ctx, m)
}

func (h *cutHandler) ReceiveSnapshot(ctx context.Context, m *raftpb.Message, state io.Reader) error {
	if h.c.isBlocked(m.GetFrom(), m.GetTo()) {
		return status.Error(codes.Unavailable, "rafttest: link cut")
	}
	return h.node.ReceiveSnapshot(ctx, m, state)
}

// testLogger logs through t, so logs show only for failed tests, and stops
// logging when the test ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(string(b[:len(b)-1]))
	}
	return len(b), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
