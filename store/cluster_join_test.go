package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/shoal-project/shoal/raft/rafttest"
)

// TestClusterNewMemberGetsTheStore adds a member once the leader's log is
// compacted past its start: it needs a snapshot, and Raft refuses one that
// does not list it, so the leader must snapshot again after the addition
// rather than resend the one it had. The leader snapshots its last entry
// first, so that the join's configuration change does not itself reach
// the snapshot interval.
func TestClusterNewMemberGetsTheStore(t *testing.T) {
	const interval = 8
	c := newStoreCluster(t, 3, rafttest.Options{SnapshotInterval: interval, LogEntriesForSlowFollowers: 2, Timeout: 5 * time.Second})
	leader := storeOf(c.Leader())
	for i := 0; i < 3*interval || leader.lastSnapshot() != leader.Version(); i++ {
		createOne(t, c, obj("service", fmt.Sprint("s", i)))
		c.WaitApplied(c.Leader().Node().Status) // the leader's snapshot follows the apply
	}
	joined := c.AddMember()
	if _, restores := storeOf(joined).history(); len(restores) == 0 {
		t.Fatal("the new member replayed the whole log; it was not compacted")
	}
	c.requireSameStores(t)
}
