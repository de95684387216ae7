package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/rafttest"
	"github.com/shoal-project/shoal/store"
)

// storeCluster is a loopback Raft cluster whose members apply the log to
// stores, as managers do. A member's store lives in memory only: each
// restart builds a new one from the member's snapshot and WAL.
type storeCluster struct {
	*rafttest.Cluster
}

// newStoreCluster starts size members, each with a memberStore as its state
// machine, proposing through the member's current node. The members share
// one fake clock, so timestamps are distinct and predictable in size.
func newStoreCluster(t *testing.T, size int, opts rafttest.Options) *storeCluster {
	t.Helper()
	return newStoreClusterWith(t, size, opts, testConfig(t))
}

// newStoreClusterWith is newStoreCluster with every store built from cfg.
func newStoreClusterWith(t *testing.T, size int, opts rafttest.Options, cfg store.Config) *storeCluster {
	t.Helper()
	opts.NewStateMachine = func(m *rafttest.Member) raft.StateMachine {
		s, err := store.New(cfg, proposerFunc(func(ctx context.Context, payload []byte) (any, error) {
			return m.Node().ProposeValue(ctx, payload)
		}))
		if err != nil {
			t.Fatalf("store.New: %v", err)
		}
		return &memberStore{Store: s}
	}
	c := &storeCluster{Cluster: rafttest.NewCluster(t, size, opts)}
	// NewCluster stops its members in a cleanup registered before the
	// members' t.TempDir, so the directories would be removed first, while
	// the members may still write a snapshot into them. Cleanups run last
	// registered first: stop the members here, before the removal.
	t.Cleanup(func() {
		for _, m := range c.Members() {
			_ = m.Stop()
		}
	})
	return c
}

// memberStore is one member's store as Raft drives it. Besides applying, it
// records what Raft asked of it, so that tests can tell catch-up by
// snapshot from replay and know every committed change without relying on
// the watch path they check.
type memberStore struct {
	*store.Store

	mu        sync.Mutex
	applied   []appliedEntry // since the last restore, in index order
	restores  []uint64       // the index of every snapshot restored
	snapshots []uint64       // the store's version at every snapshot taken
}

// appliedEntry is one entry Apply was given and its verdict.
type appliedEntry struct {
	index uint64
	res   *store.Result // nil if the entry was rejected
	err   error
}

func (s *memberStore) Apply(index uint64, payload []byte) (any, error) {
	res, err := s.Store.Apply(index, payload)
	s.record(index, []any{res}, []error{err})
	return res, err
}

// ApplyBatch is the store's, recorded like Apply: the node applies a
// Ready's runs of entries with it.
func (s *memberStore) ApplyBatch(first uint64, payloads [][]byte) ([]any, []error) {
	results, errs := s.Store.ApplyBatch(first, payloads)
	s.record(first, results, errs)
	return results, errs
}

func (s *memberStore) record(first uint64, results []any, errs []error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, err := range errs {
		e := appliedEntry{index: first + uint64(i), err: err}
		if err == nil {
			e.res = results[i].(*store.Result)
		}
		s.applied = append(s.applied, e)
	}
}

func (s *memberStore) Snapshot() (func(w io.Writer) error, error) {
	write, err := s.Store.Snapshot()
	s.mu.Lock()
	s.snapshots = append(s.snapshots, s.Store.Version())
	s.mu.Unlock()
	return write, err
}

func (s *memberStore) Restore(index uint64, r io.Reader) error {
	if err := s.Store.Restore(index, r); err != nil {
		return err
	}
	s.mu.Lock()
	s.restores = append(s.restores, index)
	s.applied = nil
	s.mu.Unlock()
	return nil
}

// history returns the entries applied since the last restore and the
// restores so far.
func (s *memberStore) history() (applied []appliedEntry, restores []uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied), slices.Clone(s.restores)
}

// accepted returns the results of the entries accepted since the last
// restore, in index order.
func (s *memberStore) accepted() []*store.Result {
	applied, _ := s.history()
	var out []*store.Result
	for _, e := range applied {
		if e.res != nil {
			out = append(out, e.res)
		}
	}
	return out
}

// lastSnapshot returns the store's version at the last snapshot, 0 if none.
func (s *memberStore) lastSnapshot() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.snapshots) == 0 {
		return 0
	}
	return s.snapshots[len(s.snapshots)-1]
}

// snapshotVersions returns the store's version at every snapshot taken.
func (s *memberStore) snapshotVersions() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.snapshots)
}

// storeOf returns the store m runs now (a new one after each restart).
func storeOf(m *rafttest.Member) *memberStore { return m.SM().(*memberStore) }

