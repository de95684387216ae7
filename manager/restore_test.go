package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/backup"
	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/internal/atomicfile"
	"github.com/shoal-project/shoal/raft/storage"
	"github.com/shoal-project/shoal/store"
)

// saveBackup takes a backup through c into a file of its own.
func saveBackup(t *testing.T, c api.ControlClient, key *backup.Key) (string, *backup.Info) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := c.SaveBackup(ctx, &api.SaveBackupRequest{})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cluster.backup")
	info, err := backup.Save(path, false, first.GetHeader(), &chunkReader{stream: stream}, key)
	if err != nil {
		t.Fatal(err)
	}
	return path, info
}

// chunkReader reads the chunks of a SaveBackup stream.
type chunkReader struct {
	stream interface {
		Recv() (*api.SaveBackupResponse, error)
	}
	buf []byte
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		resp, err := r.stream.Recv()
		if err != nil {
			return 0, err
		}
		r.buf = resp.GetChunk()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// userObjects dumps the objects of kind "item" as the store holds them.
func userObjects(t *testing.T, tm *testManager) []string {
	t.Helper()
	var out []string
	var err error
	tm.m.store.View(func(tx store.ReadTx) {
		var objs []*api.Object
		objs, err = tx.List(store.Selector{Kind: "item"})
		for _, o := range objs {
			out = append(out, fmt.Sprintf("%s %s v%d %s %v", o.GetId(), o.GetName(), o.GetVersion(), o.GetSpec(), o.GetLabels()))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func createItems(t *testing.T, c api.ControlClient, prefix string, n int) {
	t.Helper()
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := c.CreateObject(ctx, &api.CreateObjectRequest{Object: &api.Object{Kind: "item", Name: fmt.Sprintf("%s-%d", prefix, i),
			Labels: map[string]string{"n": fmt.Sprint(i)}, Spec: []byte(fmt.Sprintf(`{"i":%d}`, i))}})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
}

// A backup taken through a follower founds, in another directory, a
// cluster that holds every object as it was (ids, versions, specs), keeps
// the cluster's ID, CA and join token, replaces the old managers' node
// objects with its own, and gives new writes versions above every restored
// object's; a manager joins it with the old join token.
func TestFoundAClusterFromABackup(t *testing.T) {
	ms := startCluster(t, 2)
	leader := leaderOf(t, ms)
	follower := ms[0]
	if follower == leader {
		follower = ms[1]
	}
	createItems(t, leader.dialSocket(), "item", 30)
	oldToken, err := leader.m.JoinToken()
	if err != nil {
		t.Fatal(err)
	}
	path, info := saveBackup(t, follower.dialAs(ca.RoleAdmin), nil)
	if info.Header.GetObjects()["item"] != 30 || info.Header.GetNodeId() != follower.m.NodeID() ||
		info.Header.GetClusterId() != follower.m.sec.identity.ClusterID {
		t.Fatalf("header %v", info.Header)
	}
	want := userObjects(t, follower)

	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := PrepareRestore(dir, path, nil); err != nil {
		t.Fatal(err)
	}
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 1 || entries[0].Name() != RestoreFileName {
		t.Fatalf("the prepared directory holds %v (%v), want %s alone", entries, err, RestoreFileName)
	}
	for _, tm := range ms {
		if err := tm.stop(); err != nil {
			t.Fatal(err)
		}
	}

	restored := startManager(t, testConfig(t, dir, ""))
	if got := userObjects(t, restored); !slices.Equal(got, want) {
		t.Fatalf("the restored cluster holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := os.Stat(filepath.Join(dir, RestoreFileName)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there: %v", RestoreFileName, err)
	}
	id := restored.m.sec.identity
	if id.ClusterID != follower.m.sec.identity.ClusterID || id.NodeID == follower.m.NodeID() || id.NodeID == leader.m.NodeID() {
		t.Errorf("restored as node %s of cluster %s", id.NodeID, id.ClusterID)
	}
	if token, err := restored.m.JoinToken(); err != nil || token != oldToken {
		t.Errorf("join token %q, %v; want the backup's", token, err)
	}
	// The node objects come to be the restored manager's alone.
	waitFor(t, "the node objects to be the restored manager's", func() bool {
		var nodes []*api.Object
		restored.m.store.View(func(tx store.ReadTx) { nodes, _ = tx.List(store.Selector{Kind: store.KindNode}) })
		return len(nodes) == 1 && nodes[0].GetName() == id.NodeID
	})
	// New writes come after every restored version.
	resp, err := restored.dialSocket().CreateObject(context.Background(), &api.CreateObjectRequest{Object: &api.Object{Kind: "item", Name: "after"}})
	if err != nil {
		t.Fatal(err)
	}
	if v := resp.GetObject().GetVersion(); v <= info.Header.GetRaftIndex() {
		t.Errorf("a new write got version %d, not above the backup's index %d", v, info.Header.GetRaftIndex())
	}
	// The old join token still works; a manager joins.
	joiner := startManager(t, joinConfig(t, restored))
	waitVoter(t, []*testManager{restored}, joiner)
	waitFor(t, "the joiner to hold the objects", func() bool { return len(userObjects(t, joiner)) == len(want)+1 })

	// Restarted, the first manager restarts from its Raft state.
	if err := restored.stop(); err != nil {
		t.Fatal(err)
	}
	cfg := restored.cfg
	cfg.ListenAddr = restored.m.Addr()
	again := startManager(t, cfg)
	if again.m.NodeID() != id.NodeID {
		t.Errorf("restarted as %s, want %s", again.m.NodeID(), id.NodeID)
	}
}

// An encrypted backup restores with its key, and is refused without it or
// with another one; a damaged or truncated one is refused; nothing is
// written when a backup is refused, nor into a directory that is not
// empty.
func TestPrepareRestoreRefusals(t *testing.T) {
	tm := startManager(t, testConfig(t, t.TempDir(), ""))
	createItems(t, tm.dialSocket(), "item", 5)
	key, err := backup.NewKey("k", []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := backup.NewKey("other", []byte("another secret of some length"))
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := saveBackup(t, tm.dialSocket(), key)
	plain, _ := saveBackup(t, tm.dialSocket(), nil)
	file, err := os.ReadFile(plain)
	if err != nil {
		t.Fatal(err)
	}
	damaged := filepath.Join(t.TempDir(), "damaged")
	flipped := append([]byte(nil), file...)
	flipped[len(flipped)/2] ^= 1
	if err := os.WriteFile(damaged, flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "truncated")
	if err := os.WriteFile(truncated, file[:len(file)*2/3], 0o600); err != nil {
		t.Fatal(err)
	}
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "something"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		file string
		key  *backup.Key
		dir  string
		want error
	}{
		{"encrypted, no key", sealed, nil, "", backup.ErrEncrypted},
		{"encrypted, another key", sealed, other, "", backup.ErrWrongKey},
		{"damaged", damaged, nil, "", backup.ErrDamaged},
		{"truncated", truncated, nil, "", backup.ErrTruncated},
		{"a directory that is not empty", plain, nil, full, ErrBadConfig},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "new")
			}
			if _, err := PrepareRestore(dir, tt.file, tt.key); !errors.Is(err, tt.want) {
				t.Fatalf("PrepareRestore = %v, want %v", err, tt.want)
			}
			if tt.dir == "" {
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the refused restore made %s (%v)", dir, err)
				}
			} else if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("the refused restore wrote into %s: %v", dir, entries)
			}
		})
	}
	empty := t.TempDir()
	if _, err := PrepareRestore(empty, sealed, key); err != nil {
		t.Fatalf("an encrypted backup with its key, into an empty directory: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(empty, RestoreFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want mode 0600", RestoreFileName, fi, err)
	}
	// The copy is decrypted: the manager reads it without a key.
	if _, err := backup.VerifyFile(filepath.Join(empty, RestoreFileName), nil); err != nil {
		t.Errorf("the prepared copy: %v", err)
	}
}

