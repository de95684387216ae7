package manager

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
)

// stateNames are the entries of a state directory that make a manager's
// state.
var stateNames = []string{ca.CertificatesDir, keysDirName, raftDirName, SocketName}

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
