package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestJoinTokensAndClientCertificates drives the security commands: a
// rotated token stops working, a manager joins with the new one, and
// remote use of the CLI needs a client certificate of the cluster.
func TestJoinTokensAndClientCertificates(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 1)
	first := ms[0]
	base := filepath.Dir(first.dir)

	old := strings.TrimSpace(mustShoal(t, "cluster", "join-token", "manager", "-q", "--socket", first.socket()))
	out := mustShoal(t, "cluster", "join-token", "manager", "--rotate", "--socket", first.socket())
	if !strings.Contains(out, "old one no longer works") {
		t.Fatalf("rotate said:\n%s", out)
	}
	fresh := strings.TrimSpace(mustShoal(t, "cluster", "join-token", "manager", "-q", "--socket", first.socket()))
	if fresh == old || !strings.HasPrefix(fresh, "SHLTKN-1-") {
		t.Fatalf("token after rotation %q (before %q)", fresh, old)
	}

	// The old token is refused, before anything is joined.
	refused := &managerProc{t: t, name: "refused", dir: filepath.Join(base, "refused")}
	refused.args = []string{"manager", "--state-dir", refused.dir, "--listen-addr", "127.0.0.1:0",
		"--tick", tick.String(), "--join", first.addr, "--token", old}
	refused.start()
	t.Cleanup(refused.stop)
	if code := refused.waitExit(30 * time.Second); code == 0 {
		t.Fatal("a manager joined with a rotated token")
	}
	if out := refused.out.String(); !strings.Contains(out, "token") {
		t.Fatalf("the refused manager did not say why:\n%s", out)
	}

	// The new token works.
	startManager(t, "m2", filepath.Join(base, "m2"), "127.0.0.1:0", "--join", first.addr, "--token", fresh)

	// Remote use without a certificate is refused with a clear message.
	r := shoalEnv(t, []string{"XDG_CONFIG_HOME=" + filepath.Join(base, "nothing-here"), "HOME=" + filepath.Join(base, "nothing-here")},
		"ls", "item", "--host", first.addr, "--tls-cert", filepath.Join(base, "none.crt"))
	checkFailure(t, r, 2, "client certificate")

	// A certificate of another cluster is refused at the handshake.
	other := startCluster(t, 1)[0]
	r = shoal(t, "ls", "item", "--host", first.addr, "--timeout", "3s",
		"--tls-cert", filepath.Join(other.clientDir, "client.crt"),
		"--tls-key", filepath.Join(other.clientDir, "client.key"),
		"--tls-ca", filepath.Join(other.clientDir, "ca.crt"))
	if r.code != 5 {
		t.Fatalf("a certificate of another cluster: exit %d, want 5\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "start one with") || !strings.Contains(r.stderr, "--tls-ca") {
		t.Errorf("a certificate of another cluster: the error should point at the certificates, not at starting a manager: %s", r.stderr)
	}

	// A read-write client certificate reads and writes, but cannot get the
	// join token.
	rw, _ := clientCert(t, first, "rw")
	mustShoal(t, append([]string{"create", "item", "remote", "--host", first.addr}, rw...)...)
	r = shoal(t, append([]string{"cluster", "join-token", "manager", "--host", first.addr}, rw...)...)
	if r.code != 6 || !strings.Contains(r.stderr, "permission denied") {
		t.Fatalf("a client certificate got the join token: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestAutolock runs a manager with --autolock: restarted, it answers
// nothing until 'shoal unlock' gives it its key, and refuses a wrong one.
func TestAutolock(t *testing.T) {
	t.Parallel()
	base := shortTempDir(t)
	m := startManager(t, "m1", filepath.Join(base, "m1"), "127.0.0.1:0", "--autolock")
	key := regexp.MustCompile(`SHLKEY-1-[0-9a-z]+`).FindString(m.out.String())
	if key == "" {
		t.Fatalf("the unlock key was not shown:\n%s", m.out.String())
	}
	if got := strings.TrimSpace(mustShoal(t, "cluster", "unlock-key", "-q", "--socket", m.socket())); got != key {
		t.Fatalf("unlock-key says %q, the manager showed %q", got, key)
	}
	mustShoal(t, "create", "item", "sealed", "--socket", m.socket())
	if err := m.terminate(); err != nil {
		t.Fatalf("stop: %v", err)
	}

	m.start() // restart from the directory, on the same address
	waitFor(t, 20*time.Second, "the restarted manager to say it is locked", func() (bool, string) {
		r := shoal(t, "cluster", "info", "--socket", m.socket(), "--timeout", "2s")
		return r.code == 5 && strings.Contains(r.stderr, "manager is locked"), r.stderr
	})
	doc := shoal(t, "doctor", "--socket", m.socket(), "--timeout", "2s")
	if doc.code != 5 || !strings.Contains(doc.stdout, "is locked: it waits for its unlock key ('shoal unlock' on its host)") {
		t.Errorf("doctor on a locked manager: exit %d\n%s%s", doc.code, doc.stdout, doc.stderr)
	}
	r := shoalStdin(t, "SHLKEY-1-"+strings.Repeat("0", 50)+"\n", "unlock", "--socket", m.socket())
	checkFailure(t, r, 2, "wrong unlock key")
	r = shoalStdin(t, key+"\n", "unlock", "--socket", m.socket())
	if r.code != 0 {
		t.Fatalf("unlock: exit %d\n%s", r.code, r.stderr)
	}
	m.waitServing()
	mustShoal(t, "get", "item", "sealed", "--socket", m.socket())
	// An unlocked manager has nothing to unlock: that is no error.
	r = shoalStdin(t, key+"\n", "unlock", "--socket", m.socket())
	if r.code != 0 || !strings.Contains(r.stdout, "not locked") {
		t.Errorf("unlock of an unlocked manager: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// A manager that is locked says so, without the hint to start one.
	if err := m.terminate(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	m.start()
	waitFor(t, 20*time.Second, "the restarted manager to say it is locked", func() (bool, string) {
		r := shoal(t, "cluster", "info", "--socket", m.socket(), "--timeout", "2s")
		return r.code == 5 && strings.Contains(r.stderr, "manager is locked"), r.stderr
	})
	if r := shoal(t, "cluster", "info", "--socket", m.socket(), "--timeout", "2s"); strings.Contains(r.stderr, "start one with") {
		t.Errorf("a locked manager's answer suggests starting one: %s", r.stderr)
	}
}

// The join token can be asked for as soon as the first manager's socket
// exists, before its first term has created the cluster object: the call
// waits for it instead of failing (README's walkthrough did this).
func TestJoinTokenRightAfterTheFirstStart(t *testing.T) {
	t.Parallel()
	m := launchManager(t, "m1", filepath.Join(shortTempDir(t), "m1"), "127.0.0.1:0")
	waitFor(t, 30*time.Second, "the control socket", func() (bool, string) {
		_, err := os.Stat(m.socket())
		return err == nil, fmt.Sprint(err)
	})
	r := shoal(t, "cluster", "join-token", "manager", "-q", "--socket", m.socket())
	if r.code != 0 || !strings.HasPrefix(strings.TrimSpace(r.stdout), "SHLTKN-1-") {
		t.Fatalf("join-token right after the start: exit %d, %q\n%s", r.code, r.stdout, r.stderr)
	}
}
