package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/bench"
	"github.com/shoal-project/shoal/client"
)

// shoalCluster is shoal managers run as processes, as the e2e tests run
// them: the first bootstraps, the others join with its join token.
type shoalCluster struct {
	ps      *procs
	bin     string
	base    string
	members []*shoalMember
	tls     *tls.Config
}

type shoalMember struct {
	name string
	dir  string
	addr string
	p    *proc
}

func (m *shoalMember) socket() string { return filepath.Join(m.dir, "control.sock") }

// startShoal starts n managers under base and waits until all of them are
// voters.
func startShoal(ctx context.Context, ps *procs, bin, base string, n int) (*shoalCluster, error) {
	c := &shoalCluster{ps: ps, bin: bin, base: base}
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	for i := range n {
		var join []string
		if i > 0 {
			token, err := run(ctx, bin, "cluster", "join-token", "manager", "-q", "--socket", c.members[0].socket())
			if err != nil {
				return nil, err
			}
			join = []string{"--join", c.members[0].addr, "--token", strings.TrimSpace(token)}
		}
		m, err := c.launch(ctx, fmt.Sprintf("shoal-%d", i+1), fmt.Sprintf("127.0.0.1:%d", ports[i]), join...)
		if err != nil {
			return nil, err
		}
		c.members = append(c.members, m)
	}
	if err := poll(ctx, 2*time.Minute, 200*time.Millisecond, "every shoal manager to be a voter", func(ctx context.Context) error {
		out, err := run(ctx, bin, "node", "ls", "-o", "json", "--socket", c.members[0].socket(), "--timeout", "5s")
		if err != nil {
			return err
		}
		var ms []struct {
			Addr     string `json:"addr"`
			Suffrage string `json:"suffrage"`
		}
		if err := json.Unmarshal([]byte(out), &ms); err != nil {
			return err
		}
		voters := 0
		for _, m := range ms {
			if m.Suffrage == "voter" {
				voters++
			}
		}
		if voters != n {
			return fmt.Errorf("%d of %d voters: %s", voters, n, out)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	clientDir := filepath.Join(base, "client")
	if _, err := run(ctx, bin, "cluster", "client-cert", "--out", clientDir, "--socket", c.members[0].socket()); err != nil {
		return nil, err
	}
	c.tls, err = client.LoadTLS(filepath.Join(clientDir, "client.crt"), filepath.Join(clientDir, "client.key"), filepath.Join(clientDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// launch starts a manager listening on addr and waits until it serves.
func (c *shoalCluster) launch(ctx context.Context, name, addr string, extra ...string) (*shoalMember, error) {
	m := &shoalMember{name: name, dir: filepath.Join(c.base, name), addr: addr}
	args := append([]string{"manager", "--state-dir", m.dir, "--listen-addr", addr}, extra...)
	p, err := c.ps.start(name, filepath.Join(c.base, name+".log"), c.bin, args...)
	if err != nil {
		return nil, err
	}
	m.p = p
	return m, c.waitServing(ctx, m, 2*time.Minute)
}

// waitServing waits until m answers on its socket and knows a leader.
func (c *shoalCluster) waitServing(ctx context.Context, m *shoalMember, timeout time.Duration) error {
	return poll(ctx, timeout, 50*time.Millisecond, m.name+" to serve", func(ctx context.Context) error {
		if !m.p.running() {
			return fmt.Errorf("%s exited: %v (its log: %s)", m.name, m.p.err, m.p.logAt)
		}
		info, err := c.info(ctx, m)
		if err != nil {
			return err
		}
		if info.GetLeaderRaftId() == 0 {
			return errors.New("no leader yet")
		}
		return nil
	})
}

func (c *shoalCluster) socketClient(ctx context.Context, m *shoalMember) (*client.Client, error) {
	return client.New(ctx, client.Config{SocketPath: m.socket(), DialTimeout: 2 * time.Second})
}

func (c *shoalCluster) info(ctx context.Context, m *shoalMember) (*api.GetClusterInfoResponse, error) {
	cl, err := c.socketClient(ctx, m)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return cl.ClusterInfo(ctx)
}

func (c *shoalCluster) name() string { return "shoal" }

// leader returns the index of the manager that leads.
func (c *shoalCluster) leader(ctx context.Context) (int, error) {
	var idx int
	err := poll(ctx, 30*time.Second, 100*time.Millisecond, "a shoal leader", func(ctx context.Context) error {
		for _, m := range c.members {
			if !m.p.running() {
				continue
			}
			info, err := c.info(ctx, m)
			if err != nil {
				continue
			}
			for i, o := range c.members {
				if info.GetLeaderRaftId() != 0 && o.addr == info.GetLeaderAddr() {
					idx = i
					return nil
				}
			}
		}
		return errors.New("no manager names a leader among them")
	})
	return idx, err
}

// dialer reaches the managers of members over TCP with the cluster's
// client certificate, connection i starting at the i-th of them.
func (c *shoalCluster) dialer(members []int, consistency string) bench.Dialer {
	var addrs []string
	for _, i := range members {
		addrs = append(addrs, c.members[i].addr)
	}
	cons := client.Linearizable
	if consistency == "serializable" {
		cons = client.Serializable
	}
	return bench.Shoal(bench.ShoalConfig{
		Client:      client.Config{Addrs: addrs, TLS: c.tls, DialTimeout: 10 * time.Second},
		Kind:        "bench",
		Consistency: cons,
	})
}

// status returns the leader's Raft ID and the term, as the first running
// manager sees them.
func (c *shoalCluster) status(ctx context.Context) (leader, term uint64, err error) {
	for _, m := range c.members {
		if !m.p.running() {
			continue
		}
		info, err := c.info(ctx, m)
		if err != nil {
			continue
		}
		return info.GetLeaderRaftId(), info.GetTerm(), nil
	}
	return 0, 0, errors.New("no shoal manager answers")
}

func (c *shoalCluster) processes() []*proc {
	return []*proc{c.members[0].p, c.members[1].p, c.members[2].p}
}

// restart stops manager i cleanly, starts it again, and returns the time
// from its start until a linearizable get of key on it succeeds.
func (c *shoalCluster) restart(ctx context.Context, i int, key string) (time.Duration, error) {
	m := c.members[i]
	m.p.stop(30 * time.Second)
	start := time.Now()
	if err := c.ps.restart(m.p); err != nil {
		return 0, err
	}
	err := poll(ctx, 5*time.Minute, 20*time.Millisecond, m.name+" to serve again", func(ctx context.Context) error {
		if !m.p.running() {
			return fmt.Errorf("%s exited: %v (its log: %s)", m.name, m.p.err, m.p.logAt)
		}
		cl, err := c.socketClient(ctx, m)
		if err != nil {
			return err
		}
		defer cl.Close()
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err = cl.Get(gctx, "bench", key)
		return err
	})
	return time.Since(start), err
}

// addMember starts a new manager that joins, and returns the time from its
// start until it has applied every entry the leader had committed then.
func (c *shoalCluster) addMember(ctx context.Context) (time.Duration, error) {
	li, err := c.leader(ctx)
	if err != nil {
		return 0, err
	}
	leader := c.members[li]
	info, err := c.info(ctx, leader)
	if err != nil {
		return 0, err
	}
	target := info.GetCommitIndex()
	token, err := run(ctx, c.bin, "cluster", "join-token", "manager", "-q", "--socket", leader.socket())
	if err != nil {
		return 0, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	name := fmt.Sprintf("shoal-%d", len(c.members)+1)
	m := &shoalMember{name: name, dir: filepath.Join(c.base, name), addr: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	start := time.Now()
	m.p, err = c.ps.start(name, filepath.Join(c.base, name+".log"), c.bin, "manager", "--state-dir", m.dir,
		"--listen-addr", m.addr, "--join", leader.addr, "--token", strings.TrimSpace(token))
	if err != nil {
		return 0, err
	}
	c.members = append(c.members, m)
	err = poll(ctx, 10*time.Minute, 20*time.Millisecond, name+" to catch up", func(ctx context.Context) error {
		if !m.p.running() {
			return fmt.Errorf("%s exited: %v (its log: %s)", m.name, m.p.err, m.p.logAt)
		}
		info, err := c.info(ctx, m)
		if err != nil {
			return err
		}
		if info.GetAppliedIndex() < target {
			return fmt.Errorf("applied %d of %d", info.GetAppliedIndex(), target)
		}
		return nil
	})
	return time.Since(start), err
}
