package raft

import (
	"errors"
	"io"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft/storage"
)

// recordingDisk is a logStore that keeps what it is given.
type recordingDisk struct {
	events *[]string
	hs     []*raftpb.HardState
	ents   []*raftpb.Entry
}

func (d *recordingDisk) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	if d.events != nil {
		*d.events = append(*d.events, "save")
	}
	if hs != nil {
		d.hs = append(d.hs, proto.Clone(hs).(*raftpb.HardState))
	}
	d.ents = append(d.ents, ents...)
	return nil
}

func (d *recordingDisk) SaveSnapshot(*raftpb.Snapshot) error { return nil }
func (d *recordingDisk) Close() error                        { return nil }

func (d *recordingDisk) CreateState(uint64, uint64) (*storage.StateWriter, error) {
	return nil, errors.New("recordingDisk keeps no state files")
}

func (d *recordingDisk) OpenState(uint64, uint64, storage.StateInfo) (io.ReadCloser, error) {
	return nil, errors.New("recordingDisk keeps no state files")
}

// indexMachine is a StateMachine whose Apply returns the entry's index.
type indexMachine struct{}

func (indexMachine) Apply(index uint64, _ []byte) (any, error) { return index, nil }
func (indexMachine) Snapshot() (func(io.Writer) error, error) {
	return func(io.Writer) error { return nil }, nil
}
func (indexMachine) Restore(uint64, io.Reader) error { return nil }

// testNode returns a node whose Raft parts are set by the test; nothing
// runs.
func testNode(t *testing.T, id uint64) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeID, cfg.StateDir, cfg.AdvertiseAddr = "n1", t.TempDir(), "127.0.0.1:1"
	n, err := NewNode(cfg, indexMachine{})
	if err != nil {
		t.Fatal(err)
	}
	n.id = id
	return n
}

func testEntry(index, term uint64) *raftpb.Entry {
	return &raftpb.Entry{Type: raftpb.EntryNormal.Enum(), Index: proto.Uint64(index), Term: proto.Uint64(term)}
}

func addNodeEntry(t *testing.T, index, term, id uint64) *raftpb.Entry {
	t.Helper()
	data, err := proto.Marshal(&raftpb.ConfChange{Type: raftpb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(id)})
	if err != nil {
		t.Fatal(err)
	}
	return &raftpb.Entry{Type: raftpb.EntryConfChange.Enum(), Index: proto.Uint64(index), Term: proto.Uint64(term), Data: data}
}

// TestForceNewClusterKeepsEveryEntry: the saved commit index may lag
// behind committed entries (a commit-only HardState is not synced), so
// every entry of the WAL is kept and committed, and the removals of the
// other members come after the last one, in a term no older than its.
func TestForceNewClusterKeepsEveryEntry(t *testing.T) {
	const self, other = 1, 2
	n := testNode(t, self)
	disk := &recordingDisk{}
	n.disk = disk
	loaded := &storage.Loaded{
		// The HardState of term 3, saved with entry 6, was lost with an
		// unsynced tail; so was every commit index above 3.
		HardState: &raftpb.HardState{Term: proto.Uint64(2), Vote: proto.Uint64(self), Commit: proto.Uint64(3)},
		Entries: []*raftpb.Entry{
			addNodeEntry(t, 1, 1, self), addNodeEntry(t, 2, 1, other),
			testEntry(3, 2), testEntry(4, 2), testEntry(5, 2), testEntry(6, 3),
		},
	}
	hs, ents, err := n.forceNewCluster(loaded)
	if err != nil {
		t.Fatal(err)
	}
	var indexes []uint64
	for _, e := range ents {
		indexes = append(indexes, e.GetIndex())
	}
	if want := []uint64{1, 2, 3, 4, 5, 6, 7}; !slices.Equal(indexes, want) {
		t.Fatalf("entries %v after forcing, want %v", indexes, want)
	}
	removal := ents[6]
	var cc raftpb.ConfChange
	if err := proto.Unmarshal(removal.GetData(), &cc); err != nil {
		t.Fatal(err)
	}
	if cc.GetType() != raftpb.ConfChangeRemoveNode || cc.GetNodeId() != other || removal.GetTerm() != 3 {
		t.Fatalf("appended %v %x in term %d, want the removal of %x in term 3", cc.GetType(), cc.GetNodeId(), removal.GetTerm(), other)
	}
	if hs.GetCommit() != 7 || hs.GetTerm() != 3 || hs.GetVote() != 0 {
		t.Fatalf("hard state %v, want commit 7, term 3, no vote", hs)
	}
	if len(disk.ents) != 1 || disk.ents[0] != removal || len(disk.hs) != 1 || !proto.Equal(disk.hs[0], hs) {
		t.Fatalf("saved %d entries and hard states %v, want the removal and %v", len(disk.ents), disk.hs, hs)
	}
	var member api.RaftMember
	var rctx api.RaftEntry
	if err := proto.Unmarshal(cc.GetContext(), &rctx); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(rctx.GetPayload(), &member); err != nil || member.GetRaftId() != other {
		t.Fatalf("the removal's context names %v (%v), want %x", &member, err, other)
	}
}

