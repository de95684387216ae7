package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Bad input and failures end with the documented exit codes and one line
// on stderr.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	m := startCluster(t, 1)[0]
	host := []string{"--host", m.addr}
	created := decode[object](t, mustShoal(t, append([]string{"create", "service", "web", "--spec", `{"replicas": 1}`, "-o", "json"}, host...)...))

	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"bad JSON is refused before any call", []string{"create", "service", "api", "--spec", `{"replicas":`}, 2, "not valid JSON"},
		{"invalid kind", []string{"create", "Bad_Kind", "x"}, 2, "kind"},
		{"built-in kind", []string{"create", "node", "x"}, 2, "kept by shoal itself"},
		{"unknown object", []string{"get", "service", "nope"}, 3, "not found"},
		{"update of an unknown object", []string{"update", "service", "nope", "--label", "a=b"}, 3, "not found"},
		{"rm of an unknown object", []string{"rm", "service", "nope"}, 3, "not found"},
		{"unknown manager", []string{"node", "rm", "nosuchnode"}, 3, "no manager has"},
		{"promote of an unknown manager", []string{"node", "promote", "nosuchnode"}, 3, "no manager has"},
		{"demote of an unknown manager", []string{"node", "demote", "ffff"}, 3, "no manager has"},
		{"name taken", []string{"create", "service", "web"}, 4, "exists"},
		{"stale --if-version", []string{"update", "service", "web", "--label", "a=b", "--if-version", fmt.Sprint(created.Version + 100)}, 4, "version"},
		{"stale --if-version on rm", []string{"rm", "service", "web", "--if-version", fmt.Sprint(created.Version + 100)}, 4, "version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := shoal(t, append(tt.args, host...)...)
			checkFailure(t, r, tt.code, tt.stderr)
		})
	}
	// Nothing of the refused calls took effect.
	if r := shoal(t, append([]string{"get", "service", "api"}, host...)...); r.code != 3 {
		t.Errorf("get of the object with bad JSON: exit %d, want 3", r.code)
	}
	got := decode[object](t, mustShoal(t, append([]string{"get", "service", "web", "-o", "json"}, host...)...))
	if got.Version != created.Version || len(got.Labels) != 0 {
		t.Errorf("after the refused changes, web is %+v, want version %d and no labels", got, created.Version)
	}
	// The right version goes through.
	mustShoal(t, append([]string{"update", "service", "web", "--label", "a=b", "--if-version", fmt.Sprint(created.Version)}, host...)...)

	t.Run("unreachable manager", func(t *testing.T) {
		// With this cluster's certificate: left to withClientCert, an
		// address no manager has gets any test's certificate, whose
		// directory may be gone with its test (exit 2, not 5).
		checkFailure(t, shoalEnv(t, m.tlsEnv(), "ls", "service", "--host", freeAddr(t), "--timeout", "3s"), 5, "cannot reach a manager")
	})
	t.Run("no control socket", func(t *testing.T) {
		checkFailure(t, shoal(t, "ls", "service", "--socket", filepath.Join(t.TempDir(), "control.sock")), 5, "no control socket")
	})
	t.Run("SHOAL_HOST falls through to the next address", func(t *testing.T) {
		r := shoalEnv(t, append(m.tlsEnv(), "SHOAL_HOST="+freeAddr(t)+","+m.addr), "get", "service", "web")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
}

func checkFailure(t *testing.T, r result, code int, stderr string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d; stderr: %s", r.code, code, r.stderr)
	}
	if !strings.Contains(strings.ToLower(r.stderr), strings.ToLower(stderr)) {
		t.Errorf("stderr %q does not say %q", r.stderr, stderr)
	}
	if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
		t.Errorf("stderr has %d lines, want one: %q", n+1, r.stderr)
	}
}

// shoal dev starts a cluster in one process, says how to reach it, answers
// the CLI, and stops cleanly on SIGINT, removing its state.
func TestDevCluster(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(shortTempDir(t), "dev")
	dev := exec.Command(shoalBin, "dev", "--managers", "3", "--dir", dir)
	dev.Env = cleanEnv()
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	dev.Stderr = stderr
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = dev.Process.Kill()
		<-exited
	})
	banner := &lockedBuffer{}
	socket := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			banner.Write([]byte(line + "\n"))
			if s, ok := strings.CutPrefix(strings.TrimSpace(line), "export SHOAL_SOCKET="); ok {
				socket <- s
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		exited <- dev.Wait()
	}()

	var sock string
	select {
	case sock = <-socket:
	case err := <-exited:
		exited <- err
		t.Fatalf("shoal dev exited: %v\n%s%s", err, banner.String(), stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("shoal dev printed no socket in 60s:\n%s%s", banner.String(), stderr.String())
	}
	env := []string{"SHOAL_SOCKET=" + sock}
	r := shoalEnv(t, env, "node", "ls", "-o", "json")
	if r.code != 0 {
		t.Fatalf("node ls: exit %d: %s", r.code, r.stderr)
	}
	if got := decode[[]member](t, r.stdout); len(got) != 3 {
		t.Fatalf("node ls shows %d managers, want 3", len(got))
	}
	if r := shoalEnv(t, env, "create", "service", "web", "--spec", `{"replicas": 3}`); r.code != 0 {
		t.Fatalf("create: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"node ls", "create service web", "Ctrl-C"} {
		if !strings.Contains(banner.String(), want) {
			t.Errorf("the banner does not mention %q:\n%s", want, banner.String())
		}
	}

	if err := dev.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Fatalf("shoal dev after SIGINT: %v\n%s%s", err, banner.String(), stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("shoal dev still runs 30s after SIGINT")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("shoal dev left %s behind: %v", dir, err)
	}
	if !strings.Contains(banner.String(), "stopped; removed "+dir) {
		t.Errorf("shoal dev did not say it removed its state:\n%s", banner.String())
	}
}
