package raft

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/raft/membership"
	"github.com/shoal-project/shoal/raft/storage"
)

// logStore is the durable Raft log; raft/storage implements it.
type logStore interface {
	// Save appends entries and the hard state durably.
	Save(hs *raftpb.HardState, ents []*raftpb.Entry) error
	// SaveSnapshot writes the snapshot file, then the WAL record that
	// names it, then drops files no kept snapshot needs. The snapshot's
	// state file must be installed first.
	SaveSnapshot(snap *raftpb.Snapshot) error
	// CreateState starts the state file of a snapshot, in a temporary
	// file until it is installed.
	CreateState(term, index uint64) (*storage.StateWriter, error)
	// OpenState reads an installed state file back, checking it.
	OpenState(term, index uint64, state storage.StateInfo) (io.ReadCloser, error)
	Close() error
}

// peerTransport sends Raft messages to peers; raft/transport implements it.
type peerTransport interface {
	Send(msgs []*raftpb.Message)
	AddPeer(id uint64, addr string) error
	UpdatePeer(id uint64, addr string) error
	RemovePeer(id uint64)
	Active(id uint64) bool
	Peers() []uint64
	PeerConn(id uint64) (*grpc.ClientConn, error)
	Stop()
}

// Node is one manager's Raft node. Create it with NewNode, then call
// JoinAndStart once and Run once; every other method is safe for concurrent
// use from any goroutine once JoinAndStart has returned.
type Node struct {
	cfg   Config
	sm    StateMachine
	log   *slog.Logger
	clock clockwork.Clock

	// Set by JoinAndStart, read-only afterwards.
	id        uint64
	raftNode  raft.Node
	memStore  *raft.MemoryStorage
	disk      logStore
	transport peerTransport

	cluster    *membership.Cluster
	leadership *leadership
	proposals  *proposalWaiters
	applied    appliedIndex
	reads      readBatcher

	// proposalSeq numbers this process's proposals; it starts at a random
	// value so that IDs of an earlier run, replayed from the WAL, do not
	// meet the waiters of this one.
	proposalSeq atomic.Uint64
	// confChangeTurn holds a token while a membership change is decided,
	// proposed and not yet applied: Raft drops a configuration change
	// proposed while another is pending. pendingConfChange is that
	// change's proposal ID, 0 when none is in the log unapplied.
	confChangeTurn    chan struct{}
	pendingConfChange atomic.Uint64
	// advanced is the applied index Raft has been told of (Advance).
	advanced appliedIndex
	// lastContact is when each peer's last message arrived (Raft ID to
	// *atomic.Int64 of UnixNano on the node's clock).
	lastContact sync.Map

	// Owned by the Run goroutine.
	loop loopState
	// Owned by whoever applies: the apply goroutine while entries are
	// queued to it, the Run goroutine once drainApply returned.
	apply applyState
	// applyc queues runs of committed entries to the apply goroutine.
	applyc chan []*raftpb.Entry

	// restartCommit is the commit index of the WAL the node restarted
	// from, 0 when it did not restart.
	restartCommit uint64

	// lastHeard is when a peer's message last arrived (UnixNano on the
	// node's clock).
	lastHeard atomic.Int64

	// received holds the state files that came with the leader's
	// snapshots, until a Ready installs them.
	received receivedStates

	started      atomic.Bool
	ran          atomic.Bool // Run was called, or Stop released the node instead
	stopOnce     sync.Once
	stopped      chan struct{} // closed when the node starts stopping
	done         chan struct{} // closed when Run has released everything
	stopReason   atomic.Pointer[error]
	snapshotDone chan snapshotResult
	snapshotAsk  chan struct{}
	readStates   chan raft.ReadState
	wg           sync.WaitGroup
}

// loopState is the state that only the Run goroutine touches.
type loopState struct {
	confState     *raftpb.ConfState
	snapshotIndex uint64
	snapshotting  bool
	term          uint64
	removed       bool
	// snapshotAt, when set, asks for a snapshot at this index or later
	// before SnapshotInterval is reached.
	snapshotAt uint64
	// campaignAt, when set, is the index after whose application the node
	// campaigns: a bootstrapping node does so at once rather than after an
	// election timeout.
	campaignAt uint64
	// queued is the index of the last committed entry handed to apply
	// (applied, or queued to the apply goroutine); Raft has been told it
	// is applied.
	queued uint64
	// snapshotBytes is the size of the last snapshot's state;
	// queuedBytes the data of the entries handed to apply since it was
	// taken.
	snapshotBytes, queuedBytes uint64
}

