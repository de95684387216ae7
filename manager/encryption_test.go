package manager

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/internal/diskscan"
)

const marker = "SHOAL-MARKER-5e1f"

// filesContaining returns the files under dir whose bytes contain s.
func filesContaining(t *testing.T, dir, s string) []string {
	t.Helper()
	found, _, err := diskscan.FilesContaining(dir, []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// TestNoStateFileHoldsTheData writes objects carrying a marker, through
// enough entries for snapshots, and finds the marker in no file of any
// manager's state directory, nor any private key in clear.
func TestNoStateFileHoldsTheData(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), "")
	cfg.Raft.SnapshotInterval = 20
	cfg.Raft.LogEntriesForSlowFollowers = 5
	first := startManager(t, cfg)
	ms := []*testManager{first}
	for range 2 {
		jc := joinConfig(t, ms[len(ms)-1])
		jc.Raft.SnapshotInterval = 20
		jc.Raft.LogEntriesForSlowFollowers = 5
		ms = append(ms, startManager(t, jc))
	}
	c := first.dialSocket()
	for i := range 60 {
		_, err := c.CreateObject(context.Background(), &api.CreateObjectRequest{Object: &api.Object{
			Kind: "secret", Name: "s" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Now().Format("150405.000000"),
			Labels: map[string]string{"note": marker}, Spec: []byte(`{"value": "` + marker + `"}`)}})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, tm := range ms {
		if err := tm.stop(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tm := range ms {
		snaps, _ := filepath.Glob(filepath.Join(tm.cfg.StateDir, "raft", "snap", "*.snap"))
		if len(snaps) == 0 {
			t.Errorf("%s has no snapshot file: the test did not cover snapshots", tm.cfg.StateDir)
		}
		// The store's objects are in the state files beside them.
		if states, _ := filepath.Glob(filepath.Join(tm.cfg.StateDir, "raft", "snap", "*.state")); len(states) == 0 {
			t.Errorf("%s has no state file: the test did not cover the store's snapshots", tm.cfg.StateDir)
		}
		if found := filesContaining(t, tm.cfg.StateDir, marker); len(found) > 0 {
			t.Errorf("the marker is in clear in %v", found)
		}
		if found := filesContaining(t, tm.cfg.StateDir, "-----BEGIN PRIVATE KEY-----"); len(found) > 0 {
			t.Errorf("a private key is in clear in %v", found)
		}
	}
}

func TestAutolockedManagerWaitsForItsKey(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir, "")
	cfg.Autolock = true
	var shown bytes.Buffer
	cfg.UnlockKeyOutput = &shown
	tm := startManager(t, cfg)
	key := regexp.MustCompile(`SHLKEY-1-[0-9a-z]+`).FindString(shown.String())
	if key == "" {
		t.Fatalf("no unlock key was shown:\n%s", shown.String())
	}
	got, err := tm.dialSocket().GetUnlockKey(context.Background(), &api.GetUnlockKeyRequest{})
	if err != nil || got.GetUnlockKey() != key {
		t.Fatalf("unlock-key: %v, %v; want %s", got, err, key)
	}
	if _, err := tm.dialSocket().CreateObject(context.Background(), &api.CreateObjectRequest{Object: &api.Object{Kind: "job", Name: "kept"}}); err != nil {
		t.Fatal(err)
	}
	if err := tm.stop(); err != nil {
		t.Fatal(err)
	}

	// Restarted, it serves nothing but Unlock.
	m, err := New(testConfig(t, dir, ""))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	conn, err := grpc.NewClient("unix://"+m.SocketPath(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	unlock := api.NewUnlockClient(conn)
	waitFor(t, "the locked manager to answer", func() bool {
		_, err := api.NewControlClient(conn).GetClusterInfo(context.Background(), &api.GetClusterInfoRequest{})
		// The message, not err.Error(): the socket's path holds this test's
		// name, which holds "locked" too.
		return status.Code(err) == codes.Unavailable && strings.HasPrefix(status.Convert(err).Message(), "this manager is locked")
	})
	select {
	case <-m.Ready():
		t.Fatal("a locked manager became ready")
	default:
	}
	wrong := "SHLKEY-1-" + strings.Repeat("0", len(key)-len("SHLKEY-1-"))
	for _, bad := range []string{"not-a-key", wrong} {
		_, err := unlock.Unlock(context.Background(), &api.UnlockRequest{UnlockKey: bad})
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("unlock with %q: %v, want INVALID_ARGUMENT", bad, err)
		}
	}
	if _, err := unlock.Unlock(context.Background(), &api.UnlockRequest{UnlockKey: key}); err != nil {
		t.Fatalf("unlock with the right key: %v", err)
	}
	select {
	case <-m.Ready():
	case err := <-done:
		t.Fatalf("the unlocked manager stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the unlocked manager is not ready")
	}
	restarted := &testManager{t: t, m: m}
	obj, err := restarted.dialSocket().GetObject(context.Background(), &api.GetObjectRequest{Ref: &api.ObjectRef{Kind: "job", NameOrId: "kept"}})
	if err != nil || obj.GetObject().GetName() != "kept" {
		t.Fatalf("after unlocking: %v, %v", obj, err)
	}
}

// TestDataKeyRotationRetiresTheOldKey rotates a manager's data key: the
// snapshot the rotation asks for lets the old key go at once, also when
// nothing was written since the last snapshot.
func TestDataKeyRotationRetiresTheOldKey(t *testing.T) {
	tm := startManager(t, testConfig(t, t.TempDir(), ""))
	c := tm.dialSocket()
	if _, err := c.CreateObject(context.Background(), &api.CreateObjectRequest{Object: &api.Object{Kind: "job", Name: "before"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.RotateDataKey(context.Background(), &api.RotateDataKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetOlderKeyIds()) == 0 {
		t.Fatal("the old data key is gone before any snapshot")
	}
	waitFor(t, "the old data key to be retired", func() bool {
		return len(tm.m.keys.Status().Older) == 0
	})
	if got := tm.m.keys.Status().Current; got != resp.GetKeyId() {
		t.Fatalf("current data key %d, want %d", got, resp.GetKeyId())
	}

	// Again with nothing written since the snapshot that retired the key:
	// the one asked for now is at the same index, and is taken all the
	// same.
	again, err := c.RotateDataKey(context.Background(), &api.RotateDataKeyRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old data key to be retired on an idle manager", func() bool {
		return len(tm.m.keys.Status().Older) == 0
	})
	if got := tm.m.keys.Status().Current; got != again.GetKeyId() || got == resp.GetKeyId() {
		t.Fatalf("current data key %d, want %d", got, again.GetKeyId())
	}

	// Its TLS key was sealed again with the new data key before the old
	// one went: it restarts.
	if err := tm.stop(); err != nil {
		t.Fatal(err)
	}
	restarted := startManager(t, tm.cfg)
	obj, err := restarted.dialSocket().GetObject(context.Background(), &api.GetObjectRequest{Ref: &api.ObjectRef{Kind: "job", NameOrId: "before"}})
	if err != nil || obj.GetObject().GetName() != "before" {
		t.Fatalf("after restarting: %v, %v", obj, err)
	}
}

// TestStateWithoutItsDataKeysIsRefused: Raft state or certificates whose
// data keys are gone stop the start with a message that says what to do,
// rather than keys being made anew that open nothing.
func TestStateWithoutItsDataKeysIsRefused(t *testing.T) {
	tests := []struct {
		name    string
		remove  []string
		wantErr string
	}{
		{"raft state without keys", []string{keysDirName}, "holds Raft state but no data keys"},
		// Certificates without Raft state are refused whatever else is
		// there: see TestCertificatesWithoutRaftStateAreRefused.
		{"certificates without keys", []string{keysDirName, "raft"}, "but no Raft state"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir(), "")
			if err := startManager(t, cfg).stop(); err != nil {
				t.Fatal(err)
			}
			for _, name := range tt.remove {
				if err := os.RemoveAll(filepath.Join(cfg.StateDir, name)); err != nil {
					t.Fatal(err)
				}
			}
			m, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = m.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run = %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}
