package raft_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/rafttest"
)

// sameLogs checks that every running member applied exactly want, in order.
func sameLogs(t *testing.T, c *rafttest.Cluster, want []string) {
	t.Helper()
	for _, m := range c.Running() {
		if got := m.Log().Payloads(); !slices.Equal(got, want) {
			t.Fatalf("%s applied %d entries %v, want %d entries %v", m.NodeID, len(got), clip(got), len(want), clip(want))
		}
	}
}

func clip(s []string) []string {
	if len(s) > 6 {
		return append(append([]string{}, s[:3]...), append([]string{"..."}, s[len(s)-3:]...)...)
	}
	return s
}

// proposeMany proposes count payloads from workers goroutines at once and
// returns the ones that were acknowledged.
func proposeMany(t *testing.T, c *rafttest.Cluster, prefix string, count, workers int) []string {
	t.Helper()
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := fmt.Sprintf("%s-%d", prefix, i)
				if _, err := c.Propose(p); err != nil {
					t.Errorf("propose %s: %v", p, err)
					continue
				}
				mu.Lock()
				acked = append(acked, p)
				mu.Unlock()
			}
		}()
	}
	for i := range count {
		next <- i
	}
	close(next)
	wg.Wait()
	return acked
}

// checkContains fails unless every member's log holds every payload of want.
func checkContains(t *testing.T, c *rafttest.Cluster, want []string) {
	t.Helper()
	for _, m := range c.Running() {
		have := map[string]bool{}
		for _, p := range m.Log().Payloads() {
			have[p] = true
		}
		for _, p := range want {
			if !have[p] {
				t.Fatalf("%s lost acknowledged entry %q", m.NodeID, p)
			}
		}
	}
}

// leaderRecorder records, per term, the members that announced
// leadership, to check that no term has two leaders.
type leaderRecorder struct {
	mu      sync.Mutex
	leaders map[uint64]map[string]bool
	cancels []func()
	wg      sync.WaitGroup
	stop    chan struct{}
}

func recordLeaders(t *testing.T, c *rafttest.Cluster) *leaderRecorder {
	r := &leaderRecorder{leaders: map[uint64]map[string]bool{}, stop: make(chan struct{})}
	for _, m := range c.Running() {
		ch, cancel := m.Node().SubscribeLeadership()
		r.cancels = append(r.cancels, cancel)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			for {
				select {
				case ev := <-ch:
					if ev.State == raft.Leader {
						r.mu.Lock()
						if r.leaders[ev.Term] == nil {
							r.leaders[ev.Term] = map[string]bool{}
						}
						r.leaders[ev.Term][m.NodeID] = true
						r.mu.Unlock()
					}
				case <-r.stop:
					return
				}
			}
		}()
	}
	t.Cleanup(r.close)
	return r
}

func (r *leaderRecorder) close() {
	select {
	case <-r.stop:
		return
	default:
	}
	close(r.stop)
	r.wg.Wait()
	for _, c := range r.cancels {
		c()
	}
}

func (r *leaderRecorder) check(t *testing.T) {
	t.Helper()
	r.close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for term, who := range r.leaders {
		if len(who) > 1 {
			t.Fatalf("term %d had %d leaders: %v", term, len(who), who)
		}
	}
}

func TestClusterElectsOneLeaderAndReplicates(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d members", size), func(t *testing.T) {
			c := rafttest.NewCluster(t, size, rafttest.Options{})
			rec := recordLeaders(t, c)
			acked := proposeMany(t, c, "v", 200, 16)
			if len(acked) != 200 {
				t.Fatalf("%d of 200 proposals acknowledged", len(acked))
			}
			c.WaitApplied(c.Leader().Node().Status)
			want := c.Leader().Log().Payloads()
			sameLogs(t, c, want)
			checkContains(t, c, acked)
			rec.check(t)
		})
	}
}

