package raft_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/membership"
	"github.com/shoal-project/shoal/raft/rafttest"
)

func memberOf(t *testing.T, n *raft.Node, id uint64) membership.Member {
	t.Helper()
	m, ok := n.Cluster().Get(id)
	if !ok {
		t.Fatalf("%x is not a member", id)
	}
	return m
}

// TestJoinerThatNeverStartsLeavesTheQuorumAlone joins a manager that never
// runs: it stays a learner, so the cluster still survives the loss of one
// of its three voters.
func TestJoinerThatNeverStartsLeavesTheQuorumAlone(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	leader := c.Leader()
	id, _, err := leader.Node().Join(context.Background(), "ghost", "127.0.0.1:1", false)
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	if m := memberOf(t, leader.Node(), id); !m.Learner || !m.AutoPromote {
		t.Fatalf("the joiner is %+v, want a learner to promote", m)
	}
	if got := len(leader.Node().Cluster().Voters()); got != 3 {
		t.Fatalf("%d voters after the join, want 3", got)
	}
	if err := c.Followers()[0].Stop(); err != nil {
		t.Fatal(err)
	}
	c.MustPropose("two of three voters, and a dead learner")
	if err := c.Leader().Node().Promote(context.Background(), id); !errors.Is(err, raft.ErrCannotPromote) {
		t.Fatalf("promoting the dead learner: %v, want ErrCannotPromote", err)
	}
	// It can be removed with a voter down: a learner counts toward no quorum.
	if err := c.Leader().Node().RemoveMember(context.Background(), id, false); err != nil {
		t.Fatalf("removing the dead learner: %v", err)
	}
}

func TestJoinerIsPromotedOnceCaughtUp(t *testing.T) {
	c := rafttest.NewCluster(t, 1, rafttest.Options{})
	for i := range 200 {
		c.MustPropose(fmt.Sprintf("before-%d", i))
	}
	for range 2 {
		m := c.AddMember() // waits for the promotion
		if got := memberOf(t, c.Leader().Node(), m.ID()); got.Learner || got.AutoPromote {
			t.Fatalf("the joiner is %+v after promotion", got)
		}
	}
	if got := len(c.Leader().Node().Cluster().Voters()); got != 3 {
		t.Fatalf("%d voters, want 3", got)
	}
	c.MustPropose("three voters")
	c.WaitApplied(c.Leader().Node().Status)
	sameLogs(t, c, c.Leader().Log().Payloads())
}

func TestPermanentLearnerPromoteAndDemote(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	learner := c.AddLearner()
	index := c.MustPropose("with a learner")
	c.WaitAppliedIndex(index)
	ctx := context.Background()
	leader := c.Leader().Node()
	if m := memberOf(t, leader, learner.ID()); !m.Learner || m.AutoPromote {
		t.Fatalf("the permanent learner is %+v", m)
	}
	if err := leader.TransferLeadership(ctx, learner.ID()); !errors.Is(err, raft.ErrLeadershipTransfer) {
		t.Fatalf("transfer to a learner: %v, want ErrLeadershipTransfer", err)
	}
	if err := leader.Promote(ctx, learner.ID()); err != nil {
		t.Fatalf("promote: %v", err)
	}
	for _, m := range c.Running() {
		c.WaitFor("the promotion everywhere", func() bool {
			got, _ := m.Node().Cluster().Get(learner.ID())
			return !got.Learner
		})
	}
	if err := leader.Promote(ctx, learner.ID()); err != nil {
		t.Fatalf("promoting a voter again: %v, want nil", err)
	}
	if got := len(leader.Cluster().Voters()); got != 4 {
		t.Fatalf("%d voters after the promotion, want 4", got)
	}

	if err := leader.Demote(ctx, learner.ID()); err != nil {
		t.Fatalf("demote: %v", err)
	}
	if m := memberOf(t, leader, learner.ID()); !m.Learner || m.AutoPromote {
		t.Fatalf("the demoted voter is %+v, want a learner that stays one", m)
	}
	index = c.MustPropose("after the demotion")
	c.WaitAppliedIndex(index) // the learner still receives the log
	if err := leader.Demote(ctx, leader.ID()); !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("the leader demoting itself: %v, want a not-leader error (transfer first)", err)
	}
}