// recordingTransport is a peerTransport that notes when messages are sent.
type recordingTransport struct {
	peerTransport // nil: only Send is used
	events        *[]string
}

func (r recordingTransport) Send(msgs []*raftpb.Message) {
	if len(msgs) > 0 {
		*r.events = append(*r.events, "send")
	}
}

// advancingNode is an etcd raft.Node of which handleReady uses only Advance.
type advancingNode struct {
	raft.Node // nil
	advanced  int
}

func (a *advancingNode) Advance()                    { a.advanced++ }
func (a *advancingNode) ReportUnreachable(id uint64) {}

func proposedEntry(t *testing.T, index, term, proposer, proposal uint64) *raftpb.Entry {
	t.Helper()
	data, err := proto.Marshal(&api.RaftEntry{Proposer: proposer, ProposalId: proposal, Payload: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	e := testEntry(index, term)
	e.Data = data
	return e
}

// TestLostLeadershipAfterCommittedEntriesAreDelivered: a Ready that tells
// a leader it lost leadership may also carry entries it proposed that are
// committed. Their proposers get their results; only the proposals still
// waiting after them are told the outcome is unknown. The node is a
// follower for the whole Ready: it sends its messages only after saving,
// and does not announce itself leader.
func TestLostLeadershipAfterCommittedEntriesAreDelivered(t *testing.T) {
	const self, other, term = 1, 2, 3
	n := testNode(t, self)
	var events []string
	n.disk = &recordingDisk{events: &events}
	n.transport = recordingTransport{events: &events}
	n.memStore = raft.NewMemoryStorage()
	rn := &advancingNode{}
	n.raftNode = rn
	n.loop.term = term
	n.leadership.update(self, term, raft.StateLeader)
	n.leadership.setReady(term)

	committed := n.proposals.register(7)
	pending := n.proposals.register(8)
	rd := raft.Ready{
		SoftState:        &raft.SoftState{Lead: other, RaftState: raft.StateFollower},
		HardState:        &raftpb.HardState{Term: proto.Uint64(term + 1), Commit: proto.Uint64(1)},
		CommittedEntries: []*raftpb.Entry{proposedEntry(t, 1, term, self, 7)},
		Messages:         []*raftpb.Message{{Type: raftpb.MessageType_MsgAppResp.Enum(), From: proto.Uint64(self), To: proto.Uint64(other)}},
	}
	if err := n.handleReady(rd); err != nil {
		t.Fatal(err)
	}

	requireResult(t, committed, 1)
	select {
	case res := <-pending:
		if !errors.Is(res.err, ErrLostLeadership) {
			t.Fatalf("the proposal still waiting got %v, %v; want ErrLostLeadership", res.result, res.err)
		}
	default:
		t.Fatal("the proposal still waiting was not told that leadership was lost")
	}
	if want := []string{"save", "send"}; !slices.Equal(events, want) {
		t.Fatalf("events %v, want %v: a follower sends only after saving", events, want)
	}
	if n.IsLeader() || n.leadership.isRaftLeader() || n.Leader() != other || n.apply.leaderTerm != 0 {
		t.Fatalf("after losing leadership: IsLeader %v, raft leader %v, leader %x, leaderTerm %d",
			n.IsLeader(), n.leadership.isRaftLeader(), n.Leader(), n.apply.leaderTerm)
	}
	if n.applied.get() != 1 || rn.advanced != 1 {
		t.Fatalf("applied %d, advanced %d times; want 1 and 1", n.applied.get(), rn.advanced)
	}
}

// TestFollowersWaitingProposalsFailWhenTheirLeaderGoes: a follower hands
// its proposals to the leader it follows. When another leader follows it
// (or none), and when the transport reports the leader unreachable, the
// proposals still waiting fail at once with an unknown outcome, instead
// of waiting out their callers' deadlines for entries the old leader may
// never have received; an entry committed in the same Ready still hands
// its result to its proposer. Other changes leave them waiting.
func TestFollowersWaitingProposalsFailWhenTheirLeaderGoes(t *testing.T) {
	const self, leader, next, term = 1, 2, 3, 3
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, n *Node)
		want   error // nil: the proposal keeps waiting
	}{
		{"another leader", func(t *testing.T, n *Node) {
			readySoftState(t, n, &raft.SoftState{Lead: next, RaftState: raft.StateFollower})
		}, errLeaderChanged},
		{"an election", func(t *testing.T, n *Node) {
			readySoftState(t, n, &raft.SoftState{Lead: 0, RaftState: raft.StatePreCandidate})
		}, errLeaderChanged},
		{"this node leads", func(t *testing.T, n *Node) {
			readySoftState(t, n, &raft.SoftState{Lead: self, RaftState: raft.StateLeader})
		}, errLeaderChanged},
		{"the same leader", func(t *testing.T, n *Node) {
			readySoftState(t, n, &raft.SoftState{Lead: leader, RaftState: raft.StateFollower})
		}, nil},
		{"the leader unreachable", func(t *testing.T, n *Node) {
			(*transportEvents)(n).ReportUnreachable(leader)
		}, errLeaderUnreachable},
		{"another follower unreachable", func(t *testing.T, n *Node) {
			(*transportEvents)(n).ReportUnreachable(next)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := testNode(t, self)
			var events []string
			n.disk = &recordingDisk{events: &events}
			n.transport = recordingTransport{events: &events}
			n.memStore = raft.NewMemoryStorage()
			n.raftNode = &advancingNode{}
			n.loop.term = term
			n.leadership.update(leader, term, raft.StateFollower)
			pending := n.proposals.register(8)

			tc.change(t, n)
			select {
			case res := <-pending:
				if tc.want == nil {
					t.Fatalf("the waiting proposal got %v, %v; want it still waiting", res.result, res.err)
				}
				if !errors.Is(res.err, tc.want) || !errors.Is(res.err, ErrLostLeadership) {
					t.Fatalf("the waiting proposal got %v; want %v, which matches ErrLostLeadership", res.err, tc.want)
				}
			default:
				if tc.want != nil {
					t.Fatalf("the waiting proposal is still waiting; want %v", tc.want)
				}
			}
		})
	}
}

