package raft_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/rafttest"
	"github.com/shoal-project/shoal/raft/storage"
)

// stateFiles returns the state files in the member's snapshot directory.
func stateFiles(t *testing.T, m *rafttest.Member) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(m.Dir, "snap", "*.state"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// tmpFiles returns what the member's snap.tmp holds.
func tmpFiles(m *rafttest.Member) []string {
	entries, _ := os.ReadDir(filepath.Join(m.Dir, "snap.tmp"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A member restarts from its snapshot's state file; with that file
// damaged or missing it refuses to start, with an error that names the
// file and says what to do, rather than starting empty.
func TestRestartFromStateFile(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"intact", nil},
		{"state file damaged", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 1
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"state file missing", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rafttest.NewCluster(t, 1, rafttest.Options{SnapshotInterval: 5, LogEntriesForSlowFollowers: 1})
			m := c.Leader()
			var want []string
			for i := range 12 {
				want = append(want, fmt.Sprintf("v%d", i))
				c.MustPropose(want[i])
			}
			c.WaitFor("a state file", func() bool { return len(stateFiles(t, m)) > 0 })
			if err := m.Stop(); err != nil {
				t.Fatal(err)
			}
			if tt.damage == nil {
				m.Restart()
				c.WaitFor("the restarted member to lead", func() bool { return m.Node().IsLeader() })
				if m.Log().Restores() == 0 {
					t.Fatal("the member restarted without its snapshot")
				}
				sameLogs(t, c, want)
				return
			}
			files := stateFiles(t, m)
			path := files[len(files)-1]
			tt.damage(t, path)

			cfg := raft.DefaultConfig()
			cfg.NodeID, cfg.StateDir, cfg.AdvertiseAddr = m.NodeID, m.Dir, m.Addr
			n, err := raft.NewNode(cfg, &rafttest.LogMachine{})
			if err != nil {
				t.Fatal(err)
			}
			err = n.JoinAndStart(context.Background())
			if err == nil {
				n.Stop()
				t.Fatal("the member started from a bad state file")
			}
			if !errors.Is(err, storage.ErrStateFile) || !strings.Contains(err.Error(), path) ||
				!strings.Contains(err.Error(), "empty state directory") {
				t.Fatalf("err = %v; want ErrStateFile naming %s and the way out", err, path)
			}
		})
	}
}

// snapshotData builds a snapshot's data as the node writes it: the
// membership, then the state's size and SHA-256.
func snapshotData(t *testing.T, state []byte) []byte {
	t.Helper()
	members, err := proto.Marshal(&api.RaftMembershipState{})
	if err != nil {
		t.Fatal(err)
	}
	b := binary.AppendUvarint(nil, uint64(len(members)))
	b = append(b, members...)
	b = append(b, "SHOALSF1"...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(state)))
	sum := sha256.Sum256(state)
	return append(b, sum[:]...)
}

// A member's Raft service, sent a snapshot over loopback gRPC whose state
// is not what the snapshot names, or which stops part way, refuses it:
// nothing is handed to Raft, the member runs on with its state, and no
// file of the transfer is left behind.
func TestReceivedStateIsCheckedBeforeRaftSeesIt(t *testing.T) {
	c := rafttest.NewCluster(t, 1, rafttest.Options{})
	m := c.Leader()
	c.MustPropose("kept")
	cc, err := grpc.NewClient(m.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := api.NewRaftClient(cc)

	state := []byte(strings.Repeat("the leader's state ", 20000))
	corrupt := []byte(string(state))
	corrupt[len(corrupt)/3] ^= 1
	tests := []struct {
		name      string
		named     []byte // the state the snapshot's data names
		sent      []byte // the state sent
		interrupt bool   // the sender gives up after half of it
	}{
		{"corrupt chunk", state, corrupt, false},
		{"wrong checksum", []byte(strings.Repeat("x", len(state))), state, false},
		{"fewer bytes than announced", state, state[:len(state)/2], false},
		{"interrupted transfer", state, state, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := m.Node().Status()
			if err != nil {
				t.Fatal(err)
			}
			msg, err := proto.Marshal(&raftpb.Message{
				Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(0x5eed), To: proto.Uint64(m.ID()),
				Term: proto.Uint64(before.Term + 100),
				Snapshot: &raftpb.Snapshot{Data: snapshotData(t, tt.named), Metadata: &raftpb.SnapshotMetadata{
					Index: proto.Uint64(before.Applied + 1000), Term: proto.Uint64(before.Term + 100),
					ConfState: &raftpb.ConfState{Voters: []uint64{0x5eed}},
				}},
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			stream, err := client.StreamSnapshot(ctx)
			if err != nil {
				t.Fatal(err)
			}
			err = stream.Send(&api.StreamSnapshotRequest{Message: msg, StateSize: uint64(len(tt.named))})
			sent := tt.sent
			if tt.interrupt {
				sent = sent[:len(sent)/2]
			}
			for off := 0; err == nil && off < len(sent); off += 64 << 10 {
				err = stream.Send(&api.StreamSnapshotRequest{Chunk: sent[off:min(off+64<<10, len(sent))]})
			}
			if tt.interrupt {
				c.WaitFor("the transfer to reach a temporary file", func() bool { return len(tmpFiles(m)) > 0 })
				cancel()
			} else {
				if _, err := stream.CloseAndRecv(); err == nil {
					t.Fatal("the member accepted the snapshot")
				} else {
					t.Logf("refused: %v", err)
				}
			}
			c.WaitFor("snap.tmp to be empty", func() bool { return len(tmpFiles(m)) == 0 })
			after, err := m.Node().Status()
			if err != nil {
				t.Fatal(err)
			}
			if after.Applied != before.Applied || m.Log().Restores() != 0 {
				t.Fatalf("applied %d → %d, %d restores: the snapshot reached Raft", before.Applied, after.Applied, m.Log().Restores())
			}
		})
	}
	c.MustPropose("still writable")
	sameLogs(t, c, []string{"kept", "still writable"})
}
