package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/clusterrpc"
	"github.com/shoal-project/shoal/keys"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/transport"
	"github.com/shoal-project/shoal/store"
)

// SocketName is the name of the control socket in the state directory.
const SocketName = "control.sock"

// maxSocketPath is the longest path a unix socket may have on Linux.
const maxSocketPath = 107

// Manager is one running manager. Create it with New and call Run once.
type Manager struct {
	cfg Config
	log *slog.Logger

	// Set by Run before ready is closed, read-only afterwards.
	keys        *keys.Keys
	sec         *security
	addr        string // the TCP address actually listened on
	metricsAddr string // the address the HTTP listener serves on, if any
	store       *store.Store
	node        *raft.Node
	health      *health.Server
	ins         *instruments
	fsyncs      fsyncWindow // the WAL's fsync latency, for doctor

	ready chan struct{}
	// serving ends when shutdown starts; long calls (watches) end with it.
	serving     context.Context
	stopServing context.CancelFunc
	calls       calls // in flight, for a stop to wait for

	leaderWork sync.WaitGroup

	keyMu     sync.Mutex
	unlockKey string // when autolocked; shown only to the local administrator

	// credMu orders the writes of the credential files: a renewal, and
	// the sealing again that must come before a data key retires.
	credMu sync.Mutex

	// revoked caches the deny list of revoked certificates, as the
	// cluster object of the local store last held it (see revocation.go).
	revoked atomic.Pointer[revokedSet]

	// restoring is set on a first start from restore.backup.
	restoring *restoring
}

// New checks cfg and returns a manager; nothing is opened until Run.
func New(cfg Config) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	serving, stop := context.WithCancel(context.Background())
	m := &Manager{cfg: cfg, log: cfg.Logger, ready: make(chan struct{}), serving: serving, stopServing: stop, ins: newInstruments()}
	m.ins.register(m)
	return m, nil
}

// Ready is closed once the manager serves, has joined its cluster and has
// seen a leader (or given up waiting for one after StartTimeout).
func (m *Manager) Ready() <-chan struct{} { return m.ready }

// Addr returns the address the remote API listens on; valid after Ready.
func (m *Manager) Addr() string { return m.addr }

// HTTPAddr returns the address the dashboard, metrics and health are
// served on, empty without Config.HTTPAddr; valid after Ready.
func (m *Manager) HTTPAddr() string { return m.metricsAddr }

// MetricsAddr is HTTPAddr, under its older name.
func (m *Manager) MetricsAddr() string { return m.metricsAddr }

// SocketPath returns the path of the control socket.
func (m *Manager) SocketPath() string { return filepath.Join(m.cfg.StateDir, SocketName) }

// NodeID returns the manager's node ID, the name its certificate gives
// it; valid after Ready.
func (m *Manager) NodeID() string { return m.sec.identity.NodeID }

// IsLeader reports whether this manager leads the cluster; valid after
// Ready.
func (m *Manager) IsLeader() bool { return m.node.IsLeader() }

// JoinToken returns the token another manager joins this cluster with;
// valid after Ready.
func (m *Manager) JoinToken() (string, error) {
	spec, err := m.clusterSpec()
	return spec.ManagerToken, err
}

// Run starts the manager and serves until ctx ends, then shuts down
// cleanly: it hands over leadership when it leads, drains calls, and stops
// the Raft node. It returns nil after a clean shutdown, and the error
// otherwise: a failure to start, or a fatal error of the Raft node (a disk
// error, or this manager's removal from the cluster).
//
// Everything that can be checked is checked before anything is written or
// the cluster contacted: the state directory against the flags, and every
// listener, bound then (see start.go); those errors wrap ErrBadConfig,
// except the refusals of a state directory whose content is inconsistent.
// A first start that fails before its Raft state exists leaves the state
// directory as it found it.
func (m *Manager) Run(ctx context.Context) error {
	defer m.stopServing()
	found, err := m.checkStateDir()
	if err != nil {
		return err
	}
	lis, err := m.listen()
	if err != nil {
		return err
	}
	err = m.run(ctx, found, lis)
	lis.close()
	if err != nil && !found.raft {
		m.undoFirstStart(found)
	}
	return err
}

