package robustness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/client"
	"github.com/shoal-project/shoal/robustness/proxy"
)

// Raft timing of the managers under test: elections within about a second.
const (
	tick         = 50 * time.Millisecond
	electionTick = 10
	// snapshotInterval and keepEntries are small, so that a follower cut
	// off for a few seconds must catch up by snapshot.
	snapshotInterval = 200
	keepEntries      = 50
	// peerPort is the port in the advertised addresses; the proxy
	// ignores it.
	peerPort = "2377"
)

// cluster is a set of manager processes whose peer links all go through
// one proxy.Network.
type cluster struct {
	t    *testing.T
	bin  string
	dir  string // state directories and logs
	logf func(format string, args ...any)
	net  *proxy.Network
	// lab, when set, runs each manager in its own network namespace,
	// reaching the others directly; net is then unused.
	lab *netLab

	managers []*manager
	// spare is a manager outside managers, started by the faults that
	// join a manager and remove it again (made on first use).
	spare *manager
	tls   *tls.Config

	mu       sync.Mutex
	problems []string
}

// problem records a failure found while the run goes on.
func (c *cluster) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.logf("PROBLEM: %s", msg)
	c.mu.Lock()
	c.problems = append(c.problems, msg)
	c.mu.Unlock()
}

func (c *cluster) Problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.problems...)
}

// manager is one manager process, restarted as often as the run needs.
type manager struct {
	c      *cluster
	name   string // m1, m2, ...
	host   string // the name peers dial, resolved by the proxy
	listen string // the real remote API address
	dir    string
	log    string // its output, across restarts
	netns  string // its network namespace, in a lab

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
	expected bool   // the next exit is ours (kill, stop, removal)
	armed    string // SHOAL_CRASHPOINT of the running process
	crashed  chan struct{}
	paused   bool
	starts   int
	raftID   uint64
	nodeID   string
}

func (m *manager) advertise() string { return net.JoinHostPort(m.host, peerPort) }
func (m *manager) socket() string    { return filepath.Join(m.dir, "control.sock") }

// newCluster starts n managers: m1 founds the cluster, the others join
// through it, each through its own egress proxy.
func newCluster(t *testing.T, dir string, n int, logf func(string, ...any), seed uint64, lab *netLab) (*cluster, error) {
	c := &cluster{t: t, bin: shoalBinary(t), dir: dir, logf: logf, net: proxy.New(logf), lab: lab}
	c.net.Seed(seed)
	for i := range n {
		m, err := c.addManager(fmt.Sprintf("m%d", i+1))
		if err != nil {
			return c, err
		}
		c.managers = append(c.managers, m)
	}
	if err := c.managers[0].start(nil, ""); err != nil {
		return c, err
	}
	if err := c.managers[0].waitServing(30 * time.Second); err != nil {
		return c, err
	}
	for _, m := range c.managers[1:] {
		if err := c.join(m, c.managers[0]); err != nil {
			return c, err
		}
	}
	// The managers join as learners: the cluster tolerates failures only
	// once the leader has promoted them.
	if err := c.waitHealthy(45 * time.Second); err != nil {
		return c, err
	}
	cert, err := c.issueClientCert(c.managers[0])
	if err != nil {
		return c, err
	}
	c.tls = cert
	return c, nil
}

func (c *cluster) addManager(name string) (*manager, error) {
	if c.lab != nil {
		i := len(c.managers)
		ip := c.lab.ip(i)
		return &manager{c: c, name: name, host: ip, listen: net.JoinHostPort(ip, peerPort), netns: c.lab.ns[i],
			dir: filepath.Join(c.dir, name), log: filepath.Join(c.dir, name+".log")}, nil
	}
	addr, err := freeListenAddr()
	if err != nil {
		return nil, err
	}
	m := &manager{c: c, name: name, host: name + ".peer.invalid", listen: addr,
		dir: filepath.Join(c.dir, name), log: filepath.Join(c.dir, name+".log")}
	c.net.AddTarget(m.host, m.listen)
	if _, err := c.net.Egress(m.name); err != nil {
		return nil, err
	}
	return m, nil
}

// join starts m as a new member, joining through via.
func (c *cluster) join(m, via *manager) error {
	flags, err := c.joinFlags(via)
	if err != nil {
		return err
	}
	if err := m.start(flags, ""); err != nil {
		return err
	}
	return m.waitServing(45 * time.Second)
}

