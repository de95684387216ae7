package raft_test

import (
	"fmt"
	"github.com/shoal-project/shoal/internal/diskscan"
	"path/filepath"
	"sync"
	"testing"

	"github.com/shoal-project/shoal/keys"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/rafttest"
)

const marker = "SHOAL-MARKER-7f3a"

// keyRing gives each member of a test cluster its own keys, loaded from
// their file on every start, as a manager does.
type keyRing struct {
	t    *testing.T
	mu   sync.Mutex
	dirs map[string]string     // state directory → keys directory
	open map[string]*keys.Keys // state directory → the running member's keys
}

// newKeyRing must be called before the cluster starts, so that its
// clean-up closes the keys after the cluster has stopped.
func newKeyRing(t *testing.T) *keyRing {
	r := &keyRing{t: t, dirs: map[string]string{}, open: map[string]*keys.Keys{}}
	t.Cleanup(func() {
		for _, k := range r.open {
			k.Close()
		}
	})
	return r
}

// configure sets the member's cipher. The member's previous node has
// stopped when it starts again, so its keys can be closed.
func (r *keyRing) configure(cfg *raft.Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if k := r.open[cfg.StateDir]; k != nil {
		k.Close()
	}
	kcfg := keys.Config{Dir: r.dirs[cfg.StateDir], Logger: cfg.Logger}
	var (
		k   *keys.Keys
		err error
	)
	if kcfg.Dir == "" {
		kcfg.Dir = filepath.Join(r.t.TempDir(), "keys")
		r.dirs[cfg.StateDir] = kcfg.Dir
		k, err = keys.Create(kcfg)
	} else {
		var locked bool
		k, locked, err = keys.Open(kcfg)
		if locked {
			r.t.Fatalf("keys of %s are locked", cfg.StateDir)
		}
	}
	if err != nil {
		r.t.Fatalf("keys for %s: %v", cfg.StateDir, err)
	}
	r.open[cfg.StateDir] = k
	cfg.Cipher = k
}

func (r *keyRing) keysOf(m *rafttest.Member) *keys.Keys {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.open[m.Dir]
}

// filesWithMarker returns the files under dir that hold the marker, and how
// many files it read.
func filesWithMarker(t *testing.T, dir string) (found []string, files int) {
	t.Helper()
	found, files, err := diskscan.FilesContaining(dir, []byte(marker))
	if err != nil {
		t.Fatal(err)
	}
	return found, files
}

