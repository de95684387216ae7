package raft_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"

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
