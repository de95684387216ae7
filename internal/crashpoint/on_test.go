//go:build crashpoints

package crashpoint_test

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/shoal-project/shoal/internal/crashpoint"
)

// The child process reaches the armed point twice; armed with ":2" it must
// die of SIGKILL on the second hit, and not before.
func TestHitKillsOnTheArmedHit(t *testing.T) {
	if os.Getenv("CRASHPOINT_CHILD") != "" {
		crashpoint.Hit(crashpoint.ApplyBefore) // another point: ignored
		crashpoint.Hit(crashpoint.WALSaveAfter)
		os.Stdout.WriteString("after first hit\n")
		crashpoint.Hit(crashpoint.WALSaveAfter)
		os.Stdout.WriteString("after second hit\n")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHitKillsOnTheArmedHit$")
	cmd.Env = append(os.Environ(), "CRASHPOINT_CHILD=1", crashpoint.EnvVar+"="+crashpoint.WALSaveAfter+":2")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child did not fail: %v\n%s", err, out)
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL\n%s", err, out)
	}
	if !strings.Contains(string(out), "after first hit") || strings.Contains(string(out), "after second hit") {
		t.Fatalf("child output:\n%s", out)
	}
}