// applyState is what applying the entries of the log reads and writes.
type applyState struct {
	// leaderTerm is the term in which this node became leader, until it
	// has applied an entry of that term and so every earlier one.
	leaderTerm uint64
	// appliedTerm is the term of the last applied entry.
	appliedTerm uint64
	// run is applyEntries' buffer of normal entries applied together.
	run []runEntry
}

// NewNode returns a node that will apply committed entries to sm. Nothing
// is read or started until JoinAndStart.
func NewNode(cfg Config, sm StateMachine) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sm == nil {
		return nil, fmt.Errorf("raft: NewNode: state machine is nil")
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg:          cfg,
		sm:           sm,
		log:          cfg.Logger,
		clock:        cfg.Clock,
		cluster:      membership.NewCluster(),
		leadership:   newLeadership(),
		proposals:    newProposalWaiters(),
		stopped:      make(chan struct{}),
		done:         make(chan struct{}),
		snapshotDone: make(chan snapshotResult, 1),
		snapshotAsk:  make(chan struct{}, 1),
		readStates:   make(chan raft.ReadState, 64),
		applyc:       make(chan []*raftpb.Entry, applyQueue),

		confChangeTurn: make(chan struct{}, 1),
	}
	n.reads.init()
	n.proposalSeq.Store(randomUint64())
	return n, nil
}

// ID returns the node's Raft ID, 0 until JoinAndStart has returned.
func (n *Node) ID() uint64 {
	if !n.started.Load() { // orders the read after JoinAndStart's write
		return 0
	}
	return n.id
}

// NodeID returns the manager's stable identity.
func (n *Node) NodeID() string { return n.cfg.NodeID }

// Cluster returns the membership as this node has applied it. The caller
// must not change it.
func (n *Node) Cluster() *membership.Cluster { return n.cluster }

// Removed reports whether this node knows it was removed from the
// cluster.
func (n *Node) Removed() bool {
	if p := n.stopReason.Load(); p != nil && errors.Is(*p, ErrMemberRemoved) {
		return true
	}
	return n.cluster.IsRemoved(n.id)
}

// PeerConn returns the transport's connection to the member with Raft ID
// id, for calls to that manager other than Raft traffic (forwarding).
func (n *Node) PeerConn(id uint64) (*grpc.ClientConn, error) {
	if !n.started.Load() {
		return nil, ErrNotStarted
	}
	return n.transport.PeerConn(id)
}

// ElectionTimeout is how long a follower waits without a leader before it
// campaigns.
func (n *Node) ElectionTimeout() time.Duration { return n.cfg.electionTimeout() }

// WaitReplayed waits until the node has applied every entry that its WAL
// held committed when it restarted, so that its membership is that of the
// cluster when it stopped. A node that did not restart returns at once.
func (n *Node) WaitReplayed(ctx context.Context) error {
	if err := n.checkRunning(); err != nil {
		return err
	}
	select {
	case <-n.applied.wait(n.restartCommit):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.stopped:
		return ErrStopped
	}
}

// Done is closed when the node has stopped and released its resources.
func (n *Node) Done() <-chan struct{} { return n.done }

// Stop asks the node to stop and waits until Run has returned. It is safe
// to call more than once, and before Run: it then releases what
// JoinAndStart opened itself, and Run returns at once.
func (n *Node) Stop() {
	n.stop(nil)
	if !n.started.Load() {
		return
	}
	if n.ran.CompareAndSwap(false, true) {
		// Run was never called: release what JoinAndStart opened here.
		n.shutdown()
		return
	}
	<-n.done
}

// stop starts stopping the node for reason (nil for a requested stop).
func (n *Node) stop(reason error) {
	n.stopOnce.Do(func() {
		if reason != nil {
			n.stopReason.Store(&reason)
		}
		close(n.stopped)
	})
}