// run starts the manager on the listeners Run bound, after every check
// passed (see start.go for the order), and serves until ctx ends.
func (m *Manager) run(ctx context.Context, found stateFound, lis *listeners) error {
	if !found.raft {
		if err := m.discardFailedStart(found); err != nil {
			return err
		}
	}
	k, err := m.openKeys(ctx, lis.socket)
	if err != nil {
		return err
	}
	m.keys = k
	defer k.Close() // runs last: the node has stopped by then

	startCtx, cancel := context.WithTimeout(ctx, m.cfg.StartTimeout)
	defer cancel()
	sec, err := m.obtainCredentials(startCtx, found)
	if err != nil {
		return err
	}
	m.sec = sec
	m.log = m.log.With("node_id", sec.identity.NodeID)

	if m.store, err = store.New(m.storeConfig(), (*proposer)(m)); err != nil {
		return err
	}
	defer m.store.Close()
	if m.node, err = raft.NewNode(m.raftConfig(lis.advertise), timedStateMachine{sm: m.store, ins: m.ins}); err != nil {
		return err
	}

	remote, local, err := m.newServers()
	if err != nil {
		return err
	}
	go func() { _ = remote.Serve(lis.tcp) }()
	go func() { _ = local.Serve(lis.socket) }()
	m.log.Info("listening", "addr", m.addr, "advertise", lis.advertise, "socket", m.SocketPath(),
		"cluster_id", m.sec.identity.ClusterID)

	if err := m.node.JoinAndStart(startCtx); err != nil {
		remote.Stop()
		local.Stop()
		return fmt.Errorf("manager: %w", err)
	}
	nodeDone := make(chan error, 1)
	go func() { nodeDone <- m.node.Run(context.Background()) }()
	go clusterrpc.AnnounceAddress(m.serving, m.node, lis.advertise, m.log.With("component", "raft"))

	if !found.raft {
		// The WAL exists: from now on this identity is bound to it.
		if err := m.commitIdentity(); err != nil {
			m.stopServers(remote, local)
			m.node.Stop()
			<-nodeDone
			return err
		}
	}
	if found.restore {
		m.removeRestoreFile() // the WAL holds its state, the identity is committed
	}
	m.startInstruments()
	if lis.metrics != nil {
		m.metricsAddr = lis.metrics.Addr().String()
		stopHTTP := m.serveHTTP(lis.metrics)
		defer stopHTTP()
	}
	go m.followLeadership()
	go m.fsyncs.run(m.serving)
	if err := m.waitInitialised(startCtx); err != nil {
		m.log.Warn("no leader yet; serving anyway", "err", err)
	}
	m.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	renewer, err := ca.NewRenewer(ca.RenewerConfig{Holder: m.sec.holder, Renew: m.renewCertificate, Logger: m.log})
	if err != nil {
		m.stopServers(remote, local)
		m.node.Stop()
		return err
	}
	m.leaderWork.Add(1)
	go func() {
		defer m.leaderWork.Done()
		_ = renewer.Run(m.serving)
	}()
	close(m.ready)

	select {
	case <-ctx.Done():
		m.shutdown(remote, local)
		return <-nodeDone
	case err := <-nodeDone:
		m.log.Error("raft node stopped", "err", err)
		m.stopServers(remote, local)
		m.leaderWork.Wait()
		if err == nil {
			err = errors.New("manager: the raft node stopped")
		}
		return err
	}
}

func (m *Manager) storeConfig() store.Config {
	cfg := m.cfg.Store
	if cfg.Logger == nil {
		cfg.Logger = m.log.With("component", "store")
	}
	return cfg
}

// waitInitialised waits until a leader is known and this manager holds the
// cluster object, which the first leader creates: only then can it sign
// certificates and hand out the join token.
func (m *Manager) waitInitialised(ctx context.Context) error {
	if err := m.node.WaitForLeader(ctx); err != nil {
		return err
	}
	ticker := time.NewTicker(20 * time.Millisecond)
	defer ticker.Stop()
	for {
		if _, err := m.clusterSpec(); err == nil {
			return nil
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return fmt.Errorf("the cluster object did not appear: %w", ctx.Err())
		}
	}
}

func (m *Manager) raftConfig(advertise string) raft.Config {
	cfg := m.cfg.Raft
	cfg.NodeID = m.sec.identity.NodeID
	cfg.StateDir = filepath.Join(m.cfg.StateDir, "raft")
	cfg.AdvertiseAddr = advertise
	cfg.ForceNewCluster = m.cfg.ForceNewCluster
	// A follower proposes the writes of its callers itself, through Raft,
	// instead of forwarding each call to the leader (onProposer).
	cfg.ForwardProposals = true
	cfg.DialOptions = append([]grpc.DialOption{m.sec.dialOption()}, cfg.DialOptions...)
	if m.cfg.JoinAddr != "" {
		cfg.Join = clusterrpc.JoinThrough(m.cfg.JoinAddr, cfg.DialOptions...)
	}
	if m.restoring != nil {
		cfg.InitialState = m.restoring.initialState()
	}
	cfg.Cipher = dataKeys{Keys: m.keys, m: m}
	if cfg.Logger == nil {
		cfg.Logger = m.log.With("component", "raft")
	}
	return cfg
}