// readySoftState hands n a Ready that changes its soft state and commits
// an entry n proposed as proposal 7, which must get its result.
func readySoftState(t *testing.T, n *Node, ss *raft.SoftState) {
	t.Helper()
	committed := n.proposals.register(7)
	rd := raft.Ready{
		SoftState:        ss,
		HardState:        &raftpb.HardState{Term: proto.Uint64(n.loop.term), Commit: proto.Uint64(1)},
		CommittedEntries: []*raftpb.Entry{proposedEntry(t, 1, n.loop.term, n.id, 7)},
	}
	if err := n.handleReady(rd); err != nil {
		t.Fatal(err)
	}
	requireResult(t, committed, 1)
}

// requireResult requires the result of the committed proposal waiting on
// ch to be there, and to be want, the entry's index.
func requireResult(t *testing.T, ch <-chan proposalResult, want uint64) {
	t.Helper()
	select {
	case res := <-ch:
		if res.err != nil || res.result != want {
			t.Fatalf("the committed proposal got %v, %v; want its result, %d", res.result, res.err, want)
		}
	default:
		t.Fatal("the committed proposal got no result")
	}
}

// gatedMachine is a StateMachine whose Apply waits until gate is closed,
// and which records the entries it applied and whether two Apply calls
// ever ran at once.
type gatedMachine struct {
	gate     chan struct{}
	mu       sync.Mutex
	inFlight int
	overlap  bool
	applied  []uint64
}

