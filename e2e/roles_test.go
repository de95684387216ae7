package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// clientCert issues a client certificate of role through m's control socket
// into a directory of its own, and returns the flags that use it and its
// client ID.
func clientCert(t *testing.T, m *managerProc, role string) (flags []string, id string) {
	t.Helper()
	dir := filepath.Join(shortTempDir(t), role)
	out := mustShoal(t, "cluster", "client-cert", "--role", role, "--out", dir, "--socket", m.socket())
	match := regexp.MustCompile(`client ID (\S+)\)`).FindStringSubmatch(out)
	if match == nil {
		t.Fatalf("client-cert printed no client ID: %s", out)
	}
	return []string{"--tls-cert", filepath.Join(dir, "client.crt"), "--tls-key", filepath.Join(dir, "client.key"),
		"--tls-ca", filepath.Join(dir, "ca.crt")}, match[1]
}

// A certificate does what its role allows, and no more: read-write reads
// and writes objects but may not change the membership (exit 6), read-only
// only reads, admin does it all; a revoked certificate is refused by every
// manager.
func TestCertificateRolesAndRevocation(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	for _, m := range ms {
		waitMember(t, 20*time.Second, m.name+" to vote", m.nodeID, isVoter, "--socket", ms[0].socket())
	}
	rw, rwID := clientCert(t, ms[0], "rw")
	ro, _ := clientCert(t, ms[0], "ro")
	admin, _ := clientCert(t, ms[0], "admin")
	leader := leaderOf(t, ms)
	var follower, other *managerProc
	for _, m := range ms {
		switch {
		case m == leader:
		case follower == nil:
			follower = m
		default:
			other = m
		}
	}
	at := func(m *managerProc, cert []string, args ...string) result {
		return shoal(t, append(append(args, "--host", m.addr, "--timeout", "10s"), cert...)...)
	}
	expect := func(r result, want int, what string) {
		t.Helper()
		if r.code != want {
			t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, want, r.stdout, r.stderr)
		}
	}

	// Read-write, through a follower (the leader checks the forwarded
	// caller) and on the leader.
	for _, m := range []*managerProc{follower, leader} {
		expect(at(m, rw, "create", "item", "rw-"+m.name, "--spec", `{"by": "rw"}`), 0, "rw create on "+m.name)
		expect(at(m, rw, "get", "item", "rw-"+m.name), 0, "rw get on "+m.name)
		r := at(m, rw, "node", "rm", other.nodeID, "--force")
		expect(r, 6, "rw node rm on "+m.name)
		if !strings.Contains(r.stderr, "permission denied") {
			t.Errorf("rw node rm says %q, want a permission denial", r.stderr)
		}
		expect(at(m, rw, "node", "transfer-leadership"), 6, "rw transfer-leadership on "+m.name)
		expect(at(m, rw, "cluster", "join-token", "manager"), 6, "rw join-token on "+m.name)
		expect(at(m, rw, "cluster", "client-cert", "--out", filepath.Join(shortTempDir(t), "x")), 6, "rw client-cert on "+m.name)
		expect(at(m, rw, "cluster", "revoke-cert", "someone"), 6, "rw revoke-cert on "+m.name)
	}
	if got := members(t, "--socket", leader.socket()); len(got) != 3 {
		t.Fatalf("after the refused removals, %d managers, want 3", len(got))
	}

	// Read-only.
	expect(at(follower, ro, "get", "item", "rw-"+follower.name), 0, "ro get")
	expect(at(follower, ro, "ls", "item"), 0, "ro ls")
	expect(at(follower, ro, "node", "ls"), 0, "ro node ls")
	expect(at(follower, ro, "create", "item", "ro-1"), 6, "ro create")
	expect(at(leader, ro, "update", "item", "rw-"+leader.name, "--label", "a=b"), 6, "ro update")
	expect(at(leader, ro, "rm", "item", "rw-"+leader.name), 6, "ro rm")

	// Admin: everything, through a follower too.
	expect(at(follower, admin, "create", "item", "admin-1"), 0, "admin create")
	expect(at(follower, admin, "cluster", "join-token", "manager", "-q"), 0, "admin join-token")
	expect(at(follower, admin, "node", "transfer-leadership", follower.nodeID), 0, "admin transfer-leadership")
	waitFor(t, 10*time.Second, follower.name+" to lead", func() (bool, string) {
		return leaderOf(t, ms) == follower, "the leader is " + leaderOf(t, ms).name
	})
	expect(at(leader, admin, "node", "rm", other.nodeID, "--force"), 0, "admin node rm")
	if code := other.waitExit(30 * time.Second); code != 1 {
		t.Errorf("the removed manager exited %d, want 1", code)
	}
	survivors := []*managerProc{leader, follower}

	// Revocation, by an admin over TCP: refused on every survivor, for
	// every call, the renewal path included (the CA service's policy runs
	// through the same check).
	r := at(leader, admin, "cluster", "revoke-cert", rwID)
	expect(r, 0, "admin revoke-cert")
	for _, m := range survivors {
		waitFor(t, 10*time.Second, "the revocation on "+m.name, func() (bool, string) {
			r := at(m, rw, "get", "item", "rw-"+m.name, "--consistency", "serializable")
			return r.code == 6, fmt.Sprintf("exit %d: %s", r.code, r.stderr)
		})
		for _, args := range [][]string{{"ls", "item"}, {"create", "item", "after-revocation"}, {"node", "ls"}, {"cluster", "info"}} {
			r := at(m, rw, args...)
			expect(r, 6, fmt.Sprintf("revoked %v on %s", args, m.name))
			if !strings.Contains(r.stderr, "revoked") {
				t.Errorf("revoked %v on %s says %q, want it to say the certificate was revoked", args, m.name, r.stderr)
			}
		}
	}
	// Revoking again says so; a manager is removed, not revoked.
	if r := at(leader, admin, "cluster", "revoke-cert", rwID); r.code != 0 || !strings.Contains(r.stdout, "already") {
		t.Errorf("revoking again: exit %d: %s%s", r.code, r.stdout, r.stderr)
	}
	expect(at(leader, admin, "cluster", "revoke-cert", follower.nodeID), 4, "revoke-cert of a manager")
	// The other certificates still work.
	expect(at(follower, ro, "ls", "item"), 0, "ro ls after the revocation")
}
