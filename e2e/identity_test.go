package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A manager that lost its Raft state but kept its certificates must not
// come back under its old Raft ID with an empty log: it refuses to start,
// saying what to do, and nothing acknowledged is lost. Removed and started
// again from an empty directory, it joins as a new member.
func TestManagerThatLostItsRaftStateIsRefused(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	for i := range 20 {
		mustShoal(t, "create", "item", fmt.Sprintf("item-%d", i), "--host", ms[i%3].addr)
	}
	before := names(t, "item", "--socket", ms[0].socket())
	lost := ms[2]
	oldNodeID, oldRaftID := lost.nodeID, lost.raftID
	if err := lost.terminate(); err != nil {
		t.Fatalf("stopping %s: %v", lost.name, err)
	}
	if err := os.RemoveAll(filepath.Join(lost.dir, "raft")); err != nil {
		t.Fatal(err)
	}

	lost.start() // the same command line, --join included
	if code := lost.waitExit(30 * time.Second); code == 0 {
		t.Fatalf("%s started without its Raft state:\n%s", lost.name, lost.out.String())
	}
	if out := lost.out.String(); !strings.Contains(out, "shoal node rm "+oldNodeID) {
		t.Fatalf("%s's refusal does not name the recovery ('shoal node rm %s'):\n%s", lost.name, oldNodeID, out)
	}
	for _, m := range members(t, "--socket", ms[0].socket()) {
		if m.NodeID == oldNodeID && m.RaftID != oldRaftID {
			t.Fatalf("%s has Raft ID %s now, was %s", oldNodeID, m.RaftID, oldRaftID)
		}
	}
	mustShoal(t, "create", "item", "while-refused", "--socket", ms[0].socket())

	// The recovery the message names: remove it, then join from scratch.
	mustShoal(t, "node", "rm", oldNodeID, "--socket", ms[0].socket())
	if err := os.RemoveAll(lost.dir); err != nil {
		t.Fatal(err)
	}
	again := startManager(t, "m3-again", lost.dir, "127.0.0.1:0", "--join", ms[0].addr)
	if again.nodeID == oldNodeID || again.raftID == oldRaftID {
		t.Fatalf("the manager joined again under its old identity %s/%s", again.nodeID, again.raftID)
	}
	waitFor(t, 30*time.Second, "the new member to be a voter with every object", func() (bool, string) {
		have := names(t, "item", "--socket", again.socket(), "--consistency", "serializable")
		for name, v := range before {
			if have[name] != v {
				return false, fmt.Sprintf("%s at version %d, want %d", name, have[name], v)
			}
		}
		if have["while-refused"] == 0 {
			return false, "missing while-refused"
		}
		for _, m := range decodeMembers(t, shoal(t, "node", "ls", "-o", "json", "--socket", ms[0].socket()).stdout) {
			if m.NodeID == again.nodeID {
				return m.Suffrage == "voter", "suffrage " + m.Suffrage
			}
		}
		return false, "not a member"
	})
}

// decodeMembers reads node ls -o json, with the fields of suffrage.
func decodeMembers(t *testing.T, s string) []struct {
	NodeID   string `json:"node_id"`
	RaftID   string `json:"raft_id"`
	Suffrage string `json:"suffrage"`
} {
	t.Helper()
	return decode[[]struct {
		NodeID   string `json:"node_id"`
		RaftID   string `json:"raft_id"`
		Suffrage string `json:"suffrage"`
	}](t, s)
}