func (g *gatedMachine) Apply(index uint64, _ []byte) (any, error) {
	g.mu.Lock()
	g.inFlight++
	g.overlap = g.overlap || g.inFlight > 1
	g.mu.Unlock()
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	g.inFlight--
	g.applied = append(g.applied, index)
	return index, nil
}

func (g *gatedMachine) Snapshot() (func(io.Writer) error, error) {
	return func(io.Writer) error { return nil }, nil
}
func (g *gatedMachine) Restore(uint64, io.Reader) error { return nil }

// TestDataEntriesApplyBehindTheRunGoroutine: a Ready whose committed
// entries all carry data, more than inlineRun, is advanced before they are
// applied (the apply goroutine applies them); a Ready with an entry of
// another kind waits until they are applied before it applies its own, so
// entries are applied one at a time and in order; and a small Ready on an
// idle node is applied at once.
func TestDataEntriesApplyBehindTheRunGoroutine(t *testing.T) {
	const self, term = 1, 2
	n := testNode(t, self)
	gm := &gatedMachine{gate: make(chan struct{})}
	n.sm = gm
	n.disk = &recordingDisk{}
	n.memStore = raft.NewMemoryStorage()
	rn := &advancingNode{}
	n.raftNode = rn
	n.transport = recordingTransport{events: new([]string)}
	n.loop.term = term
	n.leadership.update(self, term, raft.StateLeader)
	n.leadership.setReady(term)
	applying := make(chan struct{})
	go func() {
		defer close(applying)
		n.applyLoop()
	}()
	defer func() {
		n.stop(nil)
		<-applying
	}()

	first := n.proposals.register(7)
	later := n.proposals.register(9)
	run := []*raftpb.Entry{proposedEntry(t, 1, term, self, 7)}
	for i := uint64(2); i <= inlineRun+1; i++ {
		run = append(run, proposedEntry(t, i, term, self+1, i))
	}
	if err := n.handleReady(raft.Ready{
		HardState:        &raftpb.HardState{Term: proto.Uint64(term), Commit: proto.Uint64(inlineRun + 1)},
		CommittedEntries: run,
	}); err != nil {
		t.Fatal(err)
	}
	if rn.advanced != 1 || n.applied.get() != 0 {
		t.Fatalf("after a Ready of data entries: advanced %d times, applied %d; want 1 and 0 (applied behind)",
			rn.advanced, n.applied.get())
	}

	mixed := make(chan error, 1)
	go func() {
		mixed <- n.handleReady(raft.Ready{
			HardState:        &raftpb.HardState{Term: proto.Uint64(term), Commit: proto.Uint64(inlineRun + 3)},
			CommittedEntries: []*raftpb.Entry{testEntry(inlineRun+2, term), proposedEntry(t, inlineRun+3, term, self, 9)},
		})
	}()
	// The second Ready waits for the first entry (an applied-index waiter)
	// or, wrongly, applies its own at once (a second Apply in flight).
	deadline := time.Now().Add(10 * time.Second)
	for {
		n.applied.mu.Lock()
		waiting := len(n.applied.waiters) > 0
		n.applied.mu.Unlock()
		gm.mu.Lock()
		two := gm.inFlight > 1
		gm.mu.Unlock()
		if waiting || two {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second Ready neither waited for the first entry nor applied its own")
		}
		runtime.Gosched()
	}
	close(gm.gate)
	if err := <-mixed; err != nil {
		t.Fatal(err)
	}
	var want []uint64
	for i := uint64(1); i <= inlineRun+1; i++ {
		want = append(want, i)
	}
	want = append(want, inlineRun+3)
	gm.mu.Lock()
	if gm.overlap || !slices.Equal(gm.applied, want) {
		t.Fatalf("applied %v, two at once %v; want %v, one at a time", gm.applied, gm.overlap, want)
	}
	gm.mu.Unlock()
	for i, ch := range []<-chan proposalResult{first, later} {
		if res := <-ch; res.err != nil || res.result != []uint64{1, inlineRun + 3}[i] {
			t.Fatalf("proposal %d got %v, %v", i, res.result, res.err)
		}
	}
	if n.applied.get() != inlineRun+3 || rn.advanced != 2 {
		t.Fatalf("applied %d, advanced %d times; want %d and 2", n.applied.get(), rn.advanced, inlineRun+3)
	}

	// With nothing queued, a Ready of a few entries is applied before
	// handleReady returns.
	if err := n.handleReady(raft.Ready{
		HardState:        &raftpb.HardState{Term: proto.Uint64(term), Commit: proto.Uint64(inlineRun + 4)},
		CommittedEntries: []*raftpb.Entry{proposedEntry(t, inlineRun+4, term, self+1, 1)},
	}); err != nil {
		t.Fatal(err)
	}
	if n.applied.get() != inlineRun+4 {
		t.Fatalf("a small Ready on an idle node: applied %d, want %d at once", n.applied.get(), inlineRun+4)
	}
}

