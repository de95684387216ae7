package raft

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft/storage"
)

// Config configures a Node. Start from DefaultConfig and set the identity
// fields; every field states its unit and default.
type Config struct {
	// NodeID is the manager's stable identity. Required.
	NodeID string
	// StateDir is the directory of the Raft state; the WAL and snapshots
	// live in StateDir/wal and StateDir/snap. Required.
	StateDir string
	// AdvertiseAddr is the address at which peers reach this node's Raft
	// service (host:port). Required.
	AdvertiseAddr string
	// Join, when set, asks a member of an existing cluster to add this
	// node (clusterrpc.JoinThrough dials one). Nil means: bootstrap a new
	// cluster. Ignored when StateDir already holds a WAL (the node
	// restarts from it).
	Join JoinFunc
	// Learner joins the cluster as a learner for good: the node receives
	// the log and can serve reads, but does not vote and is never promoted
	// without an operator's word. Only with Join on an empty StateDir.
	Learner bool
	// PromotionLag is the most entries a learner may be behind the
	// leader's commit index to be promoted to voter. Default 500.
	PromotionLag uint64
	// ForceNewCluster restarts the node from its WAL as the only member of
	// a new cluster, keeping every entry of the WAL, hence every committed
	// one it has. For recovery after the loss of a quorum for good.
	ForceNewCluster bool
	// InitialState, when set, makes a bootstrap (no WAL, no Join) found
	// the cluster from a state of the state machine taken elsewhere, a
	// backup, instead of an empty one: the log starts after its index.
	// Ignored when StateDir already holds a WAL.
	InitialState *InitialState

	// TickInterval is the duration of one Raft tick. Default 100ms.
	TickInterval time.Duration
	// ElectionTick is the number of ticks without a leader before a
	// follower campaigns. Default 10 (1s with the default tick).
	ElectionTick int
	// HeartbeatTick is the number of ticks between heartbeats. Default 1.
	HeartbeatTick int

	// SnapshotInterval is the number of applied entries after which the
	// node takes a snapshot, once those entries' data also adds up to
	// 1/SnapshotCostRatio of the last snapshot's size. Default 10000.
	SnapshotInterval uint64
	// SnapshotLogBytes takes a snapshot before SnapshotInterval entries
	// once the entries applied since the last one carry this many bytes of
	// data (SnapshotCostRatio still applies), so that the log held in
	// memory until a snapshot compacts it, and replayed after a restart,
	// stays about this size whatever the entries' size: 10,000 entries
	// of 1 MiB objects would be 10 GiB on every manager. The price is
	// more snapshots of a store of large objects: with 64 MiB, 10,000
	// objects of 16 KiB took 17% fewer writes a second than with 128.
	// Default 128 MiB.
	SnapshotLogBytes uint64
	// SnapshotCostRatio bounds the bytes of snapshot written per byte of
	// entries applied, so that a large store is written less often and
	// snapshots cost a bounded share of each write whatever the store's
	// size. A store of a million objects (about 350 MB) is then written
	// every 44 MB of entries, not every 10,000 entries (4 MB): written
	// every few seconds it took most of every manager's time, and the
	// write rate fell as the store grew. The price: up to that much more
	// log held in memory and replayed after a restart. A very large ratio
	// leaves SnapshotInterval alone to decide. Default 8.
	SnapshotCostRatio uint64
	// LogEntriesForSlowFollowers is the number of entries kept in memory
	// before a snapshot's index, so a follower slightly behind catches up
	// without a snapshot; fewer when their data would add up to more than
	// SnapshotLogBytes. Default 500.
	LogEntriesForSlowFollowers uint64
	// KeepOldSnapshots is the number of snapshot files kept besides the
	// newest. Default 0.
	KeepOldSnapshots int

	// ForwardProposals lets ProposeValue work on a follower that knows a
	// leader: the proposal goes to Raft, which forwards it to the leader
	// among the Raft messages, and the call returns once the entry is
	// applied here. Through a change of leader it keeps waiting (the new
	// leader commits the entry if the old one had replicated it); a
	// proposal lost on the way ends with the caller's context. Without it a
	// follower refuses with a *NotLeaderError, for its caller to forward
	// the call.
	ForwardProposals bool

	// MaxProposalSize is the largest payload ProposeValue accepts, in
	// bytes. Default 1.5 MiB, which leaves room under gRPC's 4 MiB
	// message limit for batching entries into one message.
	MaxProposalSize int
	// MaxSizePerMsg is the largest append message to a follower, in bytes.
	// Default 1 MiB.
	MaxSizePerMsg uint64
	// MaxInflightMsgs is the number of append messages in flight to one
	// follower. Default 4: while that many wait for the follower's answer,
	// new entries gather in the leader's log and go out together in the
	// next message, up to MaxSizePerMsg, once an answer comes. A larger
	// window sends one message per proposal, and gets one answer for
	// each, on both sides (docs/performance.md, "Fewer append messages").
	MaxInflightMsgs int
	// MaxUncommittedEntriesSize bounds the bytes of entries proposed but
	// not committed; proposals beyond it fail with ErrProposalDropped
	// until the cluster catches up. Default 64 MiB.
	MaxUncommittedEntriesSize uint64
	// ReadTimeout bounds one ReadIndex round before it is retried. Default
	// 2s.
	ReadTimeout time.Duration

	// WAL, when set, replaces etcd's write-ahead log, for tests that
	// inject disk faults. Default: etcd's.
	WAL storage.WALFactory
	// Cipher, when set, encrypts the data of entries and snapshots in
	// StateDir (storage.Config.Cipher); the manager passes its *keys.Keys.
	// It must be the same kind on every start of a StateDir, and must stay
	// usable until Run has returned. Default: none, data in clear.
	Cipher storage.Cipher

	// DialOptions are used for every connection to a peer (transport
	// credentials among them).
	DialOptions []grpc.DialOption
	// Clock drives ticks and timeouts; tests pass a fake one. Default: the
	// real clock.
	Clock clockwork.Clock
	// Logger receives the node's logs. Default: discard.
	Logger *slog.Logger
}

