package raft_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	etcdraft "go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/rafttest"
	"github.com/shoal-project/shoal/raft/storage"
)

var errDiskFull = errors.New("disk full")

// failingWALs wraps etcd's WAL so that saves fail once failing is set.
type failingWALs struct {
	storage.WALFactory
	failing *atomic.Bool
}

func (f failingWALs) Create(dir string, md []byte) (storage.WAL, error) {
	w, err := f.WALFactory.Create(dir, md)
	return failingWAL{w, f.failing}, err
}

func (f failingWALs) Open(dir string, at *walpb.Snapshot) (storage.WAL, error) {
	w, err := f.WALFactory.Open(dir, at)
	return failingWAL{w, f.failing}, err
}

type failingWAL struct {
	storage.WAL
	failing *atomic.Bool
}

func (w failingWAL) Save(st *raftpb.HardState, ents []*raftpb.Entry) error {
	if w.failing.Load() && len(ents) > 0 {
		return errDiskFull
	}
	return w.WAL.Save(st, ents)
}

// TestPersistenceErrorStopsTheNode checks that a WAL write error stops the
// node and comes out of Run, and that the caller waiting on the entry is
// not told it succeeded.
func TestPersistenceErrorStopsTheNode(t *testing.T) {
	var failing atomic.Bool
	c := rafttest.NewCluster(t, 1, rafttest.Options{Configure: func(cfg *raft.Config) {
		cfg.WAL = failingWALs{storage.EtcdWAL(cfg.Logger), &failing}
	}})
	c.MustPropose("durable")
	leader := c.Leader()
	failing.Store(true)
	if _, err := leader.Node().ProposeValue(context.Background(), []byte("lost")); err == nil {
		t.Fatal("a proposal whose entry could not be written succeeded")
	}
	if err := leader.RunErr(); !errors.Is(err, errDiskFull) {
		t.Fatalf("Run returned %v, want the WAL's error", err)
	}
	_ = leader.Stop()
	failing.Store(false)
	leader.Restart()
	c.WaitFor("the restarted node to lead", func() bool { return leader.Node().IsLeader() })
	got := leader.Log().Payloads()
	if len(got) != 1 || got[0] != "durable" {
		t.Fatalf("after restart the log is %v, want [durable]", got)
	}
}

// unsyncedCommitLost wraps etcd's WAL to model a crash at Close: a
// HardState that only moves the commit index, which raft lets the WAL
// write without a sync, reaches the disk only with the next synced write,
// and is lost if none comes before the end.
type unsyncedCommitLost struct{ storage.WALFactory }

func (f unsyncedCommitLost) Create(dir string, md []byte) (storage.WAL, error) {
	w, err := f.WALFactory.Create(dir, md)
	return &commitLosingWAL{WAL: w}, err
}

func (f unsyncedCommitLost) Open(dir string, at *walpb.Snapshot) (storage.WAL, error) {
	w, err := f.WALFactory.Open(dir, at)
	return &commitLosingWAL{WAL: w}, err
}

type commitLosingWAL struct {
	storage.WAL
	last    *raftpb.HardState // the last HardState given to Save
	pending *raftpb.HardState // a commit-only HardState not synced yet
}

func (w *commitLosingWAL) Save(st *raftpb.HardState, ents []*raftpb.Entry) error {
	if st != nil && !etcdraft.IsEmptyHardState(st) {
		synced := w.last == nil || etcdraft.MustSync(st, w.last, len(ents))
		w.last = proto.Clone(st).(*raftpb.HardState)
		if !synced {
			w.pending = w.last
			return nil
		}
	} else if len(ents) > 0 && w.pending != nil {
		st = w.pending // written and synced with the entries
	}
	w.pending = nil
	return w.WAL.Save(st, ents)
}

func (w *commitLosingWAL) flush() error {
	if w.pending == nil {
		return nil
	}
	st := w.pending
	w.pending = nil
	return w.WAL.Save(st, nil)
}

func (w *commitLosingWAL) SaveSnapshot(s *walpb.Snapshot) error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.WAL.SaveSnapshot(s)
}

func (w *commitLosingWAL) Sync() error {
	if err := w.flush(); err != nil {
		return err
	}
	return w.WAL.Sync()
}

// TestForceNewClusterKeepsEntriesAboveTheSavedCommitIndex: a HardState
// that only moves the commit index is not synced, so after a crash the
// WAL's commit index may lag behind entries that were committed and
// acknowledged. ForceNewCluster must keep them: every entry in the WAL.
func TestForceNewClusterKeepsEntriesAboveTheSavedCommitIndex(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{Configure: func(cfg *raft.Config) {
		cfg.WAL = unsyncedCommitLost{storage.EtcdWAL(cfg.Logger)}
	}})
	var acked []string
	var last uint64
	for i := range 10 {
		p := fmt.Sprintf("v%d", i)
		last = c.MustPropose(p)
		acked = append(acked, p)
	}
	// The leader saves each entry before it is committed; with one
	// proposal at a time, the commit of the last one is saved alone, and
	// lost.
	survivor := c.Leader()
	for _, m := range c.Members() {
		if err := m.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	disk, loaded, err := storage.Open(storage.Config{Dir: survivor.Dir})
	if err != nil {
		t.Fatal(err)
	}
	commit, lastSaved := loaded.HardState.GetCommit(), loaded.Entries[len(loaded.Entries)-1].GetIndex()
	if err := disk.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("the WAL holds entries up to %d, its commit index is %d; the last acknowledged entry is %d", lastSaved, commit, last)
	if commit >= last || lastSaved < last {
		t.Fatalf("the WAL's commit index is %d and its last entry %d; the test needs an acknowledged entry %d above the commit index",
			commit, lastSaved, last)
	}

	survivor.RestartForced()
	c.WaitFor("the survivor to lead alone", func() bool { return survivor.Node().IsLeader() })
	checkContains(t, c, acked)
	c.MustPropose("after recovery")
	sameLogs(t, c, append(acked, "after recovery"))
}

// A proposal forwarded to a node that knows no leader (a leader that
// stepped down while the proposal was on the way) is dropped at once: Raft
// would hold it until a leader is known, and with it every message behind
// it on its stream, the new leader's among them.
func TestForwardedProposalWithoutLeaderIsDropped(t *testing.T) {
	c := rafttest.NewCluster(t, 3, rafttest.Options{})
	c.MustPropose("first")
	alone := c.Leader()
	var peer uint64
	for _, m := range c.Followers() {
		peer = m.ID()
		if err := m.Stop(); err != nil {
			t.Fatalf("stop %x: %v", m.ID(), err)
		}
	}
	c.WaitFor("the last member to know no leader", func() bool { return alone.Node().Leader() == 0 })

	prop := &raftpb.Message{
		Type:    raftpb.MsgProp.Enum(),
		From:    proto.Uint64(peer),
		To:      proto.Uint64(alone.ID()),
		Entries: []*raftpb.Entry{{Data: []byte("forwarded")}},
	}
	// The call's context never ends: only dropping the proposal returns.
	if err := alone.Node().ProcessRaftMessage(context.Background(), prop); err != nil {
		t.Fatalf("a forwarded proposal without a leader: %v, want it dropped", err)
	}
}