// The first start from a backup refuses --join and --force-new-cluster,
// and a failed one keeps restore.backup for the next.
func TestFirstStartFromABackupRefusals(t *testing.T) {
	tm := startManager(t, testConfig(t, t.TempDir(), ""))
	path, _ := saveBackup(t, tm.dialSocket(), nil)
	dir := filepath.Join(t.TempDir(), "restored")
	if _, err := PrepareRestore(dir, path, nil); err != nil {
		t.Fatal(err)
	}
	token, err := tm.m.JoinToken()
	if err != nil {
		t.Fatal(err)
	}
	join := testConfig(t, dir, tm.m.Addr())
	join.JoinToken = token
	force := testConfig(t, dir, "")
	force.ForceNewCluster = true
	for _, cfg := range []Config{join, force} {
		err := runToEnd(t, cfg)
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), RestoreFileName) {
			t.Errorf("start = %v, want a refusal naming %s", err, RestoreFileName)
		}
	}
	// A start that fails (its address is taken) leaves the backup.
	busy := testConfig(t, dir, "")
	busy.ListenAddr = takenAddr(t)
	if err := runToEnd(t, busy); err == nil {
		t.Fatal("a start on a taken address succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, RestoreFileName)); err != nil {
		t.Fatalf("the failed start lost %s: %v", RestoreFileName, err)
	}
	if left := stateLeft(t, dir); len(left) > 0 {
		t.Errorf("the failed start left %v", left)
	}
}

