package raft_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/membership"
	"github.com/shoal-project/shoal/raft/rafttest"
)

func TestMembersJoinAndAreRemoved(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	c.MustPropose("before")
	fourth := c.AddMember()
	fifth := c.AddMember()
	c.MustPropose("five members")
	c.WaitApplied(c.Leader().Node().Status)
	sameLogs(t, c, c.Leader().Log().Payloads())
	for _, m := range c.Running() {
		if got := len(m.Node().Cluster().Members()); got != 5 {
			t.Fatalf("%s knows %d members, want 5", m.NodeID, got)
		}
	}

	// Remove the fourth member: it applies its own removal and stops.
	leader := c.Leader()
	removedID := fourth.ID()
	if err := leader.Node().RemoveMember(context.Background(), removedID, false); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if err := fourth.RunErr(); !errors.Is(err, raft.ErrMemberRemoved) {
		t.Fatalf("removed member's Run returned %v, want ErrMemberRemoved", err)
	}
	_ = fourth.Stop()
	c.MustPropose("after removal")
	for _, m := range c.Running() {
		c.WaitFor("the removal to be applied everywhere", func() bool { return m.Node().Cluster().IsRemoved(removedID) })
	}
	if err := leader.Node().RemoveMember(context.Background(), removedID, false); !errors.Is(err, membership.ErrMemberRemoved) {
		t.Fatalf("removing again: err = %v, want ErrMemberRemoved", err)
	}

	// A new member never gets the removed ID.
	sixth := c.AddMember()
	if sixth.ID() == removedID {
		t.Fatal("a removed Raft ID was reused")
	}
	_ = fifth
}

// TestChangesThatBreakQuorumAreRefused removes or demotes a healthy voter
// of three while another is down: refused, since the voters left would
// have no reachable quorum. The same change of the voter that is down is
// allowed.
func TestChangesThatBreakQuorumAreRefused(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		change  func(n *raft.Node, id uint64) error
		refused error
	}{
		{"remove", func(n *raft.Node, id uint64) error { return n.RemoveMember(ctx, id, false) }, membership.ErrCannotRemove},
		{"demote", func(n *raft.Node, id uint64) error { return n.Demote(ctx, id) }, membership.ErrCannotDemote},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rafttest.NewCluster(t, 3, rafttest.Options{})
			followers := c.Followers()
			down, healthy := followers[0], followers[1]
			if err := down.Stop(); err != nil {
				t.Fatal(err)
			}
			leader := c.Leader()
			c.WaitFor("the leader to see the stopped member unreachable", func() bool {
				st, _ := leader.Node().Status()
				for _, m := range st.Members {
					if m.RaftID == down.ID() {
						return !m.Reachable
					}
				}
				return false
			})
			if err := tt.change(leader.Node(), healthy.ID()); !errors.Is(err, tt.refused) {
				t.Fatalf("%s of a healthy voter with one down: %v, want %v", tt.name, err, tt.refused)
			}
			if err := tt.change(leader.Node(), down.ID()); err != nil {
				t.Fatalf("%s of the stopped voter: %v", tt.name, err)
			}
			if got := len(leader.Node().Cluster().Voters()); got != 2 {
				t.Fatalf("%d voters, want 2", got)
			}
			c.MustPropose("two voters")
		})
	}
}

func TestRemovedMemberThatMissedItsRemovalStops(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	leader := c.Leader()
	cut := c.Followers()[0]
	var rest []*rafttest.Member
	for _, m := range c.Running() {
		if m != cut {
			rest = append(rest, m)
		}
	}
	c.Partition([]*rafttest.Member{cut}, rest)
	c.WaitFor("the leader to see the cut member unreachable", func() bool {
		st, _ := leader.Node().Status()
		for _, m := range st.Members {
			if m.RaftID == cut.ID() {
				return !m.Reachable
			}
		}
		return false
	})
	if err := leader.Node().RemoveMember(context.Background(), cut.ID(), false); err != nil {
		t.Fatalf("remove: %v", err)
	}
	// Once the link is back, the peers refuse its messages and it stops.
	c.Heal()
	if err := cut.RunErr(); !errors.Is(err, raft.ErrMemberRemoved) {
		t.Fatalf("Run of the removed member returned %v, want ErrMemberRemoved", err)
	}
}

func TestRestartAtNewAddressUpdatesIt(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	moved := c.Followers()[0]
	id := moved.ID()
	if err := moved.Stop(); err != nil {
		t.Fatal(err)
	}
	newAddr := c.FreeAddr()
	moved.RestartAt(newAddr)
	if moved.ID() != id {
		t.Fatalf("the restarted member has Raft ID %x, want %x", moved.ID(), id)
	}
	for _, m := range c.Running() {
		c.WaitFor("the new address everywhere", func() bool {
			got, _ := m.Node().Cluster().Get(id)
			return got.Addr == newAddr
		})
	}
	index := c.MustPropose("after the move")
	c.WaitAppliedIndex(index)
}

