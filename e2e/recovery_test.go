package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// When two of three managers are lost for good, the third restarts with
// --force-new-cluster as a one-manager cluster with every object, and new
// managers join it.
func TestForceNewClusterAfterLosingTheQuorum(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	for i := range 5 {
		mustShoal(t, "create", "item", fmt.Sprintf("item-%d", i), "--spec", fmt.Sprintf(`{"n": %d}`, i), "--host", ms[i%3].addr)
	}
	before := names(t, "item", "--socket", ms[0].socket())

	ms[1].kill()
	ms[2].kill()
	// Without a quorum, writes fail as unavailable.
	if r := shoal(t, "create", "item", "lost", "--socket", ms[0].socket(), "--timeout", "5s"); r.code != 5 {
		t.Fatalf("a write without quorum: exit %d, want 5: %s", r.code, r.stderr)
	}
	if err := ms[0].terminate(); err != nil {
		t.Fatalf("stopping the survivor: %v", err)
	}

	ms[0].restart("--force-new-cluster")
	got := members(t, "--socket", ms[0].socket())
	if len(got) != 1 || got[0].NodeID != ms[0].nodeID || got[0].Role != "leader" {
		t.Fatalf("after --force-new-cluster, node ls shows %+v", got)
	}
	after := names(t, "item", "--socket", ms[0].socket())
	for name, v := range before {
		if after[name] != v {
			t.Errorf("%s: version %d after --force-new-cluster, want %d", name, after[name], v)
		}
	}
	mustShoal(t, "create", "item", "reborn", "--socket", ms[0].socket())

	// A new manager joins the new cluster and sees everything.
	joined := startManager(t, "m4", filepath.Join(filepath.Dir(ms[0].dir), "m4"), "127.0.0.1:0", "--join", ms[0].addr)
	waitFor(t, 20*time.Second, "m4 to have every object", func() (bool, string) {
		have := names(t, "item", "--socket", joined.socket())
		for name := range before {
			if _, ok := have[name]; !ok {
				return false, "missing " + name
			}
		}
		return have["reborn"] != 0, "missing reborn"
	})
	r := shoal(t, "node", "ls", "--host", joined.addr)
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 {
		t.Fatalf("node ls: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