// A first start from a backup that stopped before its WAL was in place (as
// a crash leaves it: credentials pending, data keys, the initial WAL in
// raft/wal.init) is made again from restore.backup; one that stopped after
// (its identity not committed) restarts from its WAL, with the writes made
// since, and removes restore.backup.
func TestFirstStartFromABackupInterrupted(t *testing.T) {
	tm := startManager(t, testConfig(t, t.TempDir(), ""))
	createItems(t, tm.dialSocket(), "item", 10)
	path, _ := saveBackup(t, tm.dialSocket(), nil)
	want := userObjects(t, tm)
	for _, tt := range []struct {
		name     string
		walName  string // where the crash leaves the WAL
		sameNode bool
	}{
		{"before the WAL is in place", "wal.init", false},
		{"after the WAL is in place", "wal", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "restored")
			if _, err := PrepareRestore(dir, path, nil); err != nil {
				t.Fatal(err)
			}
			kept, err := os.ReadFile(filepath.Join(dir, RestoreFileName))
			if err != nil {
				t.Fatal(err)
			}
			first := startManager(t, testConfig(t, dir, ""))
			createItems(t, first.dialSocket(), "later", 1)
			nodeID := first.m.NodeID()
			if err := first.stop(); err != nil {
				t.Fatal(err)
			}
			// As the crash left it.
			raftDir := filepath.Join(dir, raftDirName)
			if tt.walName != "wal" {
				if err := os.Rename(filepath.Join(raftDir, "wal"), filepath.Join(raftDir, tt.walName)); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Rename(ca.CertificatesPath(dir), filepath.Join(dir, pendingCertificatesDir)); err != nil {
				t.Fatal(err)
			}
			if err := atomicfile.WriteFile(filepath.Join(dir, RestoreFileName), kept, 0o600); err != nil {
				t.Fatal(err)
			}
			if storage.Exists(raftDir) != tt.sameNode {
				t.Fatalf("a WAL in %s: Exists = %v", tt.walName, storage.Exists(raftDir))
			}

			cfg := first.cfg
			cfg.ListenAddr = first.m.Addr()
			again := startManager(t, cfg)
			if (again.m.NodeID() == nodeID) != tt.sameNode {
				t.Errorf("started again as %s, the interrupted start was %s", again.m.NodeID(), nodeID)
			}
			got := userObjects(t, again)
			wantNow := want
			if tt.sameNode {
				wantNow = nil
				for _, o := range got {
					if !strings.Contains(o, " later-0 ") {
						wantNow = append(wantNow, o)
					}
				}
				if len(got) != len(want)+1 {
					t.Errorf("the restart holds %d items, want the backup's %d and the one written since", len(got), len(want))
				}
			}
			if !slices.Equal(wantNow, want) {
				t.Errorf("started again with\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if _, err := os.Stat(filepath.Join(dir, RestoreFileName)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s is still there: %v", RestoreFileName, err)
			}
			if _, err := os.Stat(filepath.Join(raftDir, "wal.init")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("wal.init is still there: %v", err)
			}
		})
	}
}

// Only admin certificates (and the control socket) may take a backup: it
// holds the root CA's key.
func TestSaveBackupNeedsAnAdmin(t *testing.T) {
	tm := startManager(t, testConfig(t, t.TempDir(), ""))
	for _, tt := range []struct {
		role ca.Role
		want codes.Code
	}{{ca.RoleReader, codes.PermissionDenied}, {ca.RoleClient, codes.PermissionDenied}, {ca.RoleAdmin, codes.OK}} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		stream, err := tm.dialAs(tt.role).SaveBackup(ctx, &api.SaveBackupRequest{})
		if err == nil {
			_, err = stream.Recv()
			for err == nil {
				_, err = stream.Recv()
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
		cancel()
		if status.Code(err) != tt.want {
			t.Errorf("SaveBackup as %s: %v, want %v", tt.role, err, tt.want)
		}
	}
}