func TestJoinOfAMemberIsRefused(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	followers := c.Followers()
	conn, err := grpc.NewClient(followers[0].Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := followers[1]
	// Through a follower, so the call is forwarded to the leader: a node
	// that lost its Raft state must not get its old Raft ID back.
	_, err = api.NewRaftMembershipClient(conn).Join(context.Background(), &api.JoinRequest{NodeId: target.NodeID, Addr: "127.0.0.1:1"})
	if status.Code(err) != codes.AlreadyExists || !strings.Contains(err.Error(), "shoal node rm "+target.NodeID) {
		t.Fatalf("join of a member: %v, want AlreadyExists naming the recovery", err)
	}
	if got := len(c.Leader().Node().Cluster().Members()); got != 3 {
		t.Fatalf("the refused join left %d members, want 3", got)
	}
}

func TestUpdateAddressThroughAFollower(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	followers := c.Followers()
	conn, err := grpc.NewClient(followers[0].Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	target := followers[1]
	client := api.NewRaftMembershipClient(conn)
	tests := []struct {
		name string
		req  *api.UpdateAddressRequest
		want codes.Code
	}{
		{"another node's Raft ID", &api.UpdateAddressRequest{RaftId: target.ID(), NodeId: "someone-else", Addr: "127.0.0.1:1"}, codes.PermissionDenied},
		{"an unknown Raft ID", &api.UpdateAddressRequest{RaftId: 12345, NodeId: target.NodeID, Addr: "127.0.0.1:1"}, codes.NotFound},
		{"its own", &api.UpdateAddressRequest{RaftId: target.ID(), NodeId: target.NodeID, Addr: "127.0.0.1:1"}, codes.OK},
		{"the same again", &api.UpdateAddressRequest{RaftId: target.ID(), NodeId: target.NodeID, Addr: "127.0.0.1:1"}, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := client.UpdateAddress(context.Background(), tt.req); status.Code(err) != tt.want {
				t.Fatalf("UpdateAddress: %v, want %v", err, tt.want)
			}
		})
	}
	got, _ := c.Leader().Node().Cluster().Get(target.ID())
	if got.Addr != "127.0.0.1:1" {
		t.Fatalf("the leader has address %q for the member, want the new one", got.Addr)
	}
}

func TestJoinErrors(t *testing.T) {
	c := rafttest.NewCluster(t, 1, rafttest.Options{})
	conn, err := grpc.NewClient(c.Leader().Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = api.NewRaftMembershipClient(conn).Join(context.Background(), &api.JoinRequest{NodeId: "", Addr: "x:1"})
	if status.Code(err) == codes.OK {
		t.Fatal("a join without node ID succeeded")
	}
	if err := c.Leader().Node().RemoveMember(context.Background(), 12345, false); !errors.Is(err, membership.ErrUnknownMember) {
		t.Fatalf("removal of an unknown member: %v, want ErrUnknownMember", err)
	}
}

func TestForceNewCluster(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	acked := proposeMany(t, c, "v", 50, 4)
	c.WaitApplied(c.Leader().Node().Status)
	survivor := c.Followers()[0]
	for _, m := range c.Members() {
		if err := m.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	survivor.RestartForced()
	c.WaitFor("the survivor to lead alone", func() bool { return survivor.Node().IsLeader() })
	if got := len(survivor.Node().Cluster().Members()); got != 1 {
		t.Fatalf("after --force-new-cluster the cluster has %d members, want 1", got)
	}
	checkContains(t, c, acked)
	c.MustPropose("after recovery")
	c.AddMember()
	c.MustPropose("two members again")
	c.WaitApplied(c.Leader().Node().Status)
	sameLogs(t, c, c.Leader().Log().Payloads())
}

// TestMemberJoiningAfterCompactionCatchesUp adds a member once the log it
// would need is compacted: it must get a snapshot that lists it.
func TestMemberJoiningAfterCompactionCatchesUp(t *testing.T) {
	// A snapshot near index 20 compacts the log; the join, near index 30,
	// comes before the next interval would take another.
	c := rafttest.NewCluster(t, 3, rafttest.Options{SnapshotInterval: 20, LogEntriesForSlowFollowers: 1, Timeout: 10 * time.Second})
	for i := range 25 {
		c.MustPropose(fmt.Sprintf("before-%d", i))
	}
	c.WaitApplied(c.Leader().Node().Status)
	added := c.AddMember() // waits until it applied what the leader had
	if added.Log().Restores() == 0 {
		t.Fatal("the new member caught up without a snapshot: the test did not cover compaction")
	}
	c.MustPropose("after")
	c.WaitApplied(c.Leader().Node().Status)
	sameLogs(t, c, c.Leader().Log().Payloads())
}
