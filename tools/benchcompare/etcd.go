package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/bench"
)

// etcdCluster is etcd members run as processes on loopback, with fsync
// (etcd's default) and, unless plain, mutual TLS between members and with
// clients.
type etcdCluster struct {
	ps      *procs
	bin     string
	base    string
	certs   etcdCerts
	tls     *tls.Config
	plain   bool
	members []*etcdMember
}

type etcdMember struct {
	name     string
	dir      string
	client   string // URL of the gRPC API
	http     string // URL of the HTTP endpoints (health, metrics)
	peer     string // URL
	endpoint string // host:port, for clientv3
	p        *proc
}

// etcdKeyPrefix begins every key the benchmarks write, followed by the
// name shoal would give the object.
const etcdKeyPrefix = "/bench/"

func startEtcd(ctx context.Context, ps *procs, bin, base string, n int, plain bool) (*etcdCluster, error) {
	c := &etcdCluster{ps: ps, bin: bin, base: base, plain: plain}
	if !plain {
		var err error
		if c.certs, err = makeEtcdCerts(filepath.Join(base, "certs")); err != nil {
			return nil, err
		}
		if c.tls, err = c.certs.clientTLS(); err != nil {
			return nil, err
		}
	}
	for i := range n {
		m, err := c.newMember(fmt.Sprintf("etcd-%d", i+1))
		if err != nil {
			return nil, err
		}
		c.members = append(c.members, m)
	}
	for _, m := range c.members {
		if err := c.launch(m, "new"); err != nil {
			return nil, err
		}
	}
	for _, m := range c.members {
		if err := c.waitServing(ctx, m, 2*time.Minute); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (c *etcdCluster) newMember(name string) (*etcdMember, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	scheme := "https"
	if c.plain {
		scheme = "http"
	}
	ep := fmt.Sprintf("127.0.0.1:%d", ports[0])
	return &etcdMember{name: name, dir: filepath.Join(c.base, name), endpoint: ep,
		client: scheme + "://" + ep, peer: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[1]),
		http: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2])}, nil
}

// launch starts member m of the cluster c.members describes.
func (c *etcdCluster) launch(m *etcdMember, state string) error {
	var initial []string
	for _, o := range c.members {
		initial = append(initial, o.name+"="+o.peer)
	}
	args := []string{
		"--name", m.name, "--data-dir", m.dir,
		// The HTTP endpoints on a port of their own: on a shared TLS port
		// etcd serves gRPC through net/http's HTTP/2 server instead of
		// gRPC's own transport, which is much slower ("not recommended for
		// production", it logs).
		"--listen-client-urls", m.client, "--advertise-client-urls", m.client, "--listen-client-http-urls", m.http,
		"--listen-peer-urls", m.peer, "--initial-advertise-peer-urls", m.peer,
		"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", state,
		"--initial-cluster-token", "benchcompare",
	}
	if !c.plain {
		args = append(args,
			"--cert-file", c.certs.Cert, "--key-file", c.certs.Key, "--trusted-ca-file", c.certs.CA, "--client-cert-auth",
			"--peer-cert-file", c.certs.Cert, "--peer-key-file", c.certs.Key, "--peer-trusted-ca-file", c.certs.CA,
			"--peer-client-cert-auth", "--tls-min-version", "TLS1.3")
	}
	p, err := c.ps.start(m.name, filepath.Join(c.base, m.name+".log"), c.bin, args...)
	if err != nil {
		return err
	}
	m.p = p
	return nil
}

// newClient connects to endpoints with the flow-control windows shoal's
// client library fixes (api.StreamWindow), so that both systems get
// the same load: without them, gRPC sends a PING for nearly every response
// of a connection with one call in flight, which the server answers.
func (c *etcdCluster) newClient(endpoints ...string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints: endpoints, TLS: c.tls, DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithInitialWindowSize(api.StreamWindow), grpc.WithInitialConnWindowSize(api.ConnWindow)},
	})
}

// memberStatus asks m for its status.
func (c *etcdCluster) memberStatus(ctx context.Context, m *etcdMember) (*clientv3.StatusResponse, error) {
	cl, err := c.newClient(m.endpoint)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return cl.Status(ctx, m.endpoint)
}

func (c *etcdCluster) waitServing(ctx context.Context, m *etcdMember, timeout time.Duration) error {
	return poll(ctx, timeout, 50*time.Millisecond, m.name+" to serve", func(ctx context.Context) error {
		if !m.p.running() {
			return fmt.Errorf("%s exited: %v (its log: %s)", m.name, m.p.err, m.p.logAt)
		}
		st, err := c.memberStatus(ctx, m)
		if err != nil {
			return err
		}
		if st.Leader == 0 {
			return errors.New("no leader yet")
		}
		return nil
	})
}

func (c *etcdCluster) name() string { return "etcd" }

func (c *etcdCluster) leader(ctx context.Context) (int, error) {
	var idx int
	err := poll(ctx, 30*time.Second, 100*time.Millisecond, "an etcd leader", func(ctx context.Context) error {
		for i, m := range c.members {
			if !m.p.running() {
				continue
			}
			st, err := c.memberStatus(ctx, m)
			if err == nil && st.Leader != 0 && st.Leader == st.Header.GetMemberId() {
				idx = i
				return nil
			}
		}
		return errors.New("no member leads")
	})
	return idx, err
}

func (c *etcdCluster) dialer(members []int, consistency string) bench.Dialer {
	var eps []string
	for _, i := range members {
		eps = append(eps, c.members[i].endpoint)
	}
	return func(ctx context.Context, conn int) (bench.Target, error) {
		// One client, one gRPC connection, to one member.
		cl, err := c.newClient(eps[conn%len(eps)])
		if err != nil {
			return nil, err
		}
		return &etcdTarget{c: cl, serializable: consistency == "serializable"}, nil
	}
}