// TestOwnSnapshotOlderThanAReceivedOneIsDropped: the Run goroutine saves a
// snapshot received from the leader to disk before it puts it in the
// in-memory log. A snapshot of the node's own, taken in the background in
// that window, is refused by the disk as older and dropped, without
// stopping the node.
func TestOwnSnapshotOlderThanAReceivedOneIsDropped(t *testing.T) {
	n := testNode(t, 1)
	n.memStore = raft.NewMemoryStorage()
	disk, err := storage.Create(storage.Config{Dir: n.cfg.StateDir, Logger: n.log}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	n.disk = disk
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 10; i++ {
		ents = append(ents, testEntry(i, 1))
	}
	hs := &raftpb.HardState{Term: proto.Uint64(1), Vote: proto.Uint64(1), Commit: proto.Uint64(10)}
	if err := disk.Save(hs, ents); err != nil {
		t.Fatal(err)
	}
	if err := n.memStore.Append(ents); err != nil {
		t.Fatal(err)
	}
	cs := &raftpb.ConfState{Voters: []uint64{1}}
	received := &raftpb.Snapshot{Data: []byte("the leader's state at 20"), Metadata: &raftpb.SnapshotMetadata{
		Index: proto.Uint64(20), Term: proto.Uint64(1), ConfState: cs,
	}}
	if err := disk.SaveSnapshot(received); err != nil {
		t.Fatal(err)
	}

	write := func(w io.Writer) error {
		_, err := w.Write([]byte("this node's state at 10"))
		return err
	}
	res := n.takeSnapshot(10, cs, &api.RaftMembershipState{}, write)
	if res.err != nil {
		t.Fatalf("own snapshot at 10 after a received one at 20: %v; want it dropped without an error", res.err)
	}
	if res.saved {
		t.Fatal("own snapshot at 10 saved over a received one at 20")
	}
}

// TestCompactIndexBoundsTheKeptLog: after a snapshot at 20 of entries
// of 100 bytes, the in-memory log keeps LogEntriesForSlowFollowers
// entries, fewer when their data would exceed SnapshotLogBytes.
func TestCompactIndexBoundsTheKeptLog(t *testing.T) {
	for _, tt := range []struct {
		name      string
		keep      uint64
		logBytes  uint64
		compactTo uint64
	}{
		{"by count", 10, 64 << 20, 10},
		{"by bytes", 10, 350, 17},
		{"bytes exactly", 10, 300, 17},
		{"less than one entry", 10, 50, 20},
		{"more entries than held", 50, 64 << 20, 0},
		{"more entries than held, by bytes", 50, 1000, 10},
		{"none kept", 0, 64 << 20, 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n := testNode(t, 1)
			n.cfg.LogEntriesForSlowFollowers, n.cfg.SnapshotLogBytes = tt.keep, tt.logBytes
			n.memStore = raft.NewMemoryStorage()
			var ents []*raftpb.Entry
			for i := uint64(1); i <= 20; i++ {
				e := testEntry(i, 1)
				e.Data = make([]byte, 100)
				ents = append(ents, e)
			}
			if err := n.memStore.Append(ents); err != nil {
				t.Fatal(err)
			}
			if got := n.compactIndex(20); got != tt.compactTo {
				t.Fatalf("compactIndex(20) = %d, want %d", got, tt.compactTo)
			}
		})
	}
}
