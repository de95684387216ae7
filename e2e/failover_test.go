package e2e

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Writes through a follower while the leader dies do not fail: the
// follower holds each one through the election and forwards it to the new
// leader, and a create whose first attempt may have gone through is
// recognised as the caller's own when retried.
func TestWritesThroughAFollowerSurviveTheLeadersDeath(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	leader := leaderOf(t, ms)
	var follower *managerProc
	for _, m := range ms {
		if m != leader {
			follower = m
			break
		}
	}
	t.Logf("leader %s; writing through follower %s", leader.name, follower.name)

	// The creates run one after another, as a script would; the leader is
	// killed as soon as the 50th is acknowledged, so the 51st is often in
	// flight when it dies.
	const total, killAt = 150, 50
	var done atomic.Int32
	failed := make(chan string, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := range total {
			name := fmt.Sprintf("item-%03d", i)
			r := shoal(t, "create", "item", name, "--label", "run=failover", "--spec", fmt.Sprintf(`{"n": %d}`, i),
				"--host", follower.addr, "--timeout", "20s")
			if r.code != 0 {
				failed <- fmt.Sprintf("create %s (number %d): exit %d: %s", name, i, r.code, r.stderr)
				return
			}
			done.Add(1)
		}
	}()
	waitFor(t, time.Minute, fmt.Sprintf("%d creates", killAt), func() (bool, string) {
		return done.Load() >= killAt, fmt.Sprintf("%d done", done.Load())
	})
	leader.kill()
	t.Logf("killed the leader %s with SIGKILL after %d creates", leader.name, done.Load())
	select {
	case <-finished:
	case <-time.After(5 * time.Minute):
		t.Fatalf("the creates did not finish within 5 minutes: %d done", done.Load())
	}
	select {
	case msg := <-failed:
		t.Fatalf("a create failed during the failover: %s", msg)
	default:
	}

	// The managers logged their version when they started serving.
	if out := follower.out.String(); !strings.Contains(out, "manager ready") || !strings.Contains(out, "go="+runtime.Version()) {
		t.Errorf("%s did not log its version at start:\n%s", follower.name, out)
	}

	have := names(t, "item", "--host", follower.addr)
	if len(have) != total {
		t.Fatalf("%d items exist, want %d", len(have), total)
	}
	for i := range total {
		if _, ok := have[fmt.Sprintf("item-%03d", i)]; !ok {
			t.Errorf("item-%03d is missing", i)
		}
	}
}

// A cluster that lost its quorum: a write waits for a leader for as long as
// --timeout says, not a fixed time; node ls and cluster info answer at once
// from the survivor's own view, say so, and warn that the quorum is lost.
func TestWithoutAQuorumCallsWaitTheirTimeoutAndListingsAnswer(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	survivor := ms[0]
	for _, m := range ms {
		waitMember(t, 20*time.Second, m.name+" to vote", m.nodeID, isVoter, "--socket", survivor.socket())
	}
	for _, m := range ms[1:] {
		m.kill()
	}
	// Once the survivor knows it leads no one, node ls answers from its view.
	waitFor(t, 20*electionTimeout, "the survivor to see no leader", func() (bool, string) {
		r := shoal(t, "node", "ls", "--socket", survivor.socket(), "--timeout", "5s")
		if r.code != 0 {
			return false, fmt.Sprintf("exit %d: %s", r.code, r.stderr)
		}
		return strings.Contains(r.stderr, "own view"), r.stdout + r.stderr
	})
	for _, args := range [][]string{{"node", "ls"}, {"cluster", "info"}} {
		r := shoal(t, append(args, "--socket", survivor.socket(), "--timeout", "5s")...)
		if r.code != 0 {
			t.Fatalf("%v without a quorum: exit %d: %s", args, r.code, r.stderr)
		}
		for _, want := range []string{"own view", "only 1 of 3 voting managers are reachable"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%v without a quorum: stderr %q lacks %q", args, r.stderr, want)
			}
		}
	}

	// A write waits out its whole --timeout for a leader (well past the
	// two election timeouts it used to give up after), then says why.
	const timeout = 4 * time.Second
	start := time.Now()
	r := shoal(t, "create", "item", "x", "--socket", survivor.socket(), "--timeout", timeout.String())
	waited := time.Since(start)
	if r.code != 5 {
		t.Fatalf("create without a quorum: exit %d, want 5: %s", r.code, r.stderr)
	}
	if waited < timeout {
		t.Errorf("create without a quorum gave up after %v, before its --timeout %v: %s", waited, timeout, r.stderr)
	}
}
