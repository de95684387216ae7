package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/client"
)

// A start that fails does not weaken the cluster: a manager whose metrics
// port is taken is refused before it contacts the cluster, so the three
// voters still tolerate the loss of one; started again without the clash,
// the manager joins, catches up as a learner, becomes a voter and has every
// object. (A joiner that dies after its join was answered is a learner,
// which counts toward no quorum: the robustness suite kills joiners at the
// crash points around the join.)
func TestAFailedStartDoesNotWeakenTheCluster(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	waitVoters(t, ms, 3)
	for i := range 10 {
		mustShoal(t, "create", "item", fmt.Sprintf("before-%d", i), "--spec", fmt.Sprintf(`{"n": %d}`, i), "--socket", ms[i%3].socket())
	}

	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	listen := freeAddr(t)
	failed := launchManager(t, "m4", filepath.Join(filepath.Dir(ms[0].dir), "m4"), listen,
		"--join", ms[2].addr, "--metrics-addr", taken.Addr().String())
	if code := failed.waitExit(60 * time.Second); code != 2 {
		t.Fatalf("m4 exited with %d although its metrics address was taken, want 2:\n%s", code, failed.out.String())
	}
	if firstRun := failed.out.String(); !strings.Contains(firstRun, "--metrics-addr "+taken.Addr().String()+" is in use") {
		t.Errorf("m4's log does not say why it stopped:\n%s", firstRun)
	}
	got := members(t, "--socket", ms[0].socket())
	if vs, _ := voters(got); len(vs) != 3 || len(got) != 3 {
		t.Fatalf("after the failed start, %d voters of %d members, want 3 of 3: %+v", len(vs), len(got), got)
	}

	// The three survive the loss of one, the leader.
	leader := leaderOf(t, ms)
	leader.kill()
	var survivors []*managerProc
	for _, m := range ms {
		if m != leader {
			survivors = append(survivors, m)
		}
	}
	acked := map[string]bool{}
	attempt := 0
	waitFor(t, 30*time.Second, "a write after the leader's kill", func() (bool, string) {
		attempt++
		name := fmt.Sprintf("after-kill-%d", attempt)
		r := shoal(t, "create", "item", name, "--socket", survivors[attempt%2].socket(), "--timeout", "5s")
		if r.code != 0 {
			return false, r.stderr
		}
		acked[name] = true
		return true, ""
	})

	// Started again without the clash, m4 catches up and is promoted.
	if i := slices.Index(failed.args, "--metrics-addr"); i >= 0 {
		failed.args = slices.Delete(failed.args, i, i+2)
	}
	failed.start()
	failed.waitServing()
	failed.register()
	if failed.addr != listen {
		t.Errorf("m4 listens on %s, want %s", failed.addr, listen)
	}
	waitMember(t, 60*time.Second, "m4 to become a voter", failed.nodeID, isVoter, "--socket", survivors[0].socket())

	want := map[string]bool{}
	for i := range 10 {
		want[fmt.Sprintf("before-%d", i)] = true
	}
	for name := range acked {
		want[name] = true
	}
	serializable := []string{"--consistency", "serializable", "--socket", failed.socket()}
	waitFor(t, 30*time.Second, "m4's store to hold every object", func() (bool, string) {
		list := decode[objectList](t, mustShoal(t, append([]string{"ls", "item", "-o", "json"}, serializable...)...))
		var have []string
		for _, o := range list.Items {
			have = append(have, o.Name)
		}
		for name := range want {
			if !slices.Contains(have, name) {
				return false, "missing " + name
			}
		}
		return true, ""
	})
	got3 := decode[object](t, mustShoal(t, append([]string{"get", "item", "before-3", "-o", "json"}, serializable...)...))
	if compact(t, got3.Spec) != `{"n":3}` {
		t.Errorf("m4 has before-3 with spec %s", got3.Spec)
	}
}

// waitVoters waits until every manager of ms is a voter, and there are n.
func waitVoters(t *testing.T, ms []*managerProc, n int) {
	t.Helper()
	waitFor(t, 60*time.Second, fmt.Sprintf("%d voters", n), func() (bool, string) {
		r := shoal(t, "node", "ls", "-o", "json", "--socket", ms[0].socket(), "--timeout", "5s")
		if r.code != 0 {
			return false, r.stderr
		}
		got := decode[[]member](t, r.stdout)
		vs, _ := voters(got)
		for _, m := range ms {
			if mem, ok := memberOf(got, m.nodeID); !ok || mem.Suffrage != "voter" {
				return false, r.stdout
			}
		}
		return len(vs) == n, r.stdout
	})
}

