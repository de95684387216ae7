package manager

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
)

// stateNames are the entries of a state directory that make a manager's
// state.
var stateNames = []string{ca.CertificatesDir, pendingCertificatesDir, keysDirName, raftDirName, SocketName}

// stateLeft returns the entries of stateNames that dir holds.
func stateLeft(t *testing.T, dir string) []string {
	t.Helper()
	var left []string
	for _, name := range stateNames {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			left = append(left, name)
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	return left
}

// takenAddr returns a loopback address this test listens on until it ends.
func takenAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	return lis.Addr().String()
}

// runToEnd runs a manager with cfg and returns the error it stops with, at
// New or at Run; it fails the test if the manager becomes ready.
func runToEnd(t *testing.T, cfg Config) error {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-m.Ready():
		cancel()
		<-done
		t.Fatal("the manager started")
		return nil
	}
}

func memberCount(tm *testManager) int { return len(tm.m.node.Cluster().Members()) }

// TestStartChecksBeforeWritingAnything: a start that cannot work fails
// with a message that says what to do, before it writes anything in its
// state directory or contacts the cluster; a joiner's cluster keeps its
// members. (A taken --metrics-addr used to fail only after the manager had
// joined as a voter.)
func TestStartChecksBeforeWritingAnything(t *testing.T) {
	cluster := startCluster(t, 1)[0]
	token, err := cluster.m.JoinToken()
	if err != nil {
		t.Fatal(err)
	}
	taken := takenAddr(t)
	notWritable := func(t *testing.T, cfg *Config) {
		if os.Geteuid() == 0 {
			t.Skip("root writes in any directory")
		}
		if err := os.Mkdir(cfg.StateDir, 0o500); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		join    bool // through cluster, with its token
		setup   func(*testing.T, *Config)
		wantErr string
	}{
		{"listen address taken", false, func(_ *testing.T, c *Config) { c.ListenAddr = taken },
			"--listen-addr " + taken + " is in use by another process: choose another address"},
		{"listen address taken, joining", true, func(_ *testing.T, c *Config) { c.ListenAddr = taken },
			"--listen-addr " + taken + " is in use by another process: choose another address"},
		{"metrics address taken", false, func(_ *testing.T, c *Config) { c.MetricsAddr = taken },
			"--metrics-addr " + taken + " is in use by another process: choose another address"},
		{"metrics address taken, joining", true, func(_ *testing.T, c *Config) { c.MetricsAddr = taken },
			"--metrics-addr " + taken + " is in use by another process: choose another address"},
		{"listen address not this machine's", true, func(_ *testing.T, c *Config) { c.ListenAddr = "192.0.2.1:0" },
			"is not an address of this machine"},
		{"metrics address not host:port", true, func(_ *testing.T, c *Config) { c.MetricsAddr = "9100" },
			`--metrics-addr "9100" is not host:port`},
		{"metrics on the remote API's address", true, func(_ *testing.T, c *Config) { c.ListenAddr, c.MetricsAddr = "127.0.0.1:7", "127.0.0.1:7" },
			"--metrics-addr and --listen-addr are both 127.0.0.1:7"},
		{"advertise address not host:port", true, func(_ *testing.T, c *Config) { c.AdvertiseAddr = "10.0.0.1" },
			`--advertise-addr "10.0.0.1" is not host:port`},
		{"join address not host:port", false, func(_ *testing.T, c *Config) { c.JoinAddr, c.JoinToken = "manager-1", token },
			`--join "manager-1" is not host:port`},
		{"token without --join", false, func(_ *testing.T, c *Config) { c.JoinToken = token },
			"--token is for joining a cluster, and --join is not given"},
		{"join without a token", true, func(_ *testing.T, c *Config) { c.JoinToken = "" },
			"needs a join token"},
		{"malformed token", true, func(_ *testing.T, c *Config) { c.JoinToken = "SHLTKN-1-nonsense" },
			"--token:"},
		{"--force-new-cluster without state", false, func(_ *testing.T, c *Config) { c.ForceNewCluster = true },
			"--force-new-cluster restarts a manager from its own state"},
		{"--force-new-cluster with --join", true, func(_ *testing.T, c *Config) { c.ForceNewCluster = true },
			"exclude each other"},
		{"state directory is a file", true, func(t *testing.T, c *Config) {
			if err := os.WriteFile(c.StateDir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a directory"},
		{"state directory under a file", true, func(t *testing.T, c *Config) {
			if err := os.WriteFile(c.StateDir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			c.StateDir = filepath.Join(c.StateDir, "m")
		}, "not a directory: choose another --state-dir"},
		{"state directory not writable", true, notWritable, "is not writable"},
		{"control socket path too long", true, func(_ *testing.T, c *Config) {
			c.StateDir = filepath.Join(c.StateDir, strings.Repeat("d", maxSocketPath))
		}, "is longer than 107 bytes; use a shorter --state-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, filepath.Join(t.TempDir(), "m"), "")
			if tt.join {
				cfg.JoinAddr, cfg.JoinToken = cluster.m.Addr(), token
			}
			tt.setup(t, &cfg)
			err := runToEnd(t, cfg)
			if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("start = %v, want a bad configuration saying %q", err, tt.wantErr)
			}
			if fi, err := os.Stat(cfg.StateDir); err == nil && fi.IsDir() {
				if left := stateLeft(t, cfg.StateDir); len(left) > 0 {
					t.Errorf("the refused start left %v in the state directory", left)
				}
			}
			if got := memberCount(cluster); got != 1 {
				t.Errorf("the cluster has %d members, want 1", got)
			}
		})
	}
}

// TestAnotherManagerOnTheStateDirectoryIsRefused: a second manager on a
// running manager's state directory stops at the control socket, before it
// touches the state.
func TestAnotherManagerOnTheStateDirectoryIsRefused(t *testing.T) {
	running := startCluster(t, 1)[0]
	cfg := running.cfg
	cfg.ListenAddr = "127.0.0.1:0"
	err := runToEnd(t, cfg)
	if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), "another manager is running on "+running.m.SocketPath()) {
		t.Fatalf("start = %v, want a refusal naming the running manager's socket", err)
	}
	if _, err := running.dialSocket().GetClusterInfo(context.Background(), &api.GetClusterInfoRequest{}); err != nil {
		t.Fatalf("the running manager after the refused start: %v", err)
	}
}

