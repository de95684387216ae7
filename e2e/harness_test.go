package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// shoalBin is the binary under test, built once by TestMain.
var shoalBin string

// Raft timing of the test managers: elections within about a second.
const (
	tick            = 50 * time.Millisecond
	electionTick    = 10
	electionTimeout = electionTick * tick
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shoal-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shoalBin = filepath.Join(dir, "shoal")
	build := exec.Command("go", "build", "-o", shoalBin, "./cmd/shoal")
	build.Dir = ".."
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building shoal:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// crashBin is shoal built with -tags crashpoints, on first use, beside
// shoalBin (and removed with it).
var crashBin struct {
	once sync.Once
	path string
	err  error
}

func crashpointBinary(t *testing.T) string {
	t.Helper()
	crashBin.once.Do(func() {
		crashBin.path = filepath.Join(filepath.Dir(shoalBin), "shoal-crashpoints")
		build := exec.Command("go", "build", "-tags", "crashpoints", "-o", crashBin.path, "./cmd/shoal")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			crashBin.err = fmt.Errorf("building shoal -tags crashpoints: %v\n%s", err, out)
		}
	})
	if crashBin.err != nil {
		t.Fatal(crashBin.err)
	}
	return crashBin.path
}

// shortTempDir returns a directory short enough for unix socket paths
// (107 bytes at most), removed when the test ends.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "se2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// managerProc is one manager process.
type managerProc struct {
	t      *testing.T
	name   string
	dir    string
	addr   string // its remote API, known once it answers
	nodeID string
	raftID string
	args   []string
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	err    error // what Wait returned; read after exited is closed
	// clientDir holds a client certificate of the manager's cluster.
	clientDir string
	// bin is the binary it runs (shoalBin unless set), with env added to
	// the environment.
	bin string
	env []string
}

func (m *managerProc) socket() string { return filepath.Join(m.dir, "control.sock") }

// startManager starts a manager in dir listening on listen (127.0.0.1:0
// picks a port), with extra flags, and waits until it answers.
//
// A manager that joins (--join ADDR) gets the cluster's join token from the
// manager at ADDR, unless extra gives one, and shares that manager's client
// certificate (see withClientCert).
func startManager(t *testing.T, name, dir, listen string, extra ...string) *managerProc {
	t.Helper()
	m := launchManager(t, name, dir, listen, extra...)
	m.waitServing()
	m.register()
	return m
}

// launchManager starts a manager as startManager does, without waiting for
// it to answer: for a start that is to fail.
func launchManager(t *testing.T, name, dir, listen string, extra ...string) *managerProc {
	t.Helper()
	return launchManagerWith(t, "", nil, name, dir, listen, extra...)
}

// launchManagerWith is launchManager with another binary (shoalBin when
// "") and more environment.
func launchManagerWith(t *testing.T, bin string, env []string, name, dir, listen string, extra ...string) *managerProc {
	t.Helper()
	m := &managerProc{t: t, name: name, dir: dir, bin: bin, env: env}
	joinAddr := flagValue(extra, "--join")
	if joinAddr != "" && flagValue(extra, "--token") == "" {
		through, ok := managers.Load(joinAddr)
		if !ok {
			t.Fatalf("joining %s: no manager of this test listens there", joinAddr)
		}
		token := strings.TrimSpace(mustShoal(t, "cluster", "join-token", "manager", "-q", "--socket", through.(*managerProc).socket()))
		extra = append(extra, "--token", token)
	}
	m.args = append([]string{"manager", "--state-dir", dir, "--listen-addr", listen,
		"--tick", tick.String(), "--election-tick", fmt.Sprint(electionTick), "--heartbeat-tick", "1"}, extra...)
	m.start()
	t.Cleanup(func() {
		m.stop()
		if t.Failed() {
			t.Logf("--- output of %s (%s):\n%s", m.name, strings.Join(m.args, " "), m.out.String())
		}
	})
	return m
}

// register records a manager that answers: its client certificate (its
// own when it founded the cluster, else the one of the manager it joined
// through) and its address, for withClientCert.
func (m *managerProc) register() {
	m.t.Helper()
	if joinAddr := flagValue(m.args, "--join"); joinAddr == "" {
		m.clientDir = filepath.Join(m.dir, "client")
		// The operator's certificate: admin, so that tests change the
		// membership over TCP too (roles_test.go tests the others).
		mustShoal(m.t, "cluster", "client-cert", "--role", "admin", "--out", m.clientDir, "--socket", m.socket())
	} else {
		through, _ := managers.Load(joinAddr)
		m.clientDir = through.(*managerProc).clientDir
	}
	managers.Store(m.addr, m)
}

// managers maps the address of every manager the tests started to it, so
// that a command given --host finds a client certificate of that cluster.
var managers sync.Map

