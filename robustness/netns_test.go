package robustness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// netLab puts each manager in a network namespace of its own, all joined
// by veth links to a bridge in a hub namespace, with one more veth link
// from the hub to this process's namespace for the clients. Partitions
// are blackhole routes inside the managers' namespaces and links set
// down: real packet loss in the kernel, between namespaces this test made,
// and nothing else. It needs root and iproute2 (ip) only: no firewall
// rules (nft, iptables) are used, and the root namespace only gets the
// one link and its connected route, which vanish with the hub.
type netLab struct {
	logf   func(string, ...any)
	tag    string
	subnet string // "10.213.N": managers are .1, .2, ...; this process is .254
	hub    string
	root   string // the veth end in the root namespace
	ns     []string

	mu     sync.Mutex
	routes map[[2]int]bool // blackholed (from, to) manager pairs
	down   map[int]bool
}

// labUnavailable says why network namespaces cannot be used here, or "".
func labUnavailable() string {
	if os.Geteuid() != 0 {
		return "not running as root"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "no ip command (iproute2)"
	}
	probe := fmt.Sprintf("shrb-probe-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput(); err != nil {
		return fmt.Sprintf("cannot create a network namespace: %v: %s", err, strings.TrimSpace(string(out)))
	}
	_ = exec.Command("ip", "netns", "del", probe).Run()
	return ""
}

