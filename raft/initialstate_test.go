package raft_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/rafttest"
	"github.com/shoal-project/shoal/raft/storage"
)

// logState writes entries as a LogMachine's snapshot holds them.
func logState(entries []rafttest.Applied) func(io.Writer) error {
	return func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		for _, e := range entries {
			var hdr [2 * binary.MaxVarintLen64]byte
			n := binary.PutUvarint(hdr[:], e.Index)
			n += binary.PutUvarint(hdr[n:], uint64(len(e.Payload)))
			if _, err := bw.Write(hdr[:n]); err != nil {
				return err
			}
			if _, err := bw.WriteString(e.Payload); err != nil {
				return err
			}
		}
		return bw.Flush()
	}
}

// A node founded from an initial state starts from it as from a snapshot:
// its log goes on after the state's index, members that join receive the
// state from it, and a restart finds it again.
func TestBootstrapFromInitialState(t *testing.T) {
	const index = 1000
	restored := []rafttest.Applied{{Index: 7, Payload: "kept-7"}, {Index: 500, Payload: "kept-500"}, {Index: index, Payload: "kept-1000"}}
	writes := 0
	c := rafttest.NewCluster(t, 3, rafttest.Options{Configure: func(cfg *raft.Config) {
		if cfg.Join == nil { // the first member, and every restart
			cfg.InitialState = &raft.InitialState{Index: index, Write: func(w io.Writer) error {
				writes++
				return logState(restored)(w)
			}}
		}
	}})
	first := c.Members()[0]
	if writes != 1 {
		t.Fatalf("the initial state was written %d times, want once", writes)
	}
	if got := first.Log().Restores(); got != 1 {
		t.Errorf("the first member restored %d snapshots, want 1", got)
	}
	at := c.MustPropose("new-1")
	if at <= index {
		t.Fatalf("the first entry after the initial state is at index %d, not after %d", at, index)
	}
	want := []string{"kept-7", "kept-500", "kept-1000", "new-1"}
	c.WaitAppliedIndex(at)
	sameLogs(t, c, want)
	for _, m := range c.Members() {
		if m.Log().Entries()[3].Index != at {
			t.Errorf("%s applied new-1 at %d, want %d", m.NodeID, m.Log().Entries()[3].Index, at)
		}
	}

	// Restarted, the first member loads the state from its own disk.
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	first.Restart()
	if writes != 1 {
		t.Errorf("a restart wrote the initial state again (%d writes)", writes)
	}
	at = c.MustPropose("new-2")
	c.WaitAppliedIndex(at)
	sameLogs(t, c, append(want, "new-2"))
}

// A failed initial state leaves no Raft state: the same start can simply
// be made again.
func TestBootstrapFromAFailedInitialState(t *testing.T) {
	dir := t.TempDir()
	cfg := raft.DefaultConfig()
	cfg.NodeID, cfg.StateDir, cfg.AdvertiseAddr = "node-1", dir, "127.0.0.1:1"
	cfg.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	broken := errors.New("the backup ends early")
	cfg.InitialState = &raft.InitialState{Index: 10, Write: func(w io.Writer) error {
		if _, err := w.Write([]byte("half a state")); err != nil {
			return err
		}
		return broken
	}}
	n, err := raft.NewNode(cfg, &rafttest.LogMachine{})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.JoinAndStart(context.Background()); !errors.Is(err, broken) {
		t.Fatalf("JoinAndStart = %v, want the Write's error", err)
	}
	if storage.Exists(dir) {
		t.Error("a failed start left a WAL")
	}
	if files := filesUnder(t, dir); len(files) > 0 {
		t.Errorf("a failed start left %v", files)
	}

	cfg.InitialState.Write = logState([]rafttest.Applied{{Index: 10, Payload: "x"}})
	sm := &rafttest.LogMachine{}
	n, err = raft.NewNode(cfg, sm)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.JoinAndStart(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.Stop()
	if got := sm.Payloads(); !slices.Equal(got, []string{"x"}) {
		t.Errorf("restored %v", got)
	}
}

func TestInitialStateConfig(t *testing.T) {
	write := func(io.Writer) error { return nil }
	for _, tt := range []struct {
		name   string
		change func(*raft.Config)
	}{
		{"with Join", func(c *raft.Config) {
			c.Join = func(context.Context, *api.JoinRequest) (*api.JoinResponse, error) { return nil, nil }
		}},
		{"with ForceNewCluster", func(c *raft.Config) { c.ForceNewCluster = true }},
		{"no index", func(c *raft.Config) { c.InitialState.Index = 0 }},
		{"no Write", func(c *raft.Config) { c.InitialState.Write = nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := raft.DefaultConfig()
			cfg.NodeID, cfg.StateDir, cfg.AdvertiseAddr = "n", t.TempDir(), "127.0.0.1:1"
			cfg.InitialState = &raft.InitialState{Index: 5, Write: write}
			tt.change(&cfg)
			if err := cfg.Validate(); err == nil {
				t.Error("Validate accepted it")
			}
		})
	}
}

// filesUnder lists the regular files under dir.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(fmt.Errorf("walking %s: %w", dir, err))
	}
	return out
}

// TestSnapshotConfig: every bound on when snapshots are taken must be
// positive; the defaults pass.
func TestSnapshotConfig(t *testing.T) {
	for _, tt := range []struct {
		name    string
		change  func(*raft.Config)
		wantErr string
	}{
		{"defaults", func(*raft.Config) {}, ""},
		{"no interval", func(c *raft.Config) { c.SnapshotInterval = 0 }, "SnapshotInterval"},
		{"no log bytes", func(c *raft.Config) { c.SnapshotLogBytes = 0 }, "SnapshotLogBytes"},
		{"no cost ratio", func(c *raft.Config) { c.SnapshotCostRatio = 0 }, "SnapshotCostRatio"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := raft.DefaultConfig()
			cfg.NodeID, cfg.StateDir, cfg.AdvertiseAddr = "n", t.TempDir(), "127.0.0.1:1"
			tt.change(&cfg)
			err := cfg.Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tt.wantErr)
			}
		})
	}
}