// TestConcurrentJoinsOfOneNode joins one node ID through every member at
// once: exactly one join wins, and the node has one Raft ID.
func TestConcurrentJoinsOfOneNode(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	codesSeen := map[codes.Code]int{}
	for _, m := range c.Running() {
		conn, err := grpc.NewClient(m.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := api.NewRaftMembershipClient(conn).Join(context.Background(), &api.JoinRequest{NodeId: "twice", Addr: "127.0.0.1:1"})
				mu.Lock()
				codesSeen[status.Code(err)]++
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	if codesSeen[codes.OK] != 1 || codesSeen[codes.AlreadyExists] != 8 {
		t.Fatalf("9 joins of one node ended with %v, want one OK and 8 AlreadyExists", codesSeen)
	}
	var ids []uint64
	for _, m := range c.Leader().Node().Cluster().Members() {
		if m.NodeID == "twice" {
			ids = append(ids, m.RaftID)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("node twice has Raft IDs %x", ids)
	}
}

// TestAbandonedChangeDoesNotBlockTheNext gives up on a membership change
// while it cannot commit; the next change must wait for it, then succeed,
// not be dropped by Raft as a second pending change.
func TestAbandonedChangeDoesNotBlockTheNext(t *testing.T) {
	clock := clockwork.NewFakeClock()
	c := rafttest.NewCluster(t, 3, rafttest.Options{Clock: clock})
	leader := c.Leader()
	c.Partition([]*rafttest.Member{leader}, c.Followers())

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, _, err := leader.Node().Join(ctx, "abandoned", "127.0.0.1:1", false)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("join while cut off: %v, want the caller's deadline", err)
	}
	next := make(chan error, 1)
	go func() {
		_, _, err := leader.Node().Join(context.Background(), "next", "127.0.0.1:2", false)
		next <- err
	}()
	c.Heal()
	var joinErr error
	c.WaitFor("the next join to end", func() bool {
		select {
		case joinErr = <-next:
			return true
		default:
			return false
		}
	})
	if joinErr != nil {
		t.Fatalf("the join after an abandoned one: %v", joinErr)
	}
	for _, nodeID := range []string{"abandoned", "next"} {
		if _, ok := c.Leader().Node().Cluster().ByNodeID(nodeID); !ok {
			t.Fatalf("%s is not a member", nodeID)
		}
	}
}

// TestJoinerRestartedBeforeItsLogNamesAnyone stops a joiner as soon as it
// has joined, before the leader reached it; restarted, it must still answer
// the leader, catch up and be promoted.
func TestJoinerRestartedBeforeItsLogNamesAnyone(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	c.MustPropose("before")
	joiner := c.StartMember(nil)
	c.Partition([]*rafttest.Member{joiner}, c.Running()[:3])
	if err := joiner.Stop(); err != nil {
		t.Fatal(err)
	}
	c.Heal()
	joiner.Restart()
	c.WaitFor("the restarted joiner to be promoted", func() bool { return c.IsVoter(joiner) })
	index := c.MustPropose("after")
	c.WaitAppliedIndex(index)
}

// TestStopBeforeRun releases a node that started but never ran.
func TestStopBeforeRun(t *testing.T) {
	cfg := raft.DefaultConfig()
	cfg.NodeID, cfg.StateDir, cfg.AdvertiseAddr = "alone", t.TempDir(), "127.0.0.1:1"
	n, err := raft.NewNode(cfg, &rafttest.LogMachine{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.JoinAndStart(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Stop() // must not wait for a Run that never comes
	select {
	case <-n.Done():
	default:
		t.Fatal("Done is open after Stop")
	}
	if err := n.Run(context.Background()); err != nil {
		t.Fatalf("Run after Stop: %v, want nil, as after any requested stop", err)
	}
}

// A founding start that stopped after it created its WAL, before its first
// entry (the configuration that makes it a member) was saved, leaves a WAL
// that names no one: started again, the node founds its cluster again,
// under the same Raft ID, instead of waiting forever as a node of no
// cluster.
func TestBootstrapStoppedBeforeItsFirstEntryFoundsAgain(t *testing.T) {
	cfg := raft.DefaultConfig()
	cfg.NodeID, cfg.StateDir, cfg.AdvertiseAddr = "alone", t.TempDir(), "127.0.0.1:1"
	n, err := raft.NewNode(cfg, &rafttest.LogMachine{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.JoinAndStart(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := n.ID()
	n.Stop() // before Run: nothing but the WAL's metadata was saved

	sm := &rafttest.LogMachine{}
	n, err = raft.NewNode(cfg, sm)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.JoinAndStart(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	if n.ID() != id {
		t.Errorf("Raft ID %x after the second start, was %x", n.ID(), id)
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer pcancel()
	events, unsubscribe := n.SubscribeLeadership()
	defer unsubscribe()
	for leading := false; !leading; {
		select {
		case ev := <-events:
			leading = ev.State == raft.Leader
		case <-pctx.Done():
			t.Fatal("the node never led its cluster")
		}
	}
	if _, err := n.ProposeValue(pctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
}
