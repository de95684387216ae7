package manager

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
)

// testManager is one manager of a test cluster, run in this process.
type testManager struct {
	t      *testing.T
	m      *Manager
	cfg    Config
	cancel context.CancelFunc
	done   chan error
}

func testConfig(t *testing.T, dir, join string) Config {
	cfg := DefaultConfig()
	cfg.StateDir = dir
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.JoinAddr = join
	cfg.Raft.TickInterval = 50 * time.Millisecond
	cfg.StartTimeout = 20 * time.Second
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Logger = slog.New(slog.NewTextHandler(&testWriter{t: t}, nil))
	return cfg
}

func startManager(t *testing.T, cfg Config) *testManager {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tm := &testManager{t: t, m: m, cfg: cfg, cancel: cancel, done: make(chan error, 1)}
	go func() { tm.done <- m.Run(ctx) }()
	select {
	case <-m.Ready():
	case err := <-tm.done:
		t.Fatalf("manager stopped at start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("manager not ready after 30s")
	}
	t.Cleanup(func() { tm.stop() })
	return tm
}

// stop shuts the manager down cleanly and returns what Run returned.
func (tm *testManager) stop() error {
	tm.cancel()
	select {
	case err := <-tm.done:
		tm.done <- err
		return err
	case <-time.After(30 * time.Second):
		tm.t.Fatal("manager did not stop within 30s")
		return nil
	}
}

// startCluster starts n managers: the first founds the cluster, the others
// join through it.
func startCluster(t *testing.T, n int) []*testManager {
	t.Helper()
	return startClusterWith(t, n, func(*Config) {})
}

// startClusterWith is startCluster with every manager's Config changed by
// change first.
func startClusterWith(t *testing.T, n int, change func(*Config)) []*testManager {
	t.Helper()
	with := func(cfg Config) Config {
		change(&cfg)
		return cfg
	}
	first := startManager(t, with(testConfig(t, t.TempDir(), "")))
	out := []*testManager{first}
	for i := 1; i < n; i++ {
		tm := startManager(t, with(joinConfig(t, out[i-1])))
		waitVoter(t, out, tm)
		out = append(out, tm)
	}
	return out
}

// waitVoter waits until the leader among managers has promoted tm from
// learner to voter.
func waitVoter(t *testing.T, managers []*testManager, tm *testManager) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, other := range managers {
			if other.m.IsLeader() {
				if mem, ok := other.m.node.Cluster().ByNodeID(tm.m.NodeID()); ok && !mem.Learner {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s was not promoted to voter within 20s", tm.m.NodeID())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// joinConfig configures a new manager that joins through tm with the
// cluster's join token.
func joinConfig(t *testing.T, tm *testManager) Config {
	t.Helper()
	token, err := tm.m.JoinToken()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, t.TempDir(), tm.m.Addr())
	cfg.JoinToken = token
	return cfg
}

// clientCredentials returns TLS transport credentials with a new client
// certificate of tm's cluster.
func (tm *testManager) clientCredentials(role ca.Role) credentials.TransportCredentials {
	tm.t.Helper()
	root, err := (*authority)(tm.m).RootCA(context.Background())
	if err != nil {
		tm.t.Fatal(err)
	}
	now := time.Now()
	kp, err := root.NewKeyPair(ca.NewID(), role, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		tm.t.Fatal(err)
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		tm.t.Fatal(err)
	}
	holder, err := ca.NewCertificateHolder(cert)
	if err != nil {
		tm.t.Fatal(err)
	}
	return credentials.NewTLS(ca.ClientTLSConfig(root.WithoutKey(), holder))
}

// dial returns a Control client on the manager's remote API, with a
// read-write client certificate.
func (tm *testManager) dial() api.ControlClient {
	tm.t.Helper()
	return tm.dialAs(ca.RoleClient)
}

// dialAs returns a Control client on the manager's remote API, with a
// certificate of role.
func (tm *testManager) dialAs(role ca.Role) api.ControlClient {
	tm.t.Helper()
	conn, err := grpc.NewClient(tm.m.Addr(), grpc.WithTransportCredentials(tm.clientCredentials(role)))
	if err != nil {
		tm.t.Fatal(err)
	}
	tm.t.Cleanup(func() { conn.Close() })
	return api.NewControlClient(conn)
}

// dialSocket returns a Control client on the manager's control socket.
func (tm *testManager) dialSocket() api.ControlClient {
	tm.t.Helper()
	conn, err := grpc.NewClient("unix://"+tm.m.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tm.t.Fatal(err)
	}
	tm.t.Cleanup(func() { conn.Close() })
	return api.NewControlClient(conn)
}

func leaderOf(t *testing.T, ms []*testManager) *testManager {
	t.Helper()
	var leader *testManager
	waitFor(t, "a leader", func() bool {
		for _, tm := range ms {
			if tm.m.node != nil && tm.m.node.IsLeader() {
				leader = tm
				return true
			}
		}
		return false
	})
	return leader
}

// waitFor polls cond until it holds or 20s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(b[:len(b)-1]))
	}
	return len(b), nil
}