// flagValue returns the value that follows flag in args, or "".
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// withClientCert adds, to a command that reaches managers with --host, the
// client certificate of the cluster of the first address: remote use needs
// one. An address no test manager listens on gets any certificate, so the
// command fails at the connection, as it would in real use.
func withClientCert(args []string) []string {
	host := flagValue(args, "--host")
	if host == "" || flagValue(args, "--tls-cert") != "" {
		return nil
	}
	var m *managerProc
	if v, ok := managers.Load(strings.Split(host, ",")[0]); ok {
		m = v.(*managerProc)
	} else {
		managers.Range(func(_, v any) bool { m = v.(*managerProc); return false })
	}
	if m == nil {
		return nil
	}
	return m.tlsEnv()
}

// tlsEnv points the CLI at a client certificate of m's cluster.
func (m *managerProc) tlsEnv() []string {
	return []string{
		"SHOAL_TLS_CERT=" + filepath.Join(m.clientDir, "client.crt"),
		"SHOAL_TLS_KEY=" + filepath.Join(m.clientDir, "client.key"),
		"SHOAL_TLS_CA=" + filepath.Join(m.clientDir, "ca.crt"),
	}
}

func (m *managerProc) start() {
	m.t.Helper()
	m.out = &lockedBuffer{}
	bin := m.bin
	if bin == "" {
		bin = shoalBin
	}
	m.cmd = exec.Command(bin, m.args...)
	if m.env != nil {
		m.cmd.Env = append(os.Environ(), m.env...)
	}
	m.cmd.Stdout, m.cmd.Stderr = m.out, m.out
	m.exited = make(chan struct{})
	if err := m.cmd.Start(); err != nil {
		m.t.Fatalf("starting %s: %v", m.name, err)
	}
	go func() {
		m.err = m.cmd.Wait()
		close(m.exited)
	}()
}

// waitServing waits until the manager answers on its socket and knows a
// leader, and records its address and identity.
func (m *managerProc) waitServing() {
	m.t.Helper()
	waitFor(m.t, 30*time.Second, m.name+" to serve", func() (bool, string) {
		select {
		case <-m.exited:
			m.t.Fatalf("%s exited at start: %v\n%s", m.name, m.err, m.out.String())
		default:
		}
		var info clusterInfo
		r := shoal(m.t, "cluster", "info", "-o", "json", "--socket", m.socket(), "--timeout", "2s")
		if r.code != 0 {
			return false, r.stderr
		}
		if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
			m.t.Fatalf("cluster info -o json: %v\n%s", err, r.stdout)
		}
		if info.Manager == nil || info.LeaderRaftID == "" {
			return false, "no leader yet: " + r.stdout
		}
		m.addr, m.nodeID, m.raftID = info.Manager.Addr, info.Manager.NodeID, info.Manager.RaftID
		return true, ""
	})
}

// restart starts the manager again from its directory on its address.
func (m *managerProc) restart(extra ...string) {
	m.t.Helper()
	args := append([]string(nil), m.args...)
	for i, a := range args {
		if a == "--listen-addr" {
			args[i+1] = m.addr
		}
	}
	m.args = append(args, extra...)
	m.start()
	m.waitServing()
}

// kill ends the process with SIGKILL, as a crash would.
func (m *managerProc) kill() {
	m.t.Helper()
	_ = m.cmd.Process.Kill()
	<-m.exited
}

// terminate sends SIGTERM and waits for the clean shutdown.
func (m *managerProc) terminate() error {
	m.t.Helper()
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
		return m.err
	case <-time.After(30 * time.Second):
		m.t.Fatalf("%s did not stop within 30s of SIGTERM", m.name)
		return nil
	}
}

// stop ends the process whatever its state: SIGTERM, then SIGKILL.
func (m *managerProc) stop() {
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.exited:
	case <-time.After(15 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.exited
	}
}

// waitExit waits for the process to end by itself and returns its exit
// code.
func (m *managerProc) waitExit(timeout time.Duration) int {
	m.t.Helper()
	select {
	case <-m.exited:
	case <-time.After(timeout):
		m.t.Fatalf("%s still runs after %v", m.name, timeout)
	}
	var ee *exec.ExitError
	if errors.As(m.err, &ee) {
		return ee.ExitCode()
	}
	return 0
}

// startCluster starts n managers: the first bootstraps, each next one
// joins through the one before it (a follower, from the third on).
func startCluster(t *testing.T, n int) []*managerProc {
	t.Helper()
	base := shortTempDir(t)
	var ms []*managerProc
	for i := range n {
		name := fmt.Sprintf("m%d", i+1)
		var extra []string
		if i > 0 {
			extra = []string{"--join", ms[i-1].addr}
		}
		ms = append(ms, startManager(t, name, filepath.Join(base, name), "127.0.0.1:0", extra...))
	}
	return ms
}

// result is what one CLI run did.
type result struct {
	code           int
	stdout, stderr string
}

// shoal runs the CLI with args, outside of any SHOAL_* environment, and
// returns what it did. The run is bounded to a minute.
func shoal(t *testing.T, args ...string) result {
	t.Helper()
	return shoalEnv(t, nil, args...)
}

func shoalEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return runShoal(t, env, nil, args...)
}

