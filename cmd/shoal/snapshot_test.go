package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The snapshot commands check their input before they call anyone or
// write anything, and a file that is not a sound backup is bad input.
func TestSnapshotCommandsRefuseBadInput(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing.backup")
	notBackup := filepath.Join(dir, "notes.txt")
	short := filepath.Join(dir, "short.key")
	for path, content := range map[string]string{existing: "x", notBackup: "these are notes, not a backup", short: "too short\n"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	host := unreachable(t)
	for _, tt := range []struct {
		name   string
		args   []string
		want   int
		stderr string
	}{
		{"save without a file", []string{"snapshot", "save"}, exitUsage, "needs a FILE"},
		{"save over a file", []string{"snapshot", "save", existing, "--host", host}, exitUsage, "exists: choose another name, or replace it with --force"},
		{"save into a missing directory", []string{"snapshot", "save", filepath.Join(dir, "no", "such.backup"), "--host", host}, exitUsage, "does not exist"},
		{"save with a missing key file", []string{"snapshot", "save", filepath.Join(dir, "b"), "--key-file", filepath.Join(dir, "none"), "--host", host}, exitUsage, "head -c 32 /dev/urandom | base64 >"},
		{"save with a short key file", []string{"snapshot", "save", filepath.Join(dir, "b"), "--key-file", short, "--host", host}, exitUsage, "needs at least 16"},
		{"save with a bad consistency", []string{"snapshot", "save", filepath.Join(dir, "b"), "--consistency", "eventual", "--host", host}, exitUsage, "choose linearizable or serializable"},
		{"save to an unreachable manager", []string{"snapshot", "save", filepath.Join(dir, "b"), "--host", host, "--timeout", "1s"}, exitUnavailable, ""},
		{"inspect a file that is not a backup", []string{"snapshot", "inspect", notBackup}, exitUsage, "not a shoal backup"},
		{"inspect a missing file", []string{"snapshot", "inspect", filepath.Join(dir, "none")}, exitUsage, "no such file"},
		{"restore without --state-dir", []string{"snapshot", "restore", existing}, exitUsage, "--state-dir is required"},
		{"restore a file that is not a backup", []string{"snapshot", "restore", notBackup, "--state-dir", filepath.Join(dir, "new")}, exitUsage, "not a shoal backup"},
		{"restore into a directory that is not empty", []string{"snapshot", "restore", notBackup, "--state-dir", dir}, exitUsage, "is not empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, "", tt.args...)
			if code != tt.want || !strings.Contains(stderr, tt.stderr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, tt.want, tt.stderr)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
		t.Errorf("a refused restore created its state directory (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "b")); !os.IsNotExist(err) {
		t.Errorf("a refused save wrote a file (%v)", err)
	}
}

func TestByteCount(t *testing.T) {
	for n, want := range map[int64]string{0: "0 bytes", 1023: "1023 bytes", 1536: "1.5 KiB", 3 << 20: "3.0 MiB", 5 << 30: "5.0 GiB"} {
		if got := byteCount(n); got != want {
			t.Errorf("byteCount(%d) = %q, want %q", n, got, want)
		}
	}
}
