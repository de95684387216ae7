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