func TestProposalResultsAndErrors(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	leader := c.Leader()
	ctx := context.Background()

	res, err := leader.Node().ProposeValue(ctx, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	index, ok := res.(uint64)
	if !ok || index == 0 {
		t.Fatalf("result %v, want the entry's index", res)
	}

	if _, err := leader.Node().ProposeValue(ctx, []byte("reject:me")); !errors.Is(err, rafttest.ErrRejected) {
		t.Fatalf("rejected entry: err = %v, want the state machine's error", err)
	}

	big := make([]byte, raft.DefaultConfig().MaxProposalSize+1)
	if _, err := leader.Node().ProposeValue(ctx, big); !errors.Is(err, raft.ErrProposalTooLarge) {
		t.Fatalf("large proposal: err = %v, want ErrProposalTooLarge", err)
	}

	follower := c.Followers()[0]
	_, err = follower.Node().ProposeValue(ctx, []byte("x"))
	var nl *raft.NotLeaderError
	if !errors.As(err, &nl) || !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("proposal on a follower: err = %v, want a NotLeaderError", err)
	}
	if nl.LeaderID != leader.ID() || nl.LeaderAddr != leader.Addr {
		t.Fatalf("NotLeaderError names %x at %q, want %x at %q", nl.LeaderID, nl.LeaderAddr, leader.ID(), leader.Addr)
	}

	if err := follower.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := follower.Node().ProposeValue(ctx, []byte("x")); !errors.Is(err, raft.ErrStopped) {
		t.Fatalf("proposal on a stopped node: err = %v, want ErrStopped", err)
	}
}

func TestLeaderCrashAndRestart(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	acked := proposeMany(t, c, "before", 100, 8)

	old := c.Leader()
	if err := old.Stop(); err != nil {
		t.Fatalf("stop leader: %v", err)
	}
	newLeader := c.Leader()
	if newLeader == old {
		t.Fatal("the stopped leader still leads")
	}
	acked = append(acked, proposeMany(t, c, "after", 100, 8)...)
	c.WaitApplied(newLeader.Node().Status)
	checkContains(t, c, acked)

	old.Restart()
	c.WaitApplied(c.Leader().Node().Status)
	sameLogs(t, c, c.Leader().Log().Payloads())
	checkContains(t, c, acked)
}

func TestFollowerCatchesUpThroughLargeSnapshot(t *testing.T) {
	// Snapshots of up to 20 MiB, written and sent under -race on a shared
	// machine, can take several seconds each: a longer bound than the
	// harness's default, which only a hang should reach.
	c := rafttest.NewCluster(t, 3, rafttest.Options{SnapshotInterval: 8, LogEntriesForSlowFollowers: 2, Timeout: time.Minute})
	lagging := c.Followers()[0]
	var others []*rafttest.Member
	for _, m := range c.Running() {
		if m != lagging {
			others = append(others, m)
		}
	}
	c.Partition([]*rafttest.Member{lagging}, others)

	// 20 entries of 1 MiB: the snapshot is over 16 MiB, four times gRPC's
	// default message limit, so it must travel in chunks.
	payload := strings.Repeat("x", 1<<20)
	var acked []string
	for i := range 20 {
		p := fmt.Sprintf("%03d-%s", i, payload)
		c.MustPropose(p)
		acked = append(acked, p)
	}
	leader := c.Leader()
	c.WaitFor("the leader to compact past the lagging follower", func() bool {
		st, _ := leader.Node().Status()
		lst, _ := lagging.Node().Status()
		return st.Applied >= lst.Applied+10
	})

	c.Heal()
	c.WaitApplied(leader.Node().Status)
	if lagging.Log().Restores() == 0 {
		t.Fatal("the lagging follower caught up without a snapshot")
	}
	if len(stateFiles(t, lagging)) == 0 || len(tmpFiles(lagging)) > 0 {
		t.Fatalf("the lagging follower holds state files %v and temporary files %v, want the leader's installed",
			stateFiles(t, lagging), tmpFiles(lagging))
	}
	sameLogs(t, c, leader.Log().Payloads())
	checkContains(t, c, acked)
}

func TestMinorityPartitionCannotCommit(t *testing.T) {
	c := rafttest.NewCluster(t, 5, rafttest.Options{})
	c.MustPropose("first")
	old := c.Leader()
	followers := c.Followers()
	minority := []*rafttest.Member{old, followers[0]}
	majority := followers[1:]
	c.Partition(minority, majority)

	// The old leader cannot commit: its proposal fails (it steps down when
	// it loses touch with a quorum) or times out.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := old.Node().ProposeValue(ctx, []byte("minority"))
	cancel()
	if err == nil {
		t.Fatal("a proposal in the minority partition was acknowledged")
	}

	// The majority elects a leader and commits.
	c.WaitFor("a leader in the majority", func() bool {
		for _, m := range majority {
			if m.Node().IsLeader() {
				return true
			}
		}
		return false
	})
	var majorityLeader *rafttest.Member
	for _, m := range majority {
		if m.Node().IsLeader() {
			majorityLeader = m
		}
	}
	if _, err := majorityLeader.Node().ProposeValue(context.Background(), []byte("majority")); err != nil {
		t.Fatalf("majority proposal: %v", err)
	}

	c.Heal()
	c.WaitFor("one leader after healing", func() bool { return c.Leader() != nil })
	c.MustPropose("healed")
	c.WaitApplied(c.Leader().Node().Status)
	want := c.Leader().Log().Payloads()
	sameLogs(t, c, want)
	if slices.Contains(want, "minority") {
		t.Fatal("the minority's proposal was committed")
	}
	checkContains(t, c, []string{"first", "majority", "healed"})
}

