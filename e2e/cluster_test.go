package e2e

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// A cluster's life: bootstrap one, join two, write through a follower,
// read everywhere, lose the leader to kill -9 while writing, elect a new
// one, lose no acknowledged write, bring the dead manager back, and
// remove a member for good.
func TestClusterSurvivesTheLossOfItsLeader(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	if got := members(t, "--socket", ms[0].socket()); len(got) != 3 {
		t.Fatalf("node ls shows %d managers, want 3: %v", len(got), got)
	}

	leader := leaderOf(t, ms)
	var followers []*managerProc
	for _, m := range ms {
		if m != leader {
			followers = append(followers, m)
		}
	}
	t.Logf("leader %s; writing through follower %s", leader.name, followers[0].name)

	// Write through a follower; read back from every manager, over TCP
	// and the control socket.
	acked := map[string]bool{}
	for i := range 5 {
		name := fmt.Sprintf("before-%d", i)
		mustShoal(t, "create", "item", name, "--label", "phase=before", "--spec", fmt.Sprintf(`{"n": %d}`, i), "--host", followers[0].addr)
		acked[name] = true
	}
	created := decode[object](t, mustShoal(t, "get", "item", "before-0", "-o", "json", "--host", followers[0].addr))
	for _, m := range ms {
		for _, via := range [][]string{{"--host", m.addr}, {"--socket", m.socket()}} {
			got := decode[object](t, mustShoal(t, append([]string{"get", "item", "before-0", "-o", "json"}, via...)...))
			if got.Version != created.Version || got.ID != created.ID || compact(t, got.Spec) != `{"n":0}` {
				t.Fatalf("%s via %v: %+v, want %+v", m.name, via, got, created)
			}
		}
	}

	// Keep writing through a follower while the leader dies.
	stopWriting := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var afterKill int
	killed := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			name := fmt.Sprintf("during-%d", i)
			r := shoal(t, "create", "item", name, "--host", followers[0].addr, "--timeout", "5s")
			mu.Lock()
			switch r.code {
			case 0:
				acked[name] = true
				select {
				case <-killed:
					afterKill++
				default:
				}
			case 5: // no leader, or the outcome is unknown: not acknowledged
			default:
				t.Errorf("create %s during the failover: exit %d: %s", name, r.code, r.stderr)
			}
			mu.Unlock()
		}
	}()
	waitFor(t, 10*time.Second, "writes before the kill", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 8, fmt.Sprintf("%d acknowledged", len(acked))
	})

	leader.kill()
	close(killed)
	start := time.Now()
	var newLeader string
	waitFor(t, 20*electionTimeout, "a new leader", func() (bool, string) {
		r := shoal(t, "cluster", "info", "-o", "json", "--host", followers[1].addr, "--timeout", "1s")
		if r.code != 0 {
			return false, r.stderr
		}
		info := decode[clusterInfo](t, r.stdout)
		if info.LeaderRaftID == "" || info.LeaderRaftID == leader.raftID {
			return false, "leader " + info.LeaderRaftID
		}
		newLeader = info.LeaderRaftID
		return true, ""
	})
	// The new leader answers a linearizable read through either survivor.
	mustShoal(t, "ls", "item", "--host", followers[1].addr)
	elapsed := time.Since(start)
	t.Logf("new leader %s answers %v after the kill (election timeout %v)", newLeader, elapsed, electionTimeout)
	if elapsed > 10*electionTimeout {
		t.Errorf("a new leader took %v, more than 10 election timeouts", elapsed)
	}
	waitFor(t, 20*time.Second, "writes after the failover", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return afterKill >= 3, fmt.Sprintf("%d acknowledged after the kill", afterKill)
	})
	close(stopWriting)
	wg.Wait()

	// Every acknowledged object is on both survivors.
	for _, m := range followers {
		have := names(t, "item", "--host", m.addr)
		for name := range acked {
			if _, ok := have[name]; !ok {
				t.Errorf("%s lost acknowledged object %s", m.name, name)
			}
		}
	}
	t.Logf("%d objects acknowledged, all present", len(acked))

	// The killed manager restarts from its directory and catches up.
	leader.restart()
	waitFor(t, 20*time.Second, leader.name+" to catch up", func() (bool, string) {
		r := shoal(t, "ls", "item", "-o", "json", "--consistency", "serializable", "--socket", leader.socket())
		if r.code != 0 {
			return false, r.stderr
		}
		list := decode[objectList](t, r.stdout)
		have := map[string]bool{}
		for _, o := range list.Items {
			have[o.Name] = true
		}
		for name := range acked {
			if !have[name] {
				return false, "missing " + name
			}
		}
		return true, ""
	})
	for _, m := range members(t, "--socket", leader.socket()) {
		if !m.Reachable {
			t.Errorf("after the restart, %s is not reachable: %+v", m.NodeID, m)
		}
	}

	// Remove a follower through the other one: the removed process stops
	// with a clear word.
	alive := []*managerProc{leader, followers[0], followers[1]}
	current := leaderOf(t, alive)
	var others []*managerProc
	for _, m := range alive {
		if m != current {
			others = append(others, m)
		}
	}
	gone, keep := others[0], others[1]
	t.Logf("removing %s through %s; %s leads", gone.name, keep.name, current.name)
	out := mustShoal(t, "node", "rm", gone.nodeID, "--host", keep.addr)
	if !strings.Contains(out, "removed manager "+gone.nodeID) {
		t.Errorf("node rm printed %q", out)
	}
	if code := gone.waitExit(20 * time.Second); code == 0 {
		t.Errorf("the removed manager exited with 0")
	}
	if log := gone.out.String(); !strings.Contains(log, "removed from the cluster") {
		t.Errorf("the removed manager's log does not say it was removed:\n%s", log)
	}
	r := shoal(t, "node", "ls", "--socket", keep.socket())
	if r.code != 0 || strings.Contains(r.stdout, gone.nodeID) {
		t.Fatalf("node ls after the removal: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "warning: 2 voting managers tolerate no failure; run an odd number of voters (3 or 5)") {
		t.Errorf("node ls of 2 managers does not warn: %q", r.stderr)
	}
	// The two left still write.
	mustShoal(t, "create", "item", "after-removal", "--socket", keep.socket())
	if got := names(t, "item", "--socket", keep.socket()); got["after-removal"] == 0 {
		t.Errorf("after-removal missing on %s: %v", keep.name, slices.Sorted(maps.Keys(got)))
	}
}