// InitialState is a state machine's state to found a cluster from.
type InitialState struct {
	// Index is the Raft index the state was taken at; the cluster's log
	// goes on after it. Restore is given it. Required.
	Index uint64
	// Write writes the state, as the state machine's Restore reads it.
	// It may fail, and is called once.
	Write func(w io.Writer) error
}

// JoinFunc asks an existing cluster to add a manager, and returns the
// leader's answer: the new Raft ID and the members.
type JoinFunc func(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error)

// DefaultConfig returns a Config with every tunable set to its default and
// the identity fields empty.
func DefaultConfig() Config {
	return Config{
		TickInterval:               100 * time.Millisecond,
		ElectionTick:               10,
		HeartbeatTick:              1,
		SnapshotInterval:           10000,
		SnapshotLogBytes:           128 << 20,
		SnapshotCostRatio:          8,
		LogEntriesForSlowFollowers: 500,
		PromotionLag:               500,
		KeepOldSnapshots:           0,
		MaxProposalSize:            3 << 19, // 1.5 MiB
		MaxSizePerMsg:              1 << 20,
		MaxInflightMsgs:            4,
		MaxUncommittedEntriesSize:  64 << 20,
		ReadTimeout:                2 * time.Second,
	}
}

// Validate checks c and names the first bad value it finds.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("raft: config: "+format, args...)) }
	if c.NodeID == "" {
		bad("NodeID is empty")
	}
	if c.StateDir == "" {
		bad("StateDir is empty")
	}
	if c.AdvertiseAddr == "" {
		bad("AdvertiseAddr is empty")
	}
	if c.TickInterval <= 0 {
		bad("TickInterval %v must be positive", c.TickInterval)
	}
	if c.HeartbeatTick <= 0 {
		bad("HeartbeatTick %d must be positive", c.HeartbeatTick)
	}
	if c.ElectionTick <= c.HeartbeatTick {
		bad("ElectionTick %d must be greater than HeartbeatTick %d", c.ElectionTick, c.HeartbeatTick)
	}
	if c.SnapshotCostRatio == 0 {
		bad("SnapshotCostRatio must be positive")
	}
	if c.SnapshotInterval == 0 {
		bad("SnapshotInterval must be positive")
	}
	if c.SnapshotLogBytes == 0 {
		bad("SnapshotLogBytes must be positive")
	}
	if c.KeepOldSnapshots < 0 {
		bad("KeepOldSnapshots %d must not be negative", c.KeepOldSnapshots)
	}
	if c.MaxProposalSize <= 0 {
		bad("MaxProposalSize %d must be positive", c.MaxProposalSize)
	}
	if c.MaxSizePerMsg == 0 {
		bad("MaxSizePerMsg must be positive")
	}
	if c.MaxInflightMsgs <= 0 {
		bad("MaxInflightMsgs %d must be positive", c.MaxInflightMsgs)
	}
	if c.MaxUncommittedEntriesSize != 0 && c.MaxUncommittedEntriesSize < uint64(c.MaxProposalSize) {
		bad("MaxUncommittedEntriesSize %d is smaller than MaxProposalSize %d", c.MaxUncommittedEntriesSize, c.MaxProposalSize)
	}
	if c.ReadTimeout <= 0 {
		bad("ReadTimeout %v must be positive", c.ReadTimeout)
	}
	if c.Learner && c.ForceNewCluster {
		bad("Learner and ForceNewCluster exclude each other: a forced cluster's only member votes")
	}
	if c.ForceNewCluster && c.Join != nil {
		bad("ForceNewCluster and Join exclude each other")
	}
	if c.InitialState != nil {
		switch {
		case c.Join != nil:
			bad("InitialState founds a cluster, and Join joins one: they exclude each other")
		case c.ForceNewCluster:
			bad("InitialState and ForceNewCluster exclude each other")
		case c.InitialState.Index == 0 || c.InitialState.Write == nil:
			bad("InitialState needs an Index and a Write")
		}
	}
	return errors.Join(errs...)
}

// electionTimeout is the time a follower waits without a leader.
func (c *Config) electionTimeout() time.Duration {
	return time.Duration(c.ElectionTick) * c.TickInterval
}
