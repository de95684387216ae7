package manager

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/store"
)

// DefaultPort is the TCP port of the remote API.
const DefaultPort = 2377

// Config configures a Manager. Start from DefaultConfig.
type Config struct {
	// StateDir holds everything the manager keeps: its identity, the Raft
	// log and snapshots (raft/), and the control socket. Required.
	StateDir string
	// ListenAddr is the TCP address of the remote API. Default
	// 0.0.0.0:2377.
	ListenAddr string
	// AdvertiseAddr is the address other managers use to reach this one.
	// Default: ListenAddr when it names a host; when it listens on every
	// interface, the one non-loopback address of this machine (an error
	// if there are several: set it then).
	AdvertiseAddr string
	// JoinAddr is the address of a manager of the cluster to join. Empty:
	// found a new cluster. Ignored when StateDir already holds state.
	JoinAddr string
	// JoinToken is the manager join token of the cluster to join
	// (SHLTKN-1-...); required with JoinAddr for a new manager, and
	// refused without it (a new cluster would be founded instead).
	JoinToken string
	// CertificateValidity is the lifetime of the certificates this manager
	// signs for itself and for clients; they are renewed well before they
	// expire. Default 90 days.
	CertificateValidity time.Duration
	// Autolock wraps this manager's data keys with an unlock key, shown
	// once on UnlockKeyOutput: after a restart the manager serves nothing
	// until it is given that key (shoal unlock). Enabled on any start with
	// it set; it stays on.
	Autolock bool
	// UnlockKeyOutput receives the unlock key when autolock is enabled.
	// Nil: the key is not shown (shoal cluster unlock-key shows it).
	UnlockKeyOutput io.Writer
	// ForceNewCluster restarts from the state in StateDir as the only
	// manager of a new cluster, keeping every committed object; for when
	// the cluster lost its quorum for good.
	ForceNewCluster bool

	// HTTPAddr, when set, is a TCP address where the dashboard (/),
	// Prometheus metrics (/metrics), /healthz and /readyz are served over
	// plain HTTP, read-only. Off by default: choose a private address.
	HTTPAddr string
	// MetricsAddr is another name for HTTPAddr, its older one; setting
	// both to different addresses is an error.
	MetricsAddr string
	// Pprof serves the runtime profiles at /debug/pprof/ on HTTPAddr too.
	// Off by default.
	Pprof bool

	// Raft tunes the Raft node; its identity and address fields are set by
	// the manager.
	Raft raft.Config
	// Store sets the object store's limits.
	Store store.Config

	// StartTimeout bounds joining and the wait for a leader at start.
	// Default 1 minute.
	StartTimeout time.Duration
	// ShutdownTimeout bounds the handover of leadership and the draining
	// of calls at shutdown. Default 10s.
	ShutdownTimeout time.Duration

	// Logger receives the manager's logs. Default: discard.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		ListenAddr:          fmt.Sprintf("0.0.0.0:%d", DefaultPort),
		Raft:                raft.DefaultConfig(),
		Store:               store.DefaultConfig(),
		StartTimeout:        time.Minute,
		CertificateValidity: ca.DefaultCertificateValidity,
		ShutdownTimeout:     10 * time.Second,
	}
}

// Validate checks what it can before anything is opened; its errors wrap
// ErrBadConfig. Run checks the rest before it writes anything: what the
// state directory holds against these settings, and every listener.
func (c *Config) Validate() error {
	var errs []error
	if c.StateDir == "" {
		errs = append(errs, errors.New("manager: a state directory is required"))
	}
	if c.StateDir != "" {
		if p := filepath.Join(c.StateDir, SocketName); len(p) > maxSocketPath {
			errs = append(errs, fmt.Errorf("manager: the control socket path %s is longer than %d bytes; use a shorter --state-dir", p, maxSocketPath))
		}
	}
	if c.ListenAddr == "" {
		errs = append(errs, errors.New("manager: a listen address is required"))
	}
	for _, a := range []struct{ flag, addr string }{
		{"--listen-addr", c.ListenAddr}, {"--advertise-addr", c.AdvertiseAddr}, {"--join", c.JoinAddr},
		{"--http-addr", c.HTTPAddr}, {"--metrics-addr", c.MetricsAddr},
	} {
		if a.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			errs = append(errs, fmt.Errorf("manager: %s %q is not host:port: %w", a.flag, a.addr, err))
		}
	}
	if c.HTTPAddr != "" && c.MetricsAddr != "" && c.HTTPAddr != c.MetricsAddr {
		errs = append(errs, fmt.Errorf("manager: --http-addr %s and --metrics-addr %s name the same listener: give one", c.HTTPAddr, c.MetricsAddr))
	}
	flag, addr := c.httpFlag()
	if _, port, _ := net.SplitHostPort(addr); addr != "" && addr == c.ListenAddr && port != "0" {
		errs = append(errs, fmt.Errorf("manager: %s and --listen-addr are both %s: choose another address for the dashboard and metrics", flag, addr))
	}
	if c.Pprof && addr == "" {
		errs = append(errs, errors.New("manager: --pprof serves the profiles on the HTTP listener: give --http-addr too"))
	}
	if c.ForceNewCluster && c.JoinAddr != "" {
		errs = append(errs, fmt.Errorf("manager: --force-new-cluster and --join %s exclude each other", c.JoinAddr))
	}
	if c.CertificateValidity < time.Second {
		errs = append(errs, fmt.Errorf("manager: certificate validity %v must be at least a second", c.CertificateValidity))
	}
	if c.StartTimeout <= 0 {
		errs = append(errs, fmt.Errorf("manager: start timeout %v must be positive", c.StartTimeout))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("manager: shutdown timeout %v must be positive", c.ShutdownTimeout))
	}
	if err := c.Store.Validate(); err != nil {
		errs = append(errs, err)
	}
	// The Raft tunables, before any identity is known: the manager sets
	// those fields itself.
	rc := c.Raft
	rc.NodeID, rc.StateDir, rc.AdvertiseAddr, rc.Join = "-", "-", "-", nil
	if err := rc.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil
	}
	return configError{errors.Join(errs...)}
}

// httpFlag returns the address of the HTTP listener and the flag that
// named it.
func (c *Config) httpFlag() (flag, addr string) {
	if c.HTTPAddr != "" {
		return "--http-addr", c.HTTPAddr
	}
	if c.MetricsAddr != "" {
		return "--metrics-addr", c.MetricsAddr
	}
	return "", ""
}