// membershipChange is one "membership changed" line of a manager's log.
type membershipChange struct{ change, peer string }

var membershipChangeLine = regexp.MustCompile(`msg="membership changed".* change=(\S+) peer=(\S+)`)

// membershipChanges returns the membership changes a manager's log shows it
// applied, in order.
func membershipChanges(log string) []membershipChange {
	var out []membershipChange
	for _, line := range strings.Split(log, "\n") {
		if m := membershipChangeLine.FindStringSubmatch(line); m != nil {
			out = append(out, membershipChange{m[1], m[2]})
		}
	}
	return out
}

// learnerThenVoter tells whether changes add raftID as a learner, then make
// it a voter.
func learnerThenVoter(changes []membershipChange, raftID string) bool {
	learner := slices.Index(changes, membershipChange{"ConfChangeAddLearnerNode", raftID})
	voter := slices.Index(changes, membershipChange{"ConfChangeAddNode", raftID})
	return learner >= 0 && voter > learner
}

// Five managers, joined one at a time while a client writes: each joins as
// a learner and becomes a voter once caught up; at no moment does the
// quorum of voters exceed the reachable voters, and every acknowledged
// write is on every manager at the end.
func TestFiveManagersJoinOneAtATimeUnderWrites(t *testing.T) {
	t.Parallel()
	base := shortTempDir(t)
	m1 := startManager(t, "m1", filepath.Join(base, "m1"), "127.0.0.1:0")
	ms := []*managerProc{m1}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.New(ctx, client.Config{SocketPath: m1.socket()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var (
		mu       sync.Mutex
		acked    []string
		unknown  int
		wg       sync.WaitGroup
		samples  int
		learners = map[string]bool{} // node IDs node ls showed as learners
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			name := fmt.Sprintf("w-%d", i)
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := c.Create(wctx, &api.Object{Kind: "item", Name: name})
			wcancel()
			mu.Lock()
			switch {
			case err == nil:
				acked = append(acked, name)
			case ctx.Err() != nil:
			case client.IsUnavailable(err):
				unknown++ // not acknowledged; it may or may not be there
			default:
				t.Errorf("create %s: %v", name, err)
			}
			mu.Unlock()
		}
	}()
	// The sampler checks every answer of node ls: the voters that must
	// agree never outnumber the voters that answer.
	sampling := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-sampling:
				return
			default:
			}
			r := shoal(t, "node", "ls", "-o", "json", "--socket", m1.socket(), "--timeout", "5s")
			if r.code != 0 {
				continue
			}
			var got []member
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Errorf("node ls -o json: %v\n%s", err, r.stdout)
				return
			}
			if !slices.ContainsFunc(got, func(m member) bool { return m.Role == "leader" }) {
				continue // a follower's view, without a leader
			}
			vs, reachable := voters(got)
			mu.Lock()
			samples++
			if quorum := len(vs)/2 + 1; quorum > reachable {
				t.Errorf("sample %d: %d voters need %d to agree, but %d are reachable: %+v", samples, len(vs), quorum, reachable, got)
			}
			for _, m := range got {
				if m.Suffrage == "learner" {
					learners[m.NodeID] = true
				}
			}
			mu.Unlock()
		}
	}()
	waitFor(t, 20*time.Second, "writes before the first join", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 20, fmt.Sprintf("%d acknowledged", len(acked))
	})

	for i := 2; i <= 5; i++ {
		name := fmt.Sprintf("m%d", i)
		m := startManager(t, name, filepath.Join(base, name), "127.0.0.1:0", "--join", ms[len(ms)-1].addr)
		ms = append(ms, m)
		waitMember(t, 60*time.Second, name+" to become a voter", m.nodeID, isVoter, "--socket", ms[0].socket())
		mu.Lock()
		t.Logf("%s is a voter; %d writes acknowledged", name, len(acked))
		mu.Unlock()
	}
	// A few more writes with five voters, then stop.
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	waitFor(t, 20*time.Second, "writes with five voters", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= n+20, fmt.Sprintf("%d acknowledged", len(acked))
	})
	close(sampling)
	cancel()
	wg.Wait()
	t.Logf("%d writes acknowledged, %d with an unknown outcome; %d node ls samples, which saw %d joiners as learners",
		len(acked), unknown, samples, len(learners))

	final := members(t, "--socket", ms[0].socket())
	if vs, reachable := voters(final); len(vs) != 5 || reachable != 5 {
		t.Errorf("at the end, %d voters, %d reachable, want 5 and 5: %+v", len(vs), reachable, final)
	}
	// Each joiner was a learner before it was a voter: its own log says
	// so when it applied its own addition, and else node ls saw it (a
	// joiner that was sent a snapshot starts from a membership in which
	// it is a learner already), or else the founder's log, which holds
	// every change.
	founder := membershipChanges(ms[0].out.String())
	for _, m := range ms[1:] {
		own := membershipChanges(m.out.String())
		if !slices.Contains(own, membershipChange{"ConfChangeAddNode", m.raftID}) {
			t.Errorf("%s's log does not show its promotion (%s): %v", m.name, m.raftID, own)
		}
		mu.Lock()
		seen := learners[m.nodeID]
		mu.Unlock()
		switch {
		case learnerThenVoter(own, m.raftID):
			t.Logf("%s: its log shows it added as a learner, then made a voter", m.name)
		case seen:
			t.Logf("%s: node ls showed it as a learner before it was a voter", m.name)
		case learnerThenVoter(founder, m.raftID):
			t.Logf("%s: m1's log shows it added as a learner, then made a voter", m.name)
		default:
			t.Errorf("nothing shows that %s (%s) was a learner before it was a voter; its changes: %v; m1's: %v",
				m.name, m.raftID, own, founder)
		}
		if slices.Contains(founder, membershipChange{"ConfChangeAddNode", m.raftID}) &&
			!learnerThenVoter(founder, m.raftID) {
			t.Errorf("m1's log shows %s made a voter without being a learner first: %v", m.name, founder)
		}
	}

	// Every acknowledged write is on every manager.
	for _, m := range ms {
		have := names(t, "item", "--socket", m.socket())
		missing := 0
		for _, name := range acked {
			if _, ok := have[name]; !ok {
				if missing < 5 {
					t.Errorf("%s lacks acknowledged object %s", m.name, name)
				}
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s lacks %d of %d acknowledged objects", m.name, missing, len(acked))
		}
	}
}