// TestCertificatesWithoutRaftStateAreRefused: a manager whose Raft state is
// gone but whose certificates remain must not come back under its old node
// ID with an empty log, neither as the first manager (it would found a new
// cluster under the old CA) nor as a joiner. It says what to do, and
// touches nothing.
func TestCertificatesWithoutRaftStateAreRefused(t *testing.T) {
	ms := startCluster(t, 2)
	for i, tm := range ms {
		t.Run([]string{"first manager", "joiner"}[i], func(t *testing.T) {
			nodeID := tm.m.NodeID()
			if err := tm.stop(); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(filepath.Join(tm.cfg.StateDir, raftDirName)); err != nil {
				t.Fatal(err)
			}
			before := stateLeft(t, tm.cfg.StateDir)
			err := runToEnd(t, tm.cfg)
			want := tm.cfg.StateDir + " has this manager's certificates (node ID " + nodeID + ") but no Raft state"
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "shoal node rm "+nodeID) {
				t.Fatalf("start = %v, want a refusal saying %q and how to remove node %s", err, want, nodeID)
			}
			if errors.Is(err, ErrBadConfig) {
				t.Errorf("the refusal is a bad configuration; it is the state directory's: %v", err)
			}
			if after := stateLeft(t, tm.cfg.StateDir); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Errorf("the refused start changed the state directory from %v to %v", before, after)
			}
		})
	}
	if got := len(ms[0].m.node.Cluster().Members()); got != 2 {
		t.Errorf("the cluster has %d members, want 2", got)
	}
}

// failJoin is a dial option that refuses the Raft Join call before it
// leaves this process, as a leader that refuses the join would: the
// joiner got its certificate from the cluster's CA already.
func failJoin() grpc.DialOption {
	return grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method == api.RaftMembership_Join_FullMethodName {
			return status.Error(codes.FailedPrecondition, "raft: refused by the test")
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	})
}

