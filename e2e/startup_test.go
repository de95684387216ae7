package e2e

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// stateLeft returns what of a manager's state dir holds: certificates,
// pending certificates, data keys, Raft state, control socket.
func stateLeft(t *testing.T, dir string) []string {
	t.Helper()
	var left []string
	for _, name := range []string{"certificates", "certificates.pending", "keys", "raft", "control.sock"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			left = append(left, name)
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	return left
}

// runManager runs 'shoal manager' with args, for a start expected to fail,
// and returns what it did.
func runManager(t *testing.T, args ...string) result {
	t.Helper()
	return shoal(t, append([]string{"manager", "--tick", tick.String(), "--election-tick", fmt.Sprint(electionTick)}, args...)...)
}

// A manager whose address is taken exits with 2 and a message saying so
// before it writes anything or contacts the cluster: a joiner does not
// become a member first. (A taken --metrics-addr used to be found only
// after the join.)
func TestStartWithATakenAddressWritesNothing(t *testing.T) {
	t.Parallel()
	first := startCluster(t, 1)[0]
	base := filepath.Dir(first.dir)
	token := strings.TrimSpace(mustShoal(t, "cluster", "join-token", "manager", "-q", "--socket", first.socket()))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	taken := lis.Addr().String()

	tests := []struct {
		name  string
		flags []string
		want  string
	}{
		{"listen address", []string{"--listen-addr", taken},
			"--listen-addr " + taken + " is in use by another process: choose another address"},
		{"metrics address", []string{"--listen-addr", "127.0.0.1:0", "--metrics-addr", taken},
			"--metrics-addr " + taken + " is in use by another process: choose another address"},
	}
	n := 0
	for _, join := range []bool{false, true} {
		for _, tt := range tests {
			name := tt.name
			if join {
				name += ", joining"
			}
			t.Run(name, func(t *testing.T) {
				n++
				dir := filepath.Join(base, fmt.Sprintf("r%d", n))
				args := append([]string{"--state-dir", dir}, tt.flags...)
				if join {
					args = append(args, "--join", first.addr, "--token", token)
				}
				r := runManager(t, args...)
				if r.code != 2 || !strings.Contains(r.stderr, tt.want) {
					t.Fatalf("exit %d, want 2 saying %q:\n%s", r.code, tt.want, r.stderr)
				}
				if left := stateLeft(t, dir); len(left) > 0 {
					t.Errorf("the refused start left %v in %s", left, dir)
				}
				if got := members(t, "--socket", first.socket()); len(got) != 1 {
					t.Errorf("the cluster has %d members after the refused start, want 1: %+v", len(got), got)
				}
			})
		}
	}
}

// A manager whose Raft state was lost but whose certificates remain is
// refused, the first manager as well as a joiner, with a message that says
// how to recover; done as it says, the manager joins again as a new one.
func TestManagerThatLostItsRaftStateIsRefused(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	tests := []struct {
		name string
		m    *managerProc
	}{
		{"first manager", startCluster(t, 1)[0]}, // a cluster of its own
		{"joiner", ms[2]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.m
			if err := m.terminate(); err != nil {
				t.Fatalf("stopping %s: %v", m.name, err)
			}
			if err := os.RemoveAll(filepath.Join(m.dir, "raft")); err != nil {
				t.Fatal(err)
			}
			r := shoal(t, m.args...)
			want := "has this manager's certificates (node ID " + m.nodeID + ") but no Raft state"
			if r.code != 1 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stderr, "shoal node rm "+m.nodeID) {
				t.Fatalf("exit %d, want 1 saying %q and how to remove it:\n%s", r.code, want, r.stderr)
			}
			if left := stateLeft(t, m.dir); strings.Join(left, ",") != "certificates,keys" {
				t.Errorf("after the refusal %s holds %v, want its certificates and keys untouched", m.dir, left)
			}
		})
	}
	if got := members(t, "--socket", ms[0].socket()); len(got) != 3 {
		t.Fatalf("the cluster has %d members after the refusal, want 3: %+v", len(got), got)
	}

	// The recovery the message gives.
	lost := ms[2]
	mustShoal(t, "node", "rm", lost.nodeID, "--socket", ms[0].socket())
	if err := os.RemoveAll(lost.dir); err != nil {
		t.Fatal(err)
	}
	again := startManager(t, "m3-again", lost.dir, "127.0.0.1:0", "--join", ms[0].addr)
	if again.nodeID == lost.nodeID {
		t.Fatalf("the manager came back under its old node ID %s", lost.nodeID)
	}
	got := members(t, "--socket", ms[0].socket())
	if len(got) != 3 {
		t.Fatalf("after the recovery the cluster has %d members, want 3: %+v", len(got), got)
	}
	for _, mem := range got {
		if mem.NodeID == lost.nodeID {
			t.Errorf("the lost manager's old identity is still a member: %+v", got)
		}
	}
}

// A join that fails leaves the state directory as it found it, so the same
// command, corrected, works.
func TestFailedJoinCanBeRetried(t *testing.T) {
	t.Parallel()
	first := startCluster(t, 1)[0]
	dir := filepath.Join(filepath.Dir(first.dir), "m2")
	token := strings.TrimSpace(mustShoal(t, "cluster", "join-token", "manager", "-q", "--socket", first.socket()))
	i := strings.LastIndex(token, "-") + 1
	wrongSecret := token[:i] + strings.Repeat("0", len(token)-i)

	tests := []struct {
		name       string
		join, tok  string
		wantStderr string
	}{
		{"nothing listens at the address", freeAddr(t), token, "getting a certificate from"},
		{"wrong token", first.addr, wrongSecret, "token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runManager(t, "--state-dir", dir, "--listen-addr", "127.0.0.1:0", "--join", tt.join, "--token", tt.tok)
			if r.code == 0 || !strings.Contains(r.stderr, tt.wantStderr) {
				t.Fatalf("exit %d, want a failure saying %q:\n%s", r.code, tt.wantStderr, r.stderr)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the failed join left %s (%v), holding %v", dir, err, stateLeft(t, dir))
			}
		})
	}
	if got := members(t, "--socket", first.socket()); len(got) != 1 {
		t.Fatalf("the cluster has %d members after the failed joins, want 1: %+v", len(got), got)
	}
	startManager(t, "m2", dir, "127.0.0.1:0", "--join", first.addr, "--token", token)
	if got := members(t, "--socket", first.socket()); len(got) != 2 {
		t.Fatalf("the cluster has %d members after the retry, want 2: %+v", len(got), got)
	}
}