// promote and demote through the CLI: a manager started with --learner
// stays a learner until promoted; demoting the leader hands leadership over
// first; a demotion that would leave the other voters without a reachable
// quorum is refused with exit code 4.
func TestPromoteAndDemoteThroughTheCLI(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	waitVoters(t, ms, 3)
	replica := startManager(t, "m4", filepath.Join(filepath.Dir(ms[0].dir), "m4"), "127.0.0.1:0",
		"--join", ms[2].addr, "--learner")
	via := []string{"--socket", ms[0].socket()}

	// A learner for good: caught up, reachable, and still a learner.
	mustShoal(t, "create", "item", "seen-by-the-learner", "--socket", ms[1].socket())
	l := waitMember(t, 30*time.Second, "m4 to catch up", replica.nodeID, isCaughtUpLearner, via...)
	if l.AutoPromote {
		t.Errorf("a --learner manager is to be promoted: %+v", l)
	}
	// It serves linearizable reads.
	mustShoal(t, "get", "item", "seen-by-the-learner", "--socket", replica.socket())
	r := shoal(t, append([]string{"node", "ls"}, via...)...)
	if r.code != 0 {
		t.Fatalf("node ls: exit %d: %s", r.code, r.stderr)
	}
	if line := lineWith(r.stdout, replica.nodeID); !strings.Contains(line, " learner ") || strings.Contains(line, "to be promoted") {
		t.Errorf("node ls shows m4 as %q, want a learner not to be promoted", line)
	}
	if r.stderr != "" {
		t.Errorf("node ls of 3 voters and a learner for good warns: %q", r.stderr)
	}
	if vs, _ := voters(members(t, via...)); len(vs) != 3 {
		t.Errorf("%d voters, want 3", len(vs))
	}

	// promote makes it a voter.
	out := mustShoal(t, "node", "promote", replica.nodeID, "--socket", ms[2].socket())
	if out != "manager "+replica.nodeID+" is a voter\n" {
		t.Errorf("node promote printed %q", out)
	}
	if m, _ := memberOf(members(t, via...), replica.nodeID); m.Suffrage != "voter" {
		t.Errorf("after node promote, m4 is %+v", m)
	}
	r = shoal(t, append([]string{"node", "ls"}, via...)...)
	if !strings.Contains(r.stderr, "warning: 4 voting managers tolerate only 1 failure") {
		t.Errorf("node ls of 4 voters does not warn: %q", r.stderr)
	}

	// Demoting the leader, asked of a follower: leadership moves first,
	// and the old leader is a learner that is not to be promoted.
	all := append(slices.Clone(ms), replica)
	leader := leaderOf(t, all)
	var follower *managerProc
	for _, m := range all {
		if m != leader {
			follower = m
			break
		}
	}
	t.Logf("demoting the leader %s through %s", leader.name, follower.name)
	out = mustShoal(t, "node", "demote", leader.nodeID, "--host", follower.addr)
	if !strings.HasPrefix(out, "manager "+leader.nodeID+" is a learner") {
		t.Errorf("node demote printed %q", out)
	}
	got := members(t, "--socket", follower.socket())
	old, _ := memberOf(got, leader.nodeID)
	if old.Suffrage != "learner" || old.AutoPromote || old.Role == "leader" {
		t.Errorf("the demoted leader is %+v, want a follower learner not to be promoted", old)
	}
	if vs, _ := voters(got); len(vs) != 3 {
		t.Errorf("after demoting the leader, %d voters, want 3: %+v", len(vs), got)
	}
	info := decode[clusterInfo](t, mustShoal(t, "cluster", "info", "-o", "json", "--socket", leader.socket()))
	if info.LeaderRaftID == "" || info.LeaderRaftID == leader.raftID {
		t.Errorf("after its demotion, the old leader sees leader %q", info.LeaderRaftID)
	}
	// The demoted manager keeps the log: a write reaches it.
	mustShoal(t, "create", "item", "after-demotion", "--socket", follower.socket())
	waitFor(t, 20*time.Second, "the demoted manager to apply a write", func() (bool, string) {
		r := shoal(t, "get", "item", "after-demotion", "--consistency", "serializable", "--socket", leader.socket())
		return r.code == 0, r.stderr
	})

	// Stop a voter that does not lead; demoting another would leave the
	// other two voters with one reachable: refused, and nothing changes.
	current := leaderOf(t, all)
	var others []*managerProc
	for _, m := range all {
		if m != current && m != leader {
			others = append(others, m)
		}
	}
	stopped, kept := others[0], others[1]
	if err := stopped.terminate(); err != nil {
		t.Fatalf("stopping %s: %v", stopped.name, err)
	}
	waitMember(t, 30*time.Second, stopped.name+" to be unreachable", stopped.nodeID,
		func(m member) bool { return !m.Reachable }, "--socket", current.socket())
	r = shoal(t, "node", "demote", kept.nodeID, "--socket", current.socket())
	checkFailure(t, r, 4, "would leave the other voters without a reachable quorum")
	if m, _ := memberOf(members(t, "--socket", current.socket()), kept.nodeID); m.Suffrage != "voter" {
		t.Errorf("after the refused demotion, %s is %+v", kept.name, m)
	}
	mustShoal(t, "create", "item", "after-refusal", "--socket", kept.socket())
}

// lineWith returns the first line of s that holds sub.
func lineWith(s, sub string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}

// The last voter cannot be demoted: the refusal is a conflict (exit code
// 4), not an unavailable cluster to wait for, and it comes before the
// leader tries to hand over leadership.
func TestDemotingTheLastVoterIsRefused(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 1)
	replica := startManager(t, "m2", filepath.Join(filepath.Dir(ms[0].dir), "m2"), "127.0.0.1:0",
		"--join", ms[0].addr, "--learner")
	waitMember(t, 30*time.Second, "m2 to catch up", replica.nodeID, isCaughtUpLearner, "--socket", ms[0].socket())
	start := time.Now()
	r := shoal(t, "node", "demote", ms[0].nodeID, "--socket", ms[0].socket(), "--timeout", "5s")
	t.Logf("node demote of the last voter: exit %d after %v: %s", r.code, time.Since(start).Round(time.Millisecond), r.stderr)
	checkFailure(t, r, 4, "voter")
	if m, _ := memberOf(members(t, "--socket", ms[0].socket()), ms[0].nodeID); m.Suffrage != "voter" || m.Role != "leader" {
		t.Errorf("after the refused demotion, m1 is %+v", m)
	}
}