// newServers builds the remote API (peers and remote clients, mutual TLS)
// and the local control socket's server (its file mode is its access
// control).
func (m *Manager) newServers() (remote, local *grpc.Server, err error) {
	m.health = health.NewServer()
	m.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	control := &controlServer{m: m}
	caServer, err := ca.NewServer(ca.ServerConfig{Authority: (*authority)(m), Logger: m.log,
		CertificateValidity: m.cfg.CertificateValidity})
	if err != nil {
		return nil, nil, err
	}
	secure, err := m.serverOptions()
	if err != nil {
		return nil, nil, err
	}

	metrics := append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(m.ins.grpc.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(m.ins.grpc.StreamServerInterceptor())}, m.calls.serverOptions()...)
	remote = grpc.NewServer(append(append(transport.ServerOptions(), metrics...), secure...)...)
	api.RegisterRaftServer(remote, m.node.NewRaftServer())
	api.RegisterRaftMembershipServer(remote, clusterrpc.NewMembershipServer(m.node, true))
	api.RegisterControlServer(remote, control)
	api.RegisterCAServer(remote, caServer)
	healthpb.RegisterHealthServer(remote, m.health)
	reflection.Register(remote)

	local = grpc.NewServer(append([]grpc.ServerOption{grpc.InitialWindowSize(api.StreamWindow),
		grpc.InitialConnWindowSize(api.ConnWindow)}, metrics...)...)
	api.RegisterControlServer(local, control)
	healthpb.RegisterHealthServer(local, m.health)
	reflection.Register(local)
	m.ins.grpc.InitializeMetrics(remote)
	return remote, local, nil
}

// shutdown stops the manager in the order that loses nothing: hand over
// leadership so the cluster does not wait an election timeout, stop taking
// calls, then stop the node.
func (m *Manager) shutdown(remote, local *grpc.Server) {
	m.log.Info("shutting down")
	m.health.Shutdown()
	if m.node.IsLeader() && len(m.node.Cluster().Members()) > 1 {
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ShutdownTimeout)
		if err := m.node.TransferLeadership(ctx, 0); err != nil {
			m.log.Warn("could not hand over leadership before stopping", "err", err)
		}
		cancel()
	}
	m.stopServers(remote, local)
	m.leaderWork.Wait()
	m.node.Stop()
}

// stopServers ends watches, lets the calls in flight finish for up to
// ShutdownTimeout, then closes every connection: the Raft streams of the
// peers too, which last as long as the peers and are not waited for.
func (m *Manager) stopServers(remote, local *grpc.Server) {
	m.stopServing()
	done := make(chan struct{})
	go func() {
		local.GracefulStop()
		remote.GracefulStop()
		close(done)
	}()
	timeout := time.NewTimer(m.cfg.ShutdownTimeout)
	defer timeout.Stop()
	select {
	case <-done:
	case <-m.calls.drained():
	case <-timeout.C:
	}
	local.Stop()
	remote.Stop()
	<-done
}

// proposer lets the store propose through the node, which is created after
// the store.
type proposer Manager

func (p *proposer) ProposeValue(ctx context.Context, payload []byte) (any, error) {
	p.ins.proposalsPending.Inc()
	defer p.ins.proposalsPending.Dec()
	res, err := p.node.ProposeValue(ctx, payload)
	p.ins.countProposal(err)
	return res, err
}

// advertiseAddr picks the address peers use to reach this manager.
func advertiseAddr(configured string, listen *net.TCPAddr) (string, error) {
	if configured != "" {
		if _, _, err := net.SplitHostPort(configured); err != nil {
			return "", fmt.Errorf("manager: --advertise-addr %q is not host:port: %w", configured, err)
		}
		return configured, nil
	}
	if !listen.IP.IsUnspecified() {
		return listen.String(), nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", fmt.Errorf("manager: listing interface addresses: %w", err)
	}
	var found []net.IP
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil && !ipn.IP.IsLinkLocalUnicast() {
			found = append(found, ipn.IP)
		}
	}
	switch len(found) {
	case 0:
		return "", errors.New("manager: listening on every interface, and no address to advertise was found: set --advertise-addr")
	case 1:
		return net.JoinHostPort(found[0].String(), fmt.Sprint(listen.Port)), nil
	}
	return "", fmt.Errorf("manager: listening on every interface, and this machine has several addresses %v: choose one with --advertise-addr", found)
}

// listenControlSocket listens on the control socket, readable and writable
// by the owner only: whoever can reach it administers the cluster. Once it
// is bound, no other manager starts on the same state directory.
func listenControlSocket(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, configErrorf("manager: the control socket path %s is longer than %d bytes; use a shorter --state-dir", path, maxSocketPath)
	}
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, configErrorf("manager: another manager is running on %s; stop it or use another --state-dir", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("manager: removing a stale control socket: %w", err)
	}
	lis, err := net.Listen("unix", path)
	if err != nil {
		return nil, configErrorf("manager: listening on the control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		lis.Close()
		return nil, fmt.Errorf("manager: securing the control socket: %w", err)
	}
	return lis, nil
}