func TestFullClusterRestart(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{SnapshotInterval: 50})
	acked := proposeMany(t, c, "v", 120, 8)
	for _, m := range c.Members() {
		if err := m.Stop(); err != nil {
			t.Fatalf("stop %s: %v", m.NodeID, err)
		}
	}
	for _, m := range c.Members() {
		m.Restart()
	}
	c.MustPropose("after-restart")
	c.WaitApplied(c.Leader().Node().Status)
	sameLogs(t, c, c.Leader().Log().Payloads())
	checkContains(t, c, append(acked, "after-restart"))
}

func TestLinearizableReadOnFollower(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	follower := c.Followers()[0]
	for i := range 20 {
		p := fmt.Sprintf("w%d", i)
		c.MustPropose(p)
		if err := follower.Node().LinearizableRead(context.Background()); err != nil {
			t.Fatalf("read: %v", err)
		}
		// The write was acknowledged before the read began, so the
		// follower must have applied it when the read returns.
		if got := follower.Log().Payloads(); len(got) == 0 || got[len(got)-1] != p {
			t.Fatalf("after a linearizable read the follower's last entry is %v, want %q", clip(got), p)
		}
	}

	// Many reads at once are batched and all succeed.
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := follower.Node().LinearizableRead(context.Background()); err != nil {
				t.Errorf("read: %v", err)
			}
		}()
	}
	wg.Wait()
}

func TestLinearizableReadFailsWithoutQuorum(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	leader := c.Leader()
	c.Partition([]*rafttest.Member{leader}, c.Followers())
	// A leader cut off from its quorum must not answer from its own state.
	if err := leader.Node().LinearizableRead(context.Background()); err == nil {
		t.Fatal("an isolated leader served a linearizable read")
	}
}

func TestTransferLeadership(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	c.MustPropose("x")
	leader := c.Leader()
	target := c.Followers()[1]
	if err := leader.Node().TransferLeadership(context.Background(), target.ID()); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	if got := c.Leader(); got != target {
		t.Fatalf("leader is %s, want %s", got.NodeID, target.NodeID)
	}
	// With no target, the most up-to-date reachable member takes over.
	if err := target.Node().TransferLeadership(context.Background(), 0); err != nil {
		t.Fatalf("transfer to any: %v", err)
	}
	if c.Leader() == target {
		t.Fatal("leadership did not move")
	}
	if err := c.Followers()[0].Node().TransferLeadership(context.Background(), 0); !errors.Is(err, raft.ErrNotLeader) {
		t.Fatalf("transfer from a follower: err = %v, want ErrNotLeader", err)
	}
}

func TestStatus(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	index := c.MustPropose("x")
	c.WaitAppliedIndex(index)
	leader := c.Leader()
	st, err := leader.Node().Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != leader.ID() || st.Leader != leader.ID() || st.State != "leader" || !st.IsLeader {
		t.Fatalf("leader status %+v", st)
	}
	if st.Term == 0 || st.Commit < index || st.Applied < index {
		t.Fatalf("status term %d commit %d applied %d, want commit and applied >= %d", st.Term, st.Commit, st.Applied, index)
	}
	if len(st.Members) != 3 {
		t.Fatalf("status lists %d members, want 3", len(st.Members))
	}
	c.WaitFor("followers to match the leader", func() bool {
		st, _ := leader.Node().Status()
		for _, m := range st.Members {
			if !m.Reachable || m.Match < index {
				return false
			}
		}
		return true
	})
}