// newNetLab builds the namespaces for n managers; t.Cleanup removes them.
func newNetLab(t *testing.T, n int, logf func(string, ...any)) (*netLab, error) {
	tag := fmt.Sprintf("%04x", os.Getpid()&0xffff)
	l := &netLab{logf: logf, tag: tag, hub: "shrb-" + tag + "-hub", root: "rb" + tag + "r", routes: map[[2]int]bool{}, down: map[int]bool{}}
	// A /24 no route of this namespace covers yet.
	routes, _ := exec.Command("ip", "-4", "route").Output()
	for i := 0; i < 200; i++ {
		cand := fmt.Sprintf("10.213.%d", (os.Getpid()+i)%200+20)
		if !strings.Contains(string(routes), cand+".") {
			l.subnet = cand
			break
		}
	}
	if l.subnet == "" {
		return nil, fmt.Errorf("no free 10.213.x.0/24 subnet")
	}
	t.Cleanup(l.close)
	run := l.run
	steps := [][]string{
		{"netns", "add", l.hub},
		{"-n", l.hub, "link", "set", "lo", "up"},
		{"-n", l.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", l.hub, "link", "set", "br0", "up"},
		{"link", "add", l.root, "type", "veth", "peer", "name", "rb" + tag + "h"},
		{"link", "set", "rb" + tag + "h", "netns", l.hub},
		{"-n", l.hub, "link", "set", "rb" + tag + "h", "master", "br0", "up"},
		{"addr", "add", l.subnet + ".254/24", "dev", l.root},
		{"link", "set", l.root, "up"},
	}
	for i := range n {
		ns := fmt.Sprintf("shrb-%s-m%d", tag, i+1)
		in, out := fmt.Sprintf("rb%s%da", tag, i+1), fmt.Sprintf("rb%s%db", tag, i+1)
		l.ns = append(l.ns, ns)
		steps = append(steps,
			[]string{"netns", "add", ns},
			[]string{"-n", ns, "link", "set", "lo", "up"},
			[]string{"link", "add", in, "type", "veth", "peer", "name", out},
			[]string{"link", "set", in, "netns", ns},
			[]string{"-n", ns, "link", "set", in, "name", "eth0"},
			[]string{"-n", ns, "addr", "add", l.ip(i) + "/24", "dev", "eth0"},
			[]string{"-n", ns, "link", "set", "eth0", "up"},
			[]string{"link", "set", out, "netns", l.hub},
			[]string{"-n", l.hub, "link", "set", out, "master", "br0", "up"},
		)
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (l *netLab) run(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ip returns the address of manager i (from 0).
func (l *netLab) ip(i int) string { return fmt.Sprintf("%s.%d", l.subnet, i+1) }

// blackhole drops every packet manager from sends to manager to.
func (l *netLab) blackhole(from, to int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.routes[[2]int{from, to}] {
		return nil
	}
	if err := l.run("-n", l.ns[from], "route", "add", "blackhole", l.ip(to)+"/32"); err != nil {
		return err
	}
	l.routes[[2]int{from, to}] = true
	return nil
}

// linkDown takes manager i's only link down: it reaches no one, and no
// client reaches it.
func (l *netLab) linkDown(i int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.run("-n", l.ns[i], "link", "set", "eth0", "down"); err != nil {
		return err
	}
	l.down[i] = true
	return nil
}

// healAll removes every blackhole route and brings every link up.
func (l *netLab) healAll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for r := range l.routes {
		if err := l.run("-n", l.ns[r[0]], "route", "del", "blackhole", l.ip(r[1])+"/32"); err != nil {
			return err
		}
		delete(l.routes, r)
	}
	for i := range l.down {
		if err := l.run("-n", l.ns[i], "link", "set", "eth0", "up"); err != nil {
			return err
		}
		// The address's route comes back with the link.
		delete(l.down, i)
	}
	return nil
}

// close deletes the namespaces; their links, and the root end of the
// hub's link, go with them.
func (l *netLab) close() {
	for _, ns := range append(append([]string(nil), l.ns...), l.hub) {
		_ = exec.Command("ip", "netns", "del", ns).Run()
	}
	_ = exec.Command("ip", "link", "del", l.root).Run() // gone already, unless the hub never got its end
}

// Faults made with the kernel, in a lab.
func init() {
	faults["netns-isolate-leader"] = fault{"netns-isolate-leader", netnsCutLeader(true)}
	faults["netns-partition-random"] = fault{"netns-partition-random", netnsPartitionRandom}
	faults["netns-one-way-from-leader"] = fault{"netns-one-way-from-leader", netnsCutLeader(false)}
	faults["netns-link-down"] = fault{"netns-link-down", netnsLinkDown}
}

func (f *faultRun) index(m *manager) int {
	for i, o := range f.c.managers {
		if o == m {
			return i
		}
	}
	return -1
}

func netnsPartitionRandom(f *faultRun) error {
	n := len(f.c.managers)
	order := f.rng.Perm(n)
	cut := 1 + f.rng.IntN(n/2)
	minority := map[int]bool{}
	var names []string
	for _, i := range order[:cut] {
		minority[i] = true
		names = append(names, f.c.managers[i].name)
	}
	d := f.hold(time.Second, 4*time.Second)
	f.note("blackhole routes between %v and the others for %v", names, d.Round(time.Millisecond))
	for a := range n {
		for b := range n {
			if minority[a] != minority[b] {
				if err := f.c.lab.blackhole(a, b); err != nil {
					return err
				}
			}
		}
	}
	time.Sleep(d)
	return f.c.lab.healAll()
}

// netnsCutLeader puts blackhole routes between the leader and every
// other manager: both ways, or only from the leader, so that the others'
// packets still reach it but no TCP connection between them works.
func netnsCutLeader(bothWays bool) func(*faultRun) error {
	return func(f *faultRun) error {
		l, err := f.c.leader(10 * time.Second)
		if err != nil {
			return err
		}
		d := f.hold(time.Second, 4*time.Second)
		if bothWays {
			f.note("blackhole routes between leader %s and every other manager, both ways, for %v", l.name, d.Round(time.Millisecond))
		} else {
			f.note("blackhole routes from leader %s to the others, one way, for %v", l.name, d.Round(time.Millisecond))
		}
		li := f.index(l)
		for i := range f.c.managers {
			if i == li {
				continue
			}
			if err := f.c.lab.blackhole(li, i); err != nil {
				return err
			}
			if bothWays {
				if err := f.c.lab.blackhole(i, li); err != nil {
					return err
				}
			}
		}
		time.Sleep(d)
		return f.c.lab.healAll()
	}
}

func netnsLinkDown(f *faultRun) error {
	m := f.pick(f.c.managers)
	d := f.hold(time.Second, 4*time.Second)
	f.note("link of %s down for %v", m.name, d.Round(time.Millisecond))
	if err := f.c.lab.linkDown(f.index(m)); err != nil {
		return err
	}
	time.Sleep(d)
	return f.c.lab.healAll()
}

// Real partitions between network namespaces, when this process may make
// them (root, iproute2); otherwise skipped, saying why.
func TestNamespacePartitions(t *testing.T) {
	if why := labUnavailable(); why != "" {
		t.Skipf("network namespace partitions skipped: %s", why)
	}
	s := seed()
	duration := 15 * time.Second
	if *flagDuration > 0 {
		duration = *flagDuration
	}
	lab, err := newNetLab(t, 3, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("managers at %s.1-3 in namespaces %v; seed %d", lab.subnet, lab.ns, s)
	cfg := runConfig{seed: s, managers: 3, clients: 4, watchers: 2, keys: 10, duration: duration,
		faults: []string{"netns-isolate-leader", "netns-one-way-from-leader", "netns-partition-random", "netns-link-down"},
		budget: 20 * time.Second, lab: lab}
	runOnce(t, cfg, fmt.Sprintf("go test ./robustness/ -run NamespacePartitions -count=1 -args -seed %d", s))
}