// TestFailedJoinLeavesNothingBehind: a join that fails before the joiner
// has Raft state leaves its state directory as it found it, without
// certificates, so that the same start, corrected, simply works.
func TestFailedJoinLeavesNothingBehind(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(c *Config, token string)
		wantErr string
	}{
		{"nothing listens at the address", func(c *Config, _ string) { c.JoinAddr = closedAddr(t) }, "getting a certificate from"},
		{"wrong token", func(c *Config, token string) {
			i := strings.LastIndex(token, "-") + 1
			c.JoinToken = token[:i] + strings.Repeat("0", len(token)-i)
		}, "token"},
		{"the Raft join is refused after the certificate was issued", func(c *Config, _ string) {
			c.Raft.DialOptions = append(c.Raft.DialOptions, failJoin())
		}, "refused by the test"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cluster := startCluster(t, 1)[0]
			good := joinConfig(t, cluster)
			good.StateDir = filepath.Join(good.StateDir, "m")
			cfg := good
			tt.setup(&cfg, good.JoinToken)
			err := runToEnd(t, cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("start = %v, want an error saying %q", err, tt.wantErr)
			}
			if _, err := os.Stat(cfg.StateDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the failed first start left its state directory (%v), holding %v", err, stateLeft(t, cfg.StateDir))
			}
			if got := memberCount(cluster); got != 1 {
				t.Fatalf("the cluster has %d members after the failed join, want 1", got)
			}

			joined := startManager(t, good)
			if got := memberCount(joined); got != 2 {
				t.Errorf("after the retry the joiner sees %d members, want 2", got)
			}
		})
	}
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// TestFailedFirstStartKeepsAnExistingDirectory: a state directory that
// existed before (here with a file of the operator's in it) stays, with
// nothing of the failed start in it.
func TestFailedFirstStartKeepsAnExistingDirectory(t *testing.T) {
	cluster := startCluster(t, 1)[0]
	token, err := cluster.m.JoinToken()
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, t.TempDir(), cluster.m.Addr())
	cfg.JoinToken = token
	cfg.Raft.DialOptions = append(cfg.Raft.DialOptions, failJoin())
	if err := os.WriteFile(filepath.Join(cfg.StateDir, "manager.log"), []byte("kept\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := runToEnd(t, cfg); err == nil {
		t.Fatal("the join succeeded")
	}
	if left := stateLeft(t, cfg.StateDir); len(left) > 0 {
		t.Errorf("the failed start left %v", left)
	}
	if b, err := os.ReadFile(filepath.Join(cfg.StateDir, "manager.log")); err != nil || string(b) != "kept\n" {
		t.Errorf("the operator's file: %q, %v", b, err)
	}
}

// TestFirstStartInterruptedAfterItsWALIsFinished: a first start that
// stopped between the creation of its WAL and the installation of its
// certificates comes back under the identity its WAL was made with.
func TestFirstStartInterruptedAfterItsWALIsFinished(t *testing.T) {
	ms := startCluster(t, 2)
	// In turn, so that the other manager runs while one restarts.
	for i, who := range []string{"first manager", "joiner"} {
		tm := ms[i]
		nodeID := tm.m.NodeID()
		if err := tm.stop(); err != nil {
			t.Fatal(err)
		}
		dir := tm.cfg.StateDir
		if err := os.Rename(ca.CertificatesPath(dir), filepath.Join(dir, pendingCertificatesDir)); err != nil {
			t.Fatal(err)
		}
		cfg := tm.cfg
		cfg.ListenAddr = tm.m.Addr() // two managers elect no leader while one moves
		restarted := startManager(t, cfg)
		if got := restarted.m.NodeID(); got != nodeID {
			t.Fatalf("%s: restarted as node %s, want %s", who, got, nodeID)
		}
		if left := stateLeft(t, dir); slices.Contains(left, pendingCertificatesDir) || !slices.Contains(left, ca.CertificatesDir) {
			t.Errorf("%s: the state directory holds %v, want the certificates installed", who, left)
		}
	}
}

// TestLeftoversOfACrashedFirstStartAreDiscarded: what a first start that
// crashed before its WAL existed left (pending certificates, data keys)
// does not stop the next start, which begins afresh.
func TestLeftoversOfACrashedFirstStartAreDiscarded(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), "")
	tm := startManager(t, cfg)
	old := tm.m.NodeID()
	if err := tm.stop(); err != nil {
		t.Fatal(err)
	}
	// As a crash before the WAL was created leaves it.
	if err := os.RemoveAll(filepath.Join(cfg.StateDir, raftDirName)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(ca.CertificatesPath(cfg.StateDir), filepath.Join(cfg.StateDir, pendingCertificatesDir)); err != nil {
		t.Fatal(err)
	}
	fresh := startManager(t, cfg)
	if fresh.m.NodeID() == old {
		t.Fatalf("the new start kept the identity %s of the crashed one", old)
	}
	if fresh.m.sec.identity.ClusterID == tm.m.sec.identity.ClusterID {
		t.Fatal("the new start kept the crashed start's root CA")
	}
}