// TestFakeClockDrivesTime runs a cluster on a fake clock: nothing that
// depends on time happens unless the clock is advanced.
func TestFakeClockDrivesTime(t *testing.T) {
	clock := clockwork.NewFakeClock()
	tick := 50 * time.Millisecond
	c := rafttest.NewCluster(t, 3, rafttest.Options{Clock: clock, Tick: tick})
	leader := c.Leader()
	c.MustPropose("x")

	for _, f := range c.Followers() {
		if err := f.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	// Without ticks the leader cannot tell that its followers are gone.
	if !leader.Node().IsLeader() {
		t.Fatal("the leader stepped down without any tick")
	}
	// Once an election timeout of ticks passes without a quorum (the
	// harness advances the clock while it waits), CheckQuorum makes it
	// step down.
	c.WaitFor("the leader to step down", func() bool { return !leader.Node().IsLeader() })
}

// With ForwardProposals, a follower's proposals go to the leader through
// Raft and return once applied there; when the leader dies meanwhile, each
// either succeeded or failed with ErrLostLeadership, once the follower saw
// the leader go: none waits out its deadline for an entry the dead leader
// never received. Every success is in every log.
func TestFollowersForwardProposals(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{Configure: func(cfg *raft.Config) { cfg.ForwardProposals = true }})
	ctx := context.Background()
	follower := c.Followers()[0]
	res, err := follower.Node().ProposeValue(ctx, []byte("through-a-follower"))
	if err != nil {
		t.Fatalf("proposal on a follower: %v", err)
	}
	if index, ok := res.(uint64); !ok || index == 0 {
		t.Fatalf("result %v, want the entry's index", res)
	}
	if _, err := follower.Node().ProposeValue(ctx, []byte("reject:me")); !errors.Is(err, rafttest.ErrRejected) {
		t.Fatalf("rejected entry: err = %v, want the state machine's error", err)
	}

	var mu sync.Mutex
	acked := []string{"through-a-follower"}
	someAcked := make(chan struct{}, 1024)
	var wg sync.WaitGroup
	for _, f := range c.Followers() {
		for w := range 4 {
			wg.Go(func() {
				for i := range 50 {
					p := fmt.Sprintf("%x-%d-%d", f.ID(), w, i)
					pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err := f.Node().ProposeValue(pctx, []byte(p))
					if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrProposalDropped) {
						// Nothing proposed: an election; wait it out.
						if err := f.Node().WaitForLeader(pctx); err != nil {
							t.Errorf("no leader after an election: %v", err)
						}
						cancel()
						continue
					}
					cancel()
					switch {
					case err == nil:
						mu.Lock()
						acked = append(acked, p)
						mu.Unlock()
						select {
						case someAcked <- struct{}{}:
						default:
						}
					case errors.Is(err, raft.ErrLostLeadership):
					default:
						t.Errorf("proposal %s: %v", p, err)
						return
					}
				}
			})
		}
	}
	for range 20 {
		<-someAcked // the leader dies with proposals in flight
	}
	old := c.Leader()
	if err := old.Stop(); err != nil {
		t.Fatalf("stop leader: %v", err)
	}
	wg.Wait()
	old.Restart()
	c.WaitApplied(c.Leader().Node().Status)
	checkContains(t, c, acked)
	t.Logf("%d of %d proposals through followers acknowledged", len(acked), 2*4*50+1)
}

// snapshotCounter is a LogMachine that counts the snapshots taken of it.
type snapshotCounter struct {
	*rafttest.LogMachine
	taken *atomic.Int32
}

func (s snapshotCounter) Snapshot() (func(io.Writer) error, error) {
	s.taken.Add(1)
	return s.LogMachine.Snapshot()
}

// The log machine's state grows with every entry, so with a cost ratio of
// 1 a snapshot waits until as many bytes were applied as the last one
// held: the snapshots come at about 10, 20, 40, 80 entries, where the
// interval alone takes one every 10. With an interval never reached, a
// bound of 1,000 bytes of log takes one every 9 or 10 entries of 100-odd
// bytes.
func TestSnapshotCostRatioSpacesSnapshots(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval uint64
		logBytes uint64
		ratio    uint64
		min, max int32
	}{
		{"interval alone", 10, 64 << 20, math.MaxUint64, 6, 10},
		{"ratio 1", 10, 64 << 20, 1, 2, 5},
		{"log bytes", 1 << 40, 1000, math.MaxUint64, 6, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var taken atomic.Int32
			c := rafttest.NewCluster(t, 1, rafttest.Options{
				SnapshotInterval: tc.interval,
				Configure: func(cfg *raft.Config) {
					cfg.SnapshotCostRatio, cfg.SnapshotLogBytes = tc.ratio, tc.logBytes
				},
				NewStateMachine: func(*rafttest.Member) raft.StateMachine {
					return snapshotCounter{LogMachine: &rafttest.LogMachine{}, taken: &taken}
				},
			})
			for i := range 100 {
				c.MustPropose(fmt.Sprintf("%03d-%s", i, strings.Repeat("x", 100)))
			}
			c.WaitApplied(c.Leader().Node().Status)
			if n := taken.Load(); n < tc.min || n > tc.max {
				t.Fatalf("%d snapshots of 100 entries, want %d to %d", n, tc.min, tc.max)
			}
		})
	}
}