// joinFlags are the flags that make a manager join through via.
func (c *cluster) joinFlags(via *manager) ([]string, error) {
	var token string
	err := c.admin(via, 10*time.Second, func(ctx context.Context, cl *client.Client) error {
		var err error
		token, err = cl.JoinToken(ctx, false)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("join token from %s: %w", via.name, err)
	}
	return []string{"--join", via.advertise(), "--token", token}, nil
}

// spareManager returns the cluster's spare manager, stopped, with an
// empty state directory.
func (c *cluster) spareManager() (*manager, error) {
	if c.lab != nil {
		return nil, errors.New("no spare manager in network namespaces")
	}
	if c.spare == nil {
		s, err := c.addManager("spare")
		if err != nil {
			return nil, err
		}
		c.spare = s
	}
	if c.spare.running() {
		return nil, errors.New("the spare manager still runs")
	}
	return c.spare, removeAll(c.spare.dir)
}

// all returns the managers and the spare, if there is one.
func (c *cluster) all() []*manager {
	if c.spare == nil {
		return c.managers
	}
	return append(append([]*manager(nil), c.managers...), c.spare)
}

// members returns the members as the leader reports them, asking any
// manager that runs.
func (c *cluster) members(timeout time.Duration) ([]*api.Member, error) {
	return c.membersExcept(nil, timeout)
}

// membersExcept is members, asking any manager but not.
func (c *cluster) membersExcept(not *manager, timeout time.Duration) ([]*api.Member, error) {
	deadline := time.Now().Add(timeout)
	var last error = errors.New("no manager runs")
	for {
		for _, m := range c.live() {
			if m == not {
				continue
			}
			var ms []*api.Member
			err := c.admin(m, 2*time.Second, func(ctx context.Context, cl *client.Client) error {
				var err error
				ms, _, err = cl.Members(ctx)
				return err
			})
			if err == nil {
				return ms, nil
			}
			last = err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("listing the members: %w", last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// issueClientCert gets a client certificate from m's control socket.
func (c *cluster) issueClientCert(m *manager) (*tls.Config, error) {
	var cert client.ClientCertificate
	err := c.admin(m, 10*time.Second, func(ctx context.Context, cl *client.Client) error {
		var err error
		cert, err = cl.IssueClientCertificate(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.dir, "client")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	files := map[string][]byte{"client.crt": cert.CertificatePEM, "client.key": cert.KeyPEM, "ca.crt": cert.RootCAPEM}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, err
		}
	}
	return client.LoadTLS(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"), filepath.Join(dir, "ca.crt"))
}

// admin calls fn with a client of m's control socket.
func (c *cluster) admin(m *manager, timeout time.Duration, fn func(context.Context, *client.Client) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cl, err := client.New(ctx, client.Config{SocketPath: m.socket(), DialTimeout: timeout})
	if err != nil {
		return err
	}
	defer cl.Close()
	return fn(ctx, cl)
}

// env is the environment of a manager process: no SHOAL_ settings of the
// caller, no proxy settings but the manager's own egress proxy.
func (m *manager) env(crashpoint string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch strings.ToUpper(name) {
		case "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD":
			continue
		}
		if strings.HasPrefix(name, "SHOAL_") || strings.HasPrefix(name, "GRPC_GO_") {
			continue
		}
		env = append(env, kv)
	}
	if m.netns == "" {
		egress, _ := m.c.net.Egress(m.name)
		env = append(env, "HTTPS_PROXY="+egress)
	}
	if crashpoint != "" {
		env = append(env, "SHOAL_CRASHPOINT="+crashpoint)
	}
	return env
}

// start starts the manager process from its directory; extra adds flags
// (--join and --token for a new member), crashpoint arms a crash point.
func (m *manager) start(extra []string, crashpoint string) error {
	return m.startProcess(extra, crashpoint, false)
}

// startMayExit starts the manager as start does, for a start that may
// fail: its exit is no problem, whatever it is.
func (m *manager) startMayExit(extra []string) error {
	return m.startProcess(extra, "", true)
}

func (m *manager) startProcess(extra []string, crashpoint string, mayExit bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil {
		select {
		case <-m.exited:
		default:
			return fmt.Errorf("%s: already running", m.name)
		}
	}
	args := append([]string{"manager", "--state-dir", m.dir, "--listen-addr", m.listen, "--advertise-addr", m.advertise(),
		"--tick", tick.String(), "--election-tick", fmt.Sprint(electionTick), "--heartbeat-tick", "1",
		"--snapshot-interval", fmt.Sprint(snapshotInterval), "--log-entries-for-slow-followers", fmt.Sprint(keepEntries)}, extra...)
	logFile, err := os.OpenFile(m.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	m.starts++
	fmt.Fprintf(logFile, "=== start %d of %s at %s: shoal %s (SHOAL_CRASHPOINT=%q)\n",
		m.starts, m.name, time.Now().Format(time.RFC3339Nano), strings.Join(args, " "), crashpoint)
	cmd := exec.Command(m.c.bin, args...)
	if m.netns != "" {
		// ip netns exec runs the binary in the namespace in its own
		// process: signals reach the manager itself.
		cmd = exec.Command("ip", append([]string{"netns", "exec", m.netns, m.c.bin}, args...)...)
	}
	cmd.Env = m.env(crashpoint)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", m.name, err)
	}
	m.cmd, m.exited, m.expected, m.armed, m.paused = cmd, make(chan struct{}), mayExit, crashpoint, false
	m.crashed = make(chan struct{})
	exited, crashed := m.exited, m.crashed
	if crashpoint != "" {
		m.c.logf("%s: started (pid %d), crash point %s armed", m.name, cmd.Process.Pid, crashpoint)
	} else {
		m.c.logf("%s: started (pid %d)", m.name, cmd.Process.Pid)
	}
	go func() {
		err := cmd.Wait()
		m.mu.Lock()
		m.waitErr = err
		expected, armed := m.expected, m.armed
		m.mu.Unlock()
		close(exited)
		var ee *exec.ExitError
		killed := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
		switch {
		case expected:
		case armed != "" && killed && m.logContains("crashpoint: "+strings.SplitN(armed, ":", 2)[0]+" reached"):
			m.c.logf("%s: crashed at crash point %s", m.name, armed)
			close(crashed)
		default:
			m.c.problem("%s exited on its own: %v; log %s ends:\n%s", m.name, err, m.log, m.logTail(30))
		}
	}()
	return nil
}

// running reports whether the process runs (paused counts as running).
func (m *manager) running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return false
	}
	select {
	case <-m.exited:
		return false
	default:
		return true
	}
}

func (m *manager) isPaused() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.paused
}

// signal sends sig to the running process and marks the exit it may cause
// as expected.
func (m *manager) signal(sig syscall.Signal) (<-chan struct{}, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return nil, fmt.Errorf("%s: not started", m.name)
	}
	select {
	case <-m.exited:
		return m.exited, nil
	default:
	}
	switch sig {
	case syscall.SIGSTOP:
		m.paused = true
	case syscall.SIGCONT:
		m.paused = false
	default:
		m.expected = true
	}
	return m.exited, m.cmd.Process.Signal(sig)
}

// kill ends the process with SIGKILL, as a crash would, and waits for it.
func (m *manager) kill() error {
	exited, err := m.signal(syscall.SIGKILL)
	if err != nil {
		return err
	}
	<-exited
	m.c.logf("%s: killed", m.name)
	return nil
}

// pause stops the process with SIGSTOP; resume continues it.
func (m *manager) pause() error {
	_, err := m.signal(syscall.SIGSTOP)
	if err == nil {
		m.c.logf("%s: paused", m.name)
	}
	return err
}

func (m *manager) resume() error {
	_, err := m.signal(syscall.SIGCONT)
	if err == nil {
		m.c.logf("%s: resumed", m.name)
	}
	return err
}

// expectExit marks the next exit (a removal) as expected.
func (m *manager) expectExit() {
	m.mu.Lock()
	m.expected = true
	m.mu.Unlock()
}

// stop ends the process cleanly (SIGTERM), or with SIGKILL after timeout.
func (m *manager) stop(timeout time.Duration) {
	if !m.running() {
		return
	}
	if m.isPaused() {
		_ = m.resume()
	}
	exited, err := m.signal(syscall.SIGTERM)
	if err != nil {
		return
	}
	select {
	case <-exited:
	case <-time.After(timeout):
		m.c.logf("%s: still running %v after SIGTERM; killing it", m.name, timeout)
		_ = m.kill()
	}
}

// waitExited waits up to timeout for the process to end by itself.
func (m *manager) waitExited(timeout time.Duration) bool {
	m.mu.Lock()
	exited := m.exited
	m.mu.Unlock()
	select {
	case <-exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// info asks the manager for its view of the cluster.
func (m *manager) info(timeout time.Duration) (*clusterView, error) {
	var v clusterView
	err := m.c.admin(m, timeout, func(ctx context.Context, cl *client.Client) error {
		resp, err := cl.ClusterInfo(ctx)
		if err != nil {
			return err
		}
		v = clusterView{self: resp.GetManager().GetRaftId(), nodeID: resp.GetManager().GetNodeId(), leader: resp.GetLeaderRaftId(),
			commit: resp.GetCommitIndex(), applied: resp.GetAppliedIndex(), members: int(resp.GetMembers())}
		return nil
	})
	return &v, err
}

type clusterView struct {
	self, leader    uint64
	nodeID          string
	commit, applied uint64
	members         int
}

// waitServing waits until the manager answers on its control socket and
// knows a leader, and records its identity.
func (m *manager) waitServing(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if !m.running() {
			m.mu.Lock()
			err := m.waitErr
			m.mu.Unlock()
			return fmt.Errorf("%s exited while starting: %v\n%s", m.name, err, m.logTail(20))
		}
		v, err := m.info(2 * time.Second)
		switch {
		case err != nil:
			last = err
		case v.leader == 0 || v.self == 0:
			last = errors.New("no leader known yet")
		default:
			m.mu.Lock()
			m.raftID, m.nodeID = v.self, v.nodeID
			m.mu.Unlock()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not serve within %v: %v", m.name, timeout, last)
}

func (m *manager) identity() (uint64, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.raftID, m.nodeID
}

func (m *manager) logContains(s string) bool {
	b, _ := os.ReadFile(m.log)
	return strings.Contains(string(b), s)
}

func (m *manager) logCount(s string) int {
	b, _ := os.ReadFile(m.log)
	return strings.Count(string(b), s)
}

func (m *manager) logTail(lines int) string {
	b, _ := os.ReadFile(m.log)
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// live returns the managers whose process runs and is not paused.
func (c *cluster) live() []*manager {
	var out []*manager
	for _, m := range c.managers {
		if m.running() && !m.isPaused() {
			out = append(out, m)
		}
	}
	return out
}

// leader returns the manager that leads, as it says itself, waiting up to
// timeout for one.
func (c *cluster) leader(timeout time.Duration) (*manager, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, m := range c.live() {
			v, err := m.info(time.Second)
			if err == nil && v.leader != 0 && v.leader == v.self {
				return m, nil
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no leader within %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// others returns the managers other than m.
func (c *cluster) others(m *manager) []*manager {
	var out []*manager
	for _, o := range c.managers {
		if o != m {
			out = append(out, o)
		}
	}
	return out
}

// waitHealthy waits until every manager runs, answers, agrees on one
// leader, and the leader counts every member reachable.
func (c *cluster) waitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var why string
	for time.Now().Before(deadline) {
		why = c.healthy()
		if why == "" {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("cluster not healthy within %v: %s", timeout, why)
}

func (c *cluster) healthy() string {
	var leader uint64
	var lm *manager
	for _, m := range c.managers {
		if !m.running() || m.isPaused() {
			return m.name + " is not running"
		}
		v, err := m.info(time.Second)
		if err != nil {
			return fmt.Sprintf("%s: %v", m.name, err)
		}
		if v.leader == 0 || (leader != 0 && v.leader != leader) {
			return fmt.Sprintf("%s sees leader %x, others %x", m.name, v.leader, leader)
		}
		leader = v.leader
		if v.self == leader {
			lm = m
		}
	}
	if lm == nil {
		return fmt.Sprintf("leader %x is none of ours", leader)
	}
	var why string
	err := c.admin(lm, 2*time.Second, func(ctx context.Context, cl *client.Client) error {
		members, _, err := cl.Members(ctx)
		if err != nil {
			return err
		}
		if len(members) != len(c.managers) {
			why = fmt.Sprintf("%d members, want %d", len(members), len(c.managers))
		}
		for _, mb := range members {
			if !mb.GetReachable() {
				why = fmt.Sprintf("member %x unreachable", mb.GetRaftId())
			}
			// Every manager of the run joined to vote: a learner left
			// behind is fault tolerance lost.
			if mb.GetSuffrage() != "voter" {
				why = fmt.Sprintf("member %x is a %s", mb.GetRaftId(), mb.GetSuffrage())
			}
		}
		return nil
	})
	if err != nil {
		return err.Error()
	}
	return why
}

// heal lifts every network fault, resumes paused managers and restarts
// stopped ones, unarmed.
func (c *cluster) heal() error {
	c.net.HealAll()
	if c.lab != nil {
		if err := c.lab.healAll(); err != nil {
			return err
		}
	}
	for _, m := range c.managers {
		if m.isPaused() {
			_ = m.resume()
		}
	}
	for _, m := range c.managers {
		if !m.running() {
			if err := m.start(nil, ""); err != nil {
				return err
			}
		}
	}
	return nil
}

// shutdown stops every manager and the proxies.
func (c *cluster) shutdown() {
	var wg sync.WaitGroup
	for _, m := range c.all() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.stop(15 * time.Second)
		}()
	}
	wg.Wait()
	c.net.Close()
}

// isolate blackholes every link between m and the others, both ways.
func (c *cluster) isolate(m *manager) {
	for _, o := range c.others(m) {
		c.net.SetLink(m.name, o.host, proxy.Fault{Blackhole: true})
		c.net.SetLink(o.name, m.host, proxy.Fault{Blackhole: true})
	}
}

// freeListenAddr returns a free loopback address for a manager's remote
// API, below the kernel's ephemeral port range: a port from that range,
// free when chosen, can be taken by the source port of any outgoing
// connection before the manager binds it, or while it restarts.
func freeListenAddr() (string, error) {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	const from = 10000
	if lo <= from+100 {
		lo = 65535 // an unusual range: take any free port above from
	}
	for range 200 {
		port := from + rand.IntN(lo-from)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return l.Addr().String(), nil
	}
	return "", errors.New("no free port below the ephemeral range")
}