// testContext bounds a test's Raft round trips; it ends with the test.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// leaderNow returns a running member that is a ready leader, polling until
// there is one. Unlike Cluster.Leader it may run on any goroutine: it
// reports a timeout as an error instead of failing the test.
func (c *storeCluster) leaderNow(ctx context.Context) (*rafttest.Member, error) {
	poll := time.NewTicker(5 * time.Millisecond)
	defer poll.Stop()
	for {
		for _, m := range c.Running() {
			if m.Node().IsLeader() {
				return m, nil
			}
		}
		select {
		case <-poll.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader: %w", ctx.Err())
		}
	}
}

// update runs Update on the leader's store, going to the new leader when
// the one it tried turns out not to lead: those errors mean nothing was
// proposed. Every other error is returned, among them the ones that leave
// the outcome unknown (raft.ErrLostLeadership, raft.ErrStopped).
func (c *storeCluster) update(ctx context.Context, fn func(tx store.Tx) error) (*store.Result, error) {
	for {
		m, err := c.leaderNow(ctx)
		if err != nil {
			return nil, err
		}
		res, err := storeOf(m).Update(ctx, fn)
		if (errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrProposalDropped)) && ctx.Err() == nil {
			continue
		}
		return res, err
	}
}

// mustUpdate is update for the test goroutine, failing the test on error.
func (c *storeCluster) mustUpdate(t *testing.T, fn func(tx store.Tx) error) *store.Result {
	t.Helper()
	res, err := c.update(testContext(t), fn)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	return res
}

// requireSameStores waits until every running member has applied all the
// leader committed, then checks that their stores hold the same objects,
// showing both dumps when they do not. It returns the common hash.
func (c *storeCluster) requireSameStores(t *testing.T) string {
	t.Helper()
	c.WaitApplied(c.Leader().Node().Status)
	running := c.Running()
	first := storeOf(running[0])
	_, want := first.Hash()
	for _, m := range running[1:] {
		s := storeOf(m)
		if _, got := s.Hash(); got != want {
			t.Fatalf("%s and %s differ:\n%s:\n%s\n%s:\n%s", running[0].NodeID, m.NodeID,
				running[0].NodeID, dump(t, first.Store), m.NodeID, dump(t, s.Store))
		}
	}
	return want
}

// requireSameHistory checks that two members applied the same entries
// with the same verdicts: the same objects, or the same rejection. A
// member's record starts at its last restore, so only the entries after
// both members' last restores are compared; it returns how many.
func requireSameHistory(t *testing.T, a, b *rafttest.Member) int {
	t.Helper()
	ha, ra := storeOf(a).history()
	hb, rb := storeOf(b).history()
	from := max(lastOr0(ra), lastOr0(rb))
	ha = slices.DeleteFunc(ha, func(e appliedEntry) bool { return e.index <= from })
	hb = slices.DeleteFunc(hb, func(e appliedEntry) bool { return e.index <= from })
	if len(ha) != len(hb) {
		t.Fatalf("after index %d, %s applied %d entries, %s %d", from, a.NodeID, len(ha), b.NodeID, len(hb))
	}
	for i := range ha {
		ea, eb := ha[i], hb[i]
		if ea.index != eb.index || fmt.Sprint(ea.err) != fmt.Sprint(eb.err) ||
			(ea.res == nil) != (eb.res == nil) || (ea.res != nil && !sameObjects(ea.res.Objects, eb.res.Objects)) {
			t.Fatalf("entry %d after index %d: %s has %s, %s has %s", i, from, a.NodeID, ea, b.NodeID, eb)
		}
	}
	return len(ha)
}

func lastOr0(s []uint64) uint64 {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1]
}

func (e appliedEntry) String() string {
	if e.err != nil {
		return fmt.Sprintf("%d rejected: %v", e.index, e.err)
	}
	return fmt.Sprintf("%d accepted: %s", e.index, names(e.res.Objects))
}

// requireAcknowledged checks that every acknowledged result after m's last
// restore is in the history m applied, at its version and with its
// objects.
func requireAcknowledged(t *testing.T, m *rafttest.Member, acked []*store.Result) {
	t.Helper()
	_, restores := storeOf(m).history()
	from := lastOr0(restores)
	byVersion := map[uint64]*store.Result{}
	for _, r := range storeOf(m).accepted() {
		byVersion[r.Version] = r
	}
	for _, r := range acked {
		if r.Version <= from {
			continue
		}
		h, ok := byVersion[r.Version]
		if !ok || !sameObjects(h.Objects, r.Objects) {
			t.Fatalf("acknowledged entry %d (%s) is not in the history of %s", r.Version, names(r.Objects), m.NodeID)
		}
	}
}

func sameObjects(a, b []*api.Object) bool {
	return slices.EqualFunc(a, b, func(x, y *api.Object) bool { return proto.Equal(x, y) })
}
