package membership

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestRemovedIDIsNeverReused(t *testing.T) {
	c := NewCluster()
	if err := c.Add(Member{RaftID: 7, NodeID: "a", Addr: "x:1"}); err != nil {
		t.Fatal(err)
	}
	c.Remove(7)
	if err := c.Add(Member{RaftID: 7, NodeID: "a", Addr: "x:1"}); !errors.Is(err, ErrMemberRemoved) {
		t.Fatalf("Add of a removed ID: err = %v, want ErrMemberRemoved", err)
	}
	if !c.IsRemoved(7) || !c.IsUsed(7) {
		t.Fatal("ID 7 must stay removed and used")
	}
	if _, ok := c.Get(7); ok {
		t.Fatal("a removed member is still listed")
	}
	if !c.IsNodeRemoved("a") || c.IsNodeRemoved("b") {
		t.Fatal("the removed member's node ID is not remembered")
	}
}

func TestAddZeroIDRefused(t *testing.T) {
	if err := NewCluster().Add(Member{RaftID: 0}); err == nil {
		t.Fatal("Add of Raft ID 0 succeeded")
	}
}

func TestUpdateAddr(t *testing.T) {
	c := NewCluster()
	if err := c.UpdateAddr(1, "y:2"); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("UpdateAddr of unknown: err = %v", err)
	}
	_ = c.Add(Member{RaftID: 1, NodeID: "a", Addr: "x:1"})
	if err := c.UpdateAddr(1, "y:2"); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.ByNodeID("a"); m.Addr != "y:2" {
		t.Fatalf("addr = %q, want y:2", m.Addr)
	}
}

func TestStateRoundTrip(t *testing.T) {
	c := NewCluster()
	for id := uint64(1); id <= 4; id++ {
		_ = c.Add(Member{RaftID: id, NodeID: string(rune('a' + id)), Addr: "h:1"})
	}
	c.Remove(2)
	c.Remove(9)
	if !c.IsNodeRemoved(string(rune('a' + 2))) {
		t.Fatal("removed node ID not remembered")
	}

	restored := NewCluster()
	_ = restored.Add(Member{RaftID: 100}) // replaced by Restore
	restored.Restore(c.State())
	if !proto.Equal(restored.State(), c.State()) {
		t.Fatalf("restored %v, want %v", restored.State(), c.State())
	}
	if got := len(restored.Members()); got != 3 {
		t.Fatalf("members = %d, want 3", got)
	}
}

func TestOneRaftIDPerNode(t *testing.T) {
	c := NewCluster()
	if err := c.Add(Member{RaftID: 1, NodeID: "a", Learner: true, AutoPromote: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Add(Member{RaftID: 2, NodeID: "a"}); !errors.Is(err, ErrNodeIsMember) {
		t.Fatalf("a second Raft ID for node a: %v, want ErrNodeIsMember", err)
	}
	if err := c.Add(Member{RaftID: 1, NodeID: "a"}); err != nil {
		t.Fatalf("promoting node a under its own Raft ID: %v", err)
	}
	if m, _ := c.Get(1); m.Learner || len(c.Voters()) != 1 {
		t.Fatalf("after promotion: %+v, voters %v", m, c.Voters())
	}
	c.Remove(1)
	if err := c.Add(Member{RaftID: 3, NodeID: "a"}); err != nil {
		t.Fatalf("node a joining again under a new Raft ID once removed: %v", err)
	}
}

func TestSetSuffrage(t *testing.T) {
	c := NewCluster()
	if err := c.SetSuffrage(1, true, false); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("unknown member: %v", err)
	}
	_ = c.Add(Member{RaftID: 1, NodeID: "a"})
	if err := c.SetSuffrage(1, true, false); err != nil {
		t.Fatal(err)
	}
	if m, _ := c.Get(1); !m.Learner || m.AutoPromote || m.Suffrage() != "learner" {
		t.Fatalf("demoted: %+v", m)
	}
	st := c.State()
	d := NewCluster()
	d.Restore(st)
	if m, _ := d.Get(1); !m.Learner {
		t.Fatalf("a learner lost its suffrage through State/Restore: %+v", m)
	}
}
