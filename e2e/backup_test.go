package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// backupInfo is what snapshot inspect -o json prints, as far as the tests
// read it.
type backupInfo struct {
	ClusterID      string            `json:"cluster_id"`
	NodeID         string            `json:"node_id"`
	RaftIndex      uint64            `json:"raft_index"`
	Objects        map[string]uint64 `json:"objects"`
	ObjectsTotal   uint64            `json:"objects_total"`
	Bytes          int64             `json:"bytes"`
	SHA256         string            `json:"sha256"`
	Encrypted      bool              `json:"encrypted"`
	ObjectsChecked bool              `json:"objects_checked"`
}

// itemsOf lists the objects of kind item through via, as id, name,
// version, labels and spec.
func itemsOf(t *testing.T, via ...string) []string {
	t.Helper()
	list := decode[objectList](t, mustShoal(t, append([]string{"ls", "item", "-o", "json"}, via...)...))
	var out []string
	for _, o := range list.Items {
		spec := ""
		if len(o.Spec) > 0 {
			spec = compact(t, o.Spec)
		}
		out = append(out, fmt.Sprintf("%s %s v%d %v %s", o.ID, o.Name, o.Version, o.Labels, spec))
	}
	return out
}

// A backup of a 3-manager cluster, taken through a follower over TCP with
// an admin certificate (and through a control socket), is described by
// inspect, refused when damaged or truncated, and restored into a new
// state directory: a manager started from it on another address holds
// every object as it was, gives new writes higher versions, and another
// manager joins it with the cluster's join token. A read-write certificate
// may not take a backup.
func TestBackupAndRestore(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	for _, m := range ms {
		waitMember(t, 20*time.Second, m.name+" to vote", m.nodeID, isVoter, "--socket", ms[0].socket())
	}
	leader := leaderOf(t, ms)
	follower := ms[0]
	if follower == leader {
		follower = ms[1]
	}
	mustShoal(t, "bench", "put", "--total", "300", "--kind", "item", "--clients", "4", "--socket", leader.socket(), "-o", "json")
	want := itemsOf(t, "--socket", leader.socket())
	if len(want) != 300 {
		t.Fatalf("%d items created, want 300", len(want))
	}
	token := strings.TrimSpace(mustShoal(t, "cluster", "join-token", "manager", "-q", "--socket", leader.socket()))
	rw, _ := clientCert(t, leader, "rw")
	// The leader writes the node objects of the managers that joined as
	// it notices them.
	waitFor(t, 30*time.Second, "a node object per manager", func() (bool, string) {
		got := names(t, "node", "--socket", leader.socket())
		return len(got) == 3, fmt.Sprint(got)
	})

	dir := shortTempDir(t)
	file := filepath.Join(dir, "cluster.backup")
	keyFile := filepath.Join(dir, "backup.key")
	if err := os.WriteFile(keyFile, []byte("a secret of thirty-two bytes ok!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustShoal(t, "snapshot", "save", file, "--host", follower.addr)
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if !strings.Contains(out, "304 objects (1 cluster, 300 item, 3 node)") || !strings.Contains(out, hex.EncodeToString(sum[:])) {
		t.Errorf("save printed %q; want the objects and the file's SHA-256 %x", out, sum)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the backup's mode: %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	encrypted := filepath.Join(dir, "encrypted.backup")
	mustShoal(t, "snapshot", "save", encrypted, "--socket", ms[2].socket(), "--key-file", keyFile)

	// A read-write certificate may not: a backup holds the CA's key.
	r := shoal(t, append([]string{"snapshot", "save", filepath.Join(dir, "rw.backup"), "--host", follower.addr}, rw...)...)
	checkFailure(t, r, 6, "permission denied")
	if _, err := os.Stat(filepath.Join(dir, "rw.backup")); !os.IsNotExist(err) {
		t.Errorf("the refused save wrote a file (%v)", err)
	}
	// An existing file is kept.
	checkFailure(t, shoal(t, "snapshot", "save", file, "--socket", leader.socket()), 2, "--force")

	info := decode[backupInfo](t, mustShoal(t, "snapshot", "inspect", file, "-o", "json"))
	if info.Objects["item"] != 300 || info.Objects["cluster"] != 1 || info.Objects["node"] != 3 || info.ObjectsTotal != 304 ||
		info.NodeID != follower.nodeID || info.SHA256 != hex.EncodeToString(sum[:]) || info.Bytes != int64(len(b)) ||
		info.Encrypted || !info.ObjectsChecked || info.RaftIndex == 0 {
		t.Errorf("inspect: %+v", info)
	}
	sealed := decode[backupInfo](t, mustShoal(t, "snapshot", "inspect", encrypted, "-o", "json"))
	if !sealed.Encrypted || sealed.ObjectsChecked || sealed.Objects["item"] != 300 {
		t.Errorf("inspect of the encrypted backup without its key: %+v", sealed)
	}
	if withKey := decode[backupInfo](t, mustShoal(t, "snapshot", "inspect", encrypted, "--key-file", keyFile, "-o", "json")); !withKey.ObjectsChecked {
		t.Errorf("inspect of the encrypted backup with its key: %+v", withKey)
	}

	// Damaged, truncated, or without its key: refused, and nothing left.
	flipped := append([]byte(nil), b...)
	flipped[len(flipped)/2] ^= 0x01
	damaged := filepath.Join(dir, "damaged.backup")
	truncated := filepath.Join(dir, "truncated.backup")
	otherKey := filepath.Join(dir, "other.key")
	for path, content := range map[string][]byte{damaged: flipped, truncated: b[:len(b)*2/3], otherKey: []byte("another secret, also long enough")} {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name, file string
		key        []string
		says       string
	}{
		{"a flipped byte", damaged, nil, "damaged"},
		{"truncated", truncated, nil, "cut short"},
		{"encrypted, no key", encrypted, nil, "--key-file"},
		{"encrypted, another key", encrypted, []string{"--key-file", otherKey}, "does not open this backup"},
	} {
		target := filepath.Join(dir, "refused")
		checkFailure(t, shoal(t, append([]string{"snapshot", "restore", tt.file, "--state-dir", target}, tt.key...)...), 2, tt.says)
		if _, err := os.Stat(target); !os.IsNotExist(err) {
			t.Errorf("%s: the refused restore left %s (%v)", tt.name, target, err)
		}
		if tt.key == nil && tt.file != encrypted {
			checkFailure(t, shoal(t, "snapshot", "inspect", tt.file), 2, tt.says)
		}
	}
	mustShoal(t, "snapshot", "restore", encrypted, "--state-dir", filepath.Join(dir, "from-encrypted"), "--key-file", keyFile)

	// Every manager lost; a new one on another address from the backup.
	for _, m := range ms {
		if err := m.terminate(); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	restoredDir := filepath.Join(dir, "r1")
	out = mustShoal(t, "snapshot", "restore", file, "--state-dir", restoredDir)
	if !strings.Contains(out, "shoal manager --state-dir "+restoredDir) {
		t.Errorf("restore printed %q, want the command to start the manager", out)
	}
	r1 := startManager(t, "r1", restoredDir, "127.0.0.1:0")
	if slices.Contains([]string{ms[0].addr, ms[1].addr, ms[2].addr}, r1.addr) {
		t.Fatalf("the restored manager took an old address %s", r1.addr)
	}
	if got := itemsOf(t, "--socket", r1.socket()); !slices.Equal(got, want) {
		t.Fatalf("the restored cluster holds %d items, want the backup's %d as they were:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	var highest uint64
	for _, o := range decode[objectList](t, mustShoal(t, "ls", "item", "-o", "json", "--socket", r1.socket())).Items {
		highest = max(highest, o.Version)
	}
	after := decode[object](t, mustShoal(t, "create", "item", "after-restore", "-o", "json", "--host", r1.addr))
	if after.Version <= highest || after.Version <= info.RaftIndex {
		t.Errorf("a write after the restore got version %d; the restored objects go up to %d, the backup's index is %d", after.Version, highest, info.RaftIndex)
	}

	// Another manager joins with the cluster's join token, from the backup.
	r2 := startManager(t, "r2", filepath.Join(dir, "r2"), "127.0.0.1:0", "--join", r1.addr, "--token", token)
	waitMember(t, 20*time.Second, "r2 to vote", r2.nodeID, isVoter, "--socket", r1.socket())
	if got := itemsOf(t, "--socket", r2.socket(), "--consistency", "serializable"); len(got) != 301 {
		t.Errorf("the joined manager holds %d items, want 301", len(got))
	}
	// The old managers' node objects give way to the new ones.
	waitFor(t, 20*time.Second, "the node objects of r1 and r2 alone", func() (bool, string) {
		got := names(t, "node", "--socket", r1.socket())
		_, has1 := got[r1.nodeID]
		_, has2 := got[r2.nodeID]
		return len(got) == 2 && has1 && has2, fmt.Sprint(got)
	})
}

// A manager that crashes while it founds the cluster from a backup, once
// the initial Raft state is written but before it is its WAL, starts again
// from restore.backup and holds every object.
func TestRestoreSurvivesACrashBeforeItsWALIsInPlace(t *testing.T) {
	t.Parallel()
	bin := crashpointBinary(t)
	m := startCluster(t, 1)[0]
	mustShoal(t, "bench", "put", "--total", "50", "--kind", "item", "--socket", m.socket(), "-o", "json")
	want := itemsOf(t, "--socket", m.socket())
	dir := shortTempDir(t)
	file := filepath.Join(dir, "b.backup")
	mustShoal(t, "snapshot", "save", file, "--socket", m.socket())
	restored := filepath.Join(dir, "r")
	mustShoal(t, "snapshot", "restore", file, "--state-dir", restored)

	crashed := launchManagerWith(t, bin, []string{"SHOAL_CRASHPOINT=initial-state-written"}, "crashing", restored, "127.0.0.1:0")
	crashed.waitExit(30 * time.Second)
	if !strings.Contains(crashed.out.String(), "crashpoint: initial-state-written reached") {
		t.Fatalf("the manager did not stop at the crash point:\n%s", crashed.out.String())
	}
	for path, present := range map[string]bool{restoreFile(restored): true, filepath.Join(restored, "raft", "wal"): false,
		filepath.Join(restored, "raft", "wal.init"): true} {
		if _, err := os.Stat(path); (err == nil) != present {
			t.Fatalf("after the crash, %s: %v (want present: %v)", path, err, present)
		}
	}

	again := startManager(t, "again", restored, "127.0.0.1:0")
	if got := itemsOf(t, "--socket", again.socket()); !slices.Equal(got, want) {
		t.Fatalf("after the crash and a new start, %d items, want the backup's %d", len(got), len(want))
	}
	if _, err := os.Stat(restoreFile(restored)); !os.IsNotExist(err) {
		t.Errorf("restore.backup is still there: %v", err)
	}
}

// restoreFile is the backup a restored state directory holds until its
// manager's first start has made the cluster from it.
func restoreFile(stateDir string) string { return filepath.Join(stateDir, "restore.backup") }