// A cluster whose members encrypt their state: it replicates, rotates every
// member's data key (the old one goes after the next snapshot), and a
// member restarted from its encrypted directory catches up through a
// snapshot. Afterwards no file of any member holds the marker the payloads
// carried. In clear, the same check finds it.
func TestEncryptedClusterRestartsAndCatchesUp(t *testing.T) {
	tests := []struct {
		name      string
		encrypt   bool
		wantFound bool
	}{
		{name: "encrypted", encrypt: true, wantFound: false},
		{name: "in clear", encrypt: false, wantFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ring := newKeyRing(t)
			opts := rafttest.Options{SnapshotInterval: 10, LogEntriesForSlowFollowers: 2}
			if tt.encrypt {
				opts.Configure = ring.configure
			}
			c := rafttest.NewCluster(t, 3, opts)
			propose := func(from, to int) {
				t.Helper()
				for i := from; i < to; i++ {
					c.MustPropose(fmt.Sprintf("%s %03d", marker, i))
				}
			}
			propose(0, 15)

			if tt.encrypt {
				for _, m := range c.Running() {
					if err := ring.keysOf(m).RotateDEK(); err != nil {
						t.Fatal(err)
					}
				}
				propose(15, 40) // two snapshot intervals: one entirely after the rotation
				c.WaitApplied(c.Leader().Node().Status)
				c.WaitFor("every member to drop its old data key", func() bool {
					for _, m := range c.Running() {
						if st := ring.keysOf(m).Status(); st.Current != 2 || len(st.Older) != 0 {
							return false
						}
					}
					return true
				})
			} else {
				propose(15, 40)
			}

			lagging := c.Followers()[0]
			if err := lagging.Stop(); err != nil {
				t.Fatalf("stop: %v", err)
			}
			propose(40, 70) // the leader compacts past what lagging has
			lagging.Restart()
			leader := c.Leader()
			c.WaitApplied(leader.Node().Status)
			// One restore from its own snapshot file at restart, one
			// from the leader's snapshot.
			if n := lagging.Log().Restores(); n < 2 {
				t.Errorf("the restarted member restored %d snapshots, want its own and the leader's", n)
			}
			want := leader.Log().Payloads()
			if len(want) != 70 {
				t.Fatalf("leader applied %d payloads, want 70", len(want))
			}
			sameLogs(t, c, want)

			// Everything on disk, once every member has stopped.
			members := c.Members()
			for _, m := range members {
				if err := m.Stop(); err != nil {
					t.Fatalf("stop %s: %v", m.NodeID, err)
				}
			}
			for _, m := range members {
				// The state machine's bytes are in the state files:
				// the scan below must have some to look at.
				if states, _ := filepath.Glob(filepath.Join(m.Dir, "snap", "*.state")); len(states) == 0 {
					t.Errorf("%s: no state file in %s/snap", m.NodeID, m.Dir)
				}
				dirs := []string{m.Dir}
				if d := ring.dirs[m.Dir]; d != "" {
					dirs = append(dirs, d)
				}
				for _, dir := range dirs {
					found, files := filesWithMarker(t, dir)
					t.Logf("%s: %d files in %s, marker in %v", m.NodeID, files, dir, found)
					if got := len(found) > 0; got != tt.wantFound && dir == m.Dir {
						t.Errorf("%s: marker in %v, want found %v", m.NodeID, found, tt.wantFound)
					}
					if len(found) > 0 && dir != m.Dir {
						t.Errorf("%s: marker in the key directory: %v", m.NodeID, found)
					}
				}
			}
		})
	}
}

// newestSnapshotIndex returns the index of the newest snapshot file in the
// member's state directory, 0 if there is none.
func newestSnapshotIndex(t *testing.T, m *rafttest.Member) uint64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(m.Dir, "snap", "*.snap"))
	if err != nil {
		t.Fatal(err)
	}
	var newest uint64
	for _, f := range files {
		var term, index uint64
		if _, err := fmt.Sscanf(filepath.Base(f), "%016x-%016x.snap", &term, &index); err == nil {
			newest = max(newest, index)
		}
	}
	return newest
}

// TestRequestSnapshotOnAnIdleNode: a snapshot asked for when nothing was
// applied since the last one is taken all the same, at the same index, so
// that a data key rotated on an idle cluster is retired. The snapshot is
// sealed with the new key: the member restarts from it.
func TestRequestSnapshotOnAnIdleNode(t *testing.T) {
	ring := newKeyRing(t)
	c := rafttest.NewCluster(t, 1, rafttest.Options{Configure: ring.configure})
	m := c.Leader()
	var want []string
	for i := range 5 {
		p := fmt.Sprintf("v%d", i)
		c.MustPropose(p)
		want = append(want, p)
	}
	rotate := func(what string) {
		t.Helper()
		k := ring.keysOf(m)
		if err := k.RotateDEK(); err != nil {
			t.Fatal(err)
		}
		m.Node().RequestSnapshot()
		c.WaitFor("the old data key to be retired "+what, func() bool { return len(k.Status().Older) == 0 })
	}
	rotate("after writes")
	st, err := m.Node().Status()
	if err != nil {
		t.Fatal(err)
	}
	if got := newestSnapshotIndex(t, m); got != st.Applied {
		t.Fatalf("the newest snapshot is at index %d, the applied index %d: the node is not idle since its last snapshot", got, st.Applied)
	}

	rotate("on an idle node")
	if got := newestSnapshotIndex(t, m); got != st.Applied {
		t.Fatalf("the newest snapshot is at index %d, want %d", got, st.Applied)
	}

	if err := m.Stop(); err != nil {
		t.Fatal(err)
	}
	m.Restart()
	c.WaitFor("the restarted member to lead", func() bool { return m.Node().IsLeader() })
	if m.Log().Restores() == 0 {
		t.Fatal("the member restarted without its snapshot")
	}
	sameLogs(t, c, want)
}