func (c *etcdCluster) status(ctx context.Context) (leader, term uint64, err error) {
	for _, m := range c.members {
		if !m.p.running() {
			continue
		}
		st, err := c.memberStatus(ctx, m)
		if err != nil {
			continue
		}
		return st.Leader, st.RaftTerm, nil
	}
	return 0, 0, errors.New("no etcd member answers")
}

func (c *etcdCluster) processes() []*proc {
	return []*proc{c.members[0].p, c.members[1].p, c.members[2].p}
}

func (c *etcdCluster) restart(ctx context.Context, i int, key string) (time.Duration, error) {
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
		// A new client each time: one that failed to connect would wait
		// out gRPC's reconnection backoff.
		cl, err := c.newClient(m.endpoint)
		if err != nil {
			return err
		}
		defer cl.Close()
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		resp, err := cl.Get(gctx, etcdKeyPrefix+key)
		if err != nil {
			return err
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%s not found", key)
		}
		return nil
	})
	return time.Since(start), err
}

// addMember adds a learner, as shoal's joiners are, starts it, and returns
// the time from its start until it has applied every entry the leader had
// committed then.
func (c *etcdCluster) addMember(ctx context.Context) (time.Duration, error) {
	li, err := c.leader(ctx)
	if err != nil {
		return 0, err
	}
	leader := c.members[li]
	st, err := c.memberStatus(ctx, leader)
	if err != nil {
		return 0, err
	}
	m, err := c.newMember(fmt.Sprintf("etcd-%d", len(c.members)+1))
	if err != nil {
		return 0, err
	}
	cl, err := c.newClient(leader.endpoint)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	// etcd refuses a new member while one was connected for less than a
	// few seconds (a member just restarted): ask again.
	if err := poll(ctx, time.Minute, 500*time.Millisecond, "etcd to add "+m.name, func(ctx context.Context) error {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := cl.MemberAddAsLearner(actx, []string{m.peer})
		return err
	}); err != nil {
		return 0, err
	}
	c.members = append(c.members, m)
	target := st.RaftIndex
	start := time.Now()
	if err := c.launch(m, "existing"); err != nil {
		return 0, err
	}
	err = poll(ctx, 10*time.Minute, 20*time.Millisecond, m.name+" to catch up", func(ctx context.Context) error {
		if !m.p.running() {
			return fmt.Errorf("%s exited: %v (its log: %s)", m.name, m.p.err, m.p.logAt)
		}
		st, err := c.memberStatus(ctx, m)
		if err != nil {
			return err
		}
		if st.RaftAppliedIndex < target {
			return fmt.Errorf("applied %d of %d", st.RaftAppliedIndex, target)
		}
		return nil
	})
	return time.Since(start), err
}

// etcdTarget is a bench.Target on one etcd client: a key is the object's
// name under etcdKeyPrefix. Creates and puts are both plain puts.
type etcdTarget struct {
	c            *clientv3.Client
	serializable bool
}

// grpcError gives etcd's errors their gRPC code, for the counts by code.
func grpcError(err error) error {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return status.Error(ee.Code(), ee.Error())
	}
	return err
}

func (t *etcdTarget) Create(ctx context.Context, key string, val []byte) error {
	return t.Put(ctx, key, val)
}

func (t *etcdTarget) Put(ctx context.Context, key string, val []byte) error {
	_, err := t.c.Put(ctx, etcdKeyPrefix+key, string(val))
	return grpcError(err)
}

func (t *etcdTarget) Get(ctx context.Context, key string) error {
	var opts []clientv3.OpOption
	if t.serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := t.c.Get(ctx, etcdKeyPrefix+key, opts...)
	if err != nil {
		return grpcError(err)
	}
	if len(resp.Kvs) == 0 {
		return status.Errorf(codes.NotFound, "%s not found", key)
	}
	return nil
}

func (t *etcdTarget) Txn(ctx context.Context, keys []string, val []byte, _ bool) error {
	ops := make([]clientv3.Op, 0, len(keys))
	for _, k := range keys {
		ops = append(ops, clientv3.OpPut(etcdKeyPrefix+k, string(val)))
	}
	_, err := t.c.Txn(ctx).Then(ops...).Commit()
	return grpcError(err)
}

func (t *etcdTarget) Watch(ctx context.Context, prefix string) (bench.WatchStream, error) {
	ctx, cancel := context.WithCancel(ctx)
	ch := t.c.Watch(clientv3.WithRequireLeader(ctx), etcdKeyPrefix+prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	first, ok := <-ch
	if !ok || first.Err() != nil || !first.Created {
		cancel()
		if ok && first.Err() != nil {
			return nil, grpcError(first.Err())
		}
		return nil, status.Error(codes.Unavailable, "the watch did not start")
	}
	return &etcdWatch{ch: ch, cancel: cancel}, nil
}

func (t *etcdTarget) Close() error { return t.c.Close() }

type etcdWatch struct {
	ch      clientv3.WatchChan
	cancel  context.CancelFunc
	pending []*clientv3.Event
}

func (w *etcdWatch) Next() (string, []byte, error) {
	for {
		for len(w.pending) > 0 {
			ev := w.pending[0]
			w.pending = w.pending[1:]
			if ev.Type == clientv3.EventTypePut {
				return strings.TrimPrefix(string(ev.Kv.Key), etcdKeyPrefix), ev.Kv.Value, nil
			}
		}
		resp, ok := <-w.ch
		if !ok {
			return "", nil, status.Error(codes.Canceled, "the watch ended")
		}
		if err := resp.Err(); err != nil {
			return "", nil, grpcError(err)
		}
		w.pending = resp.Events
	}
}

func (w *etcdWatch) Close() { w.cancel() }