func (n *Node) checkRunning() error {
	if !n.started.Load() {
		return ErrNotStarted
	}
	select {
	case <-n.stopped:
		return ErrStopped
	default:
		return nil
	}
}

// raftConfig returns the etcd raft configuration for this node.
func (n *Node) raftConfig(applied uint64) *raft.Config {
	return &raft.Config{
		ID:                        n.id,
		ElectionTick:              n.cfg.ElectionTick,
		HeartbeatTick:             n.cfg.HeartbeatTick,
		Storage:                   n.memStore,
		Applied:                   applied,
		MaxSizePerMsg:             n.cfg.MaxSizePerMsg,
		MaxInflightMsgs:           n.cfg.MaxInflightMsgs,
		MaxUncommittedEntriesSize: n.cfg.MaxUncommittedEntriesSize,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		// Without ForwardProposals, proposals are made on the leader
		// only and a follower hands callers an error naming the leader.
		// With it, a follower forwards them; one lost on the way (a full
		// queue to the leader, a leader that fails before appending it)
		// ends the call with the leader's change or with the caller's
		// deadline.
		DisableProposalForwarding: !n.cfg.ForwardProposals,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{n.log},
	}
}

func randomUint64() uint64 {
	var b [8]byte
	if _, err := io.ReadFull(rand.Reader, b[:]); err != nil {
		panic(fmt.Sprintf("raft: reading random bytes: %v", err))
	}
	return binary.BigEndian.Uint64(b[:])
}

// newRaftID returns a random non-zero Raft ID that no current or removed
// member has.
func (n *Node) newRaftID() uint64 {
	for {
		if id := randomUint64(); id != 0 && !n.cluster.IsUsed(id) {
			return id
		}
	}
}

// Run drives the node: it ticks, and handles every Ready (persist, send,
// apply, snapshot, advance) until ctx ends, Stop is called, or a fatal error
// happens. It returns nil after a requested stop, ErrMemberRemoved when this
// node was removed from the cluster, and the error otherwise (a persistence
// error among them: the node never runs on after one). When Run returns,
// the node has released its disk and network resources.
func (n *Node) Run(ctx context.Context) error {
	if !n.started.Load() {
		return ErrNotStarted
	}
	if !n.ran.CompareAndSwap(false, true) {
		// Stop came first and released the node (or Run was called
		// twice): nothing to run, as after a stop.
		<-n.done
		if p := n.stopReason.Load(); p != nil {
			return *p
		}
		return nil
	}
	err := n.runLoop(ctx)
	if errors.Is(err, errStopping) {
		err = nil // the stop's reason, if any, is returned below
	}
	n.stop(err)
	n.shutdown()
	if err == nil {
		if p := n.stopReason.Load(); p != nil {
			err = *p
		}
	}
	return err
}

func (n *Node) runLoop(ctx context.Context) error {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.readLoop()
	}()
	n.lastHeard.Store(n.clock.Now().UnixNano())
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.probeWhenForgotten()
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.promoteLearners()
	}()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.applyLoop()
	}()
	ticker := n.clock.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ticker.Chan():
			n.raftNode.Tick()
		case rd := <-n.raftNode.Ready():
			if err := n.handleReady(rd); err != nil {
				return err
			}
			if n.loop.removed {
				return ErrMemberRemoved
			}
		case res := <-n.snapshotDone:
			if err := n.finishSnapshot(res); err != nil {
				return err
			}
		case <-n.snapshotAsk:
			n.loop.snapshotAt = max(n.loop.queued, 1)
			if err := n.maybeSnapshot(); err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		case <-n.stopped:
			return nil
		}
	}
}

// shutdown releases everything in dependency order: nothing is sent or
// written after the disk is closed.
func (n *Node) shutdown() {
	n.raftNode.Stop()
	n.transport.Stop()
	n.wg.Wait()
	n.received.discardAll()
	if err := n.disk.Close(); err != nil {
		n.log.Error("closing the Raft log", "err", err)
	}
	n.proposals.failAll(ErrStopped)
	n.leadership.update(0, n.loop.term, raft.StateFollower)
	close(n.done)
	n.log.Info("raft node stopped")
}