func runShoal(t *testing.T, env []string, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, shoalBin, args...)
	cmd.Env = append(append(cleanEnv(), withClientCert(args)...), env...)
	cmd.Stdin = stdin
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errOut.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running shoal %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// shoalStdin runs the CLI with stdin as its standard input.
func shoalStdin(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runShoal(t, nil, strings.NewReader(stdin), args...)
}

// mustShoal runs the CLI and fails the test unless it succeeds.
func mustShoal(t *testing.T, args ...string) string {
	t.Helper()
	r := shoal(t, args...)
	if r.code != 0 {
		t.Fatalf("shoal %s: exit %d\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SHOAL_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitFor polls cond until it holds; on timeout it fails with cond's last
// word on why not.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().String()
}

// The JSON the CLI prints, as far as the tests read it.
type (
	member struct {
		NodeID        string `json:"node_id"`
		RaftID        string `json:"raft_id"`
		Addr          string `json:"addr"`
		Suffrage      string `json:"suffrage"`
		AutoPromote   bool   `json:"auto_promote"`
		Role          string `json:"role"`
		Reachable     bool   `json:"reachable"`
		LastContactMs int64  `json:"last_contact_ms"`
		MatchIndex    uint64 `json:"match_index"`
		Lag           uint64 `json:"lag"`
	}
	clusterInfo struct {
		Manager      *member `json:"manager"`
		LeaderRaftID string  `json:"leader_raft_id"`
		StoreVersion uint64  `json:"store_version"`
		Members      int     `json:"members"`
	}
	object struct {
		Kind    string            `json:"kind"`
		ID      string            `json:"id"`
		Name    string            `json:"name"`
		Labels  map[string]string `json:"labels"`
		Spec    json.RawMessage   `json:"spec"`
		Version uint64            `json:"version"`
	}
	objectList struct {
		Version uint64   `json:"version"`
		Items   []object `json:"items"`
	}
	event struct {
		Type    string `json:"type"`
		Version uint64 `json:"version"`
		Object  object `json:"object"`
	}
)

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decoding %q: %v", s, err)
	}
	return v
}

// compact returns raw JSON without spaces.
func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatalf("compacting %q: %v", raw, err)
	}
	return b.String()
}

// members lists the managers through m.
func members(t *testing.T, via ...string) []member {
	t.Helper()
	return decode[[]member](t, mustShoal(t, append([]string{"node", "ls", "-o", "json"}, via...)...))
}

// leaderOf returns the manager of ms that leads, as they agree.
func leaderOf(t *testing.T, ms []*managerProc) *managerProc {
	t.Helper()
	var leader *managerProc
	waitFor(t, 10*time.Second, "a leader", func() (bool, string) {
		for _, m := range ms {
			r := shoal(t, "cluster", "info", "-o", "json", "--socket", m.socket(), "--timeout", "2s")
			if r.code != 0 {
				continue
			}
			info := decode[clusterInfo](t, r.stdout)
			for _, c := range ms {
				if c.raftID == info.LeaderRaftID && info.LeaderRaftID != "" {
					leader = c
					return true, ""
				}
			}
		}
		return false, "no manager names a leader among them"
	})
	return leader
}

// names lists the names of the objects of kind as manager via sees them.
func names(t *testing.T, kind string, via ...string) map[string]uint64 {
	t.Helper()
	list := decode[objectList](t, mustShoal(t, append([]string{"ls", kind, "-o", "json"}, via...)...))
	out := map[string]uint64{}
	for _, o := range list.Items {
		out[o.Name] = o.Version
	}
	return out
}

// voters returns the members that vote, and how many of them are
// reachable.
func voters(ms []member) (vs []member, reachable int) {
	for _, m := range ms {
		if m.Suffrage == "voter" {
			vs = append(vs, m)
			if m.Reachable {
				reachable++
			}
		}
	}
	return vs, reachable
}

// memberOf finds the member with nodeID.
func memberOf(ms []member, nodeID string) (member, bool) {
	for _, m := range ms {
		if m.NodeID == nodeID {
			return m, true
		}
	}
	return member{}, false
}

// waitMember polls node ls through via until the member with nodeID
// satisfies cond, and returns it as last seen.
func waitMember(t *testing.T, timeout time.Duration, what, nodeID string, cond func(member) bool, via ...string) member {
	t.Helper()
	var last member
	waitFor(t, timeout, what, func() (bool, string) {
		r := shoal(t, append([]string{"node", "ls", "-o", "json", "--timeout", "5s"}, via...)...)
		if r.code != 0 {
			return false, r.stderr
		}
		m, ok := memberOf(decode[[]member](t, r.stdout), nodeID)
		if !ok {
			return false, nodeID + " is not listed: " + r.stdout
		}
		last = m
		return cond(m), fmt.Sprintf("%+v", m)
	})
	return last
}

// isVoter and isCaughtUpLearner are conditions for waitMember.
func isVoter(m member) bool { return m.Suffrage == "voter" }

func isCaughtUpLearner(m member) bool { return m.Suffrage == "learner" && m.Reachable && m.Lag == 0 }
