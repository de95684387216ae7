package manager

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/keys"
	"github.com/shoal-project/shoal/raft/storage"
)

// A start of a manager goes in an order that keeps a failed one harmless:
//
//  1. Check, writing nothing: the configuration (Validate, in New), then
//     what the state directory holds against the flags (checkStateDir),
//     then every listener, bound for good and handed on to the servers
//     (listen): the remote API, the metrics, the control socket. Only the
//     state directory itself and its socket are created, and the cluster
//     is not contacted.
//  2. Open the data keys (waiting for the unlock key on the bound socket
//     when autolocked) and the credentials: on a first start, created by
//     the first manager or asked of the cluster's CA by a joiner.
//  3. Start Raft: restart, bootstrap or join.

// raftDirName is the directory of the Raft state in the state directory.
const raftDirName = "raft"

// stateFound is what the state directory held when the start began.
type stateFound struct {
	dirExisted bool
	raft       bool // a WAL: this manager has Raft state
	certs      bool // STATE_DIR/certificates holds files
	keys       bool // STATE_DIR/keys holds data keys
}

func (m *Manager) raftDir() string { return filepath.Join(m.cfg.StateDir, raftDirName) }

// checkStateDir reads what the state directory holds and checks it, and
// the flags, against each other. It writes nothing.
func (m *Manager) checkStateDir() (stateFound, error) {
	dir := m.cfg.StateDir
	var found stateFound
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return found, configErrorf("manager: cannot use the state directory: %w: choose another --state-dir", err)
	case !fi.IsDir():
		return found, configErrorf("manager: --state-dir %s is not a directory: choose another --state-dir", dir)
	default:
		found.dirExisted = true
	}
	if found.dirExisted {
		found.raft = storage.Exists(m.raftDir())
		found.certs = holdsFiles(ca.CertificatesPath(dir))
		found.keys = keys.Exists(filepath.Join(dir, keysDirName))
	}

	if found.raft {
		switch {
		case !found.keys:
			return found, fmt.Errorf("manager: %s holds Raft state but no data keys in %s; restore them, or remove the state directory and join again",
				dir, filepath.Join(dir, keysDirName))
		case !found.certs:
			return found, fmt.Errorf("manager: %s holds Raft state but no certificates in %s; restore them, or remove the state directory and join again",
				dir, ca.CertificatesPath(dir))
		}
		if m.cfg.JoinAddr != "" {
			m.log.Info("restarting from the state directory: --join and --token are ignored", "state_dir", dir)
		}
		return found, nil
	}

	switch {
	case found.certs && !found.keys:
		return found, fmt.Errorf("manager: %s holds certificates, sealed with data keys that are not in %s; restore them, or remove the state directory and join again",
			dir, filepath.Join(dir, keysDirName))
	case m.cfg.ForceNewCluster:
		return found, configErrorf("manager: --force-new-cluster restarts a manager from its own state, and %s holds no Raft state: start the manager whose state survived with it", dir)
	case m.cfg.JoinAddr == "" && m.cfg.JoinToken != "":
		return found, configErrorf("manager: --token is for joining a cluster, and --join is not given: add --join ADDR to join, or drop --token to found a new cluster")
	case m.cfg.JoinAddr != "" && m.cfg.JoinToken == "":
		return found, configErrorf("manager: joining %s needs a join token (--token; ask a manager: shoal cluster join-token manager)", m.cfg.JoinAddr)
	case m.cfg.JoinAddr != "":
		if _, err := ca.ParseJoinToken(m.cfg.JoinToken); err != nil {
			return found, configErrorf("manager: --token: %w (a manager join token looks like SHLTKN-1-...; ask a manager: shoal cluster join-token manager)", err)
		}
	}
	return found, nil
}

// listeners are the sockets of a manager, bound before anything is
// written.
type listeners struct {
	tcp       net.Listener
	metrics   net.Listener // nil without MetricsAddr
	socket    net.Listener
	advertise string
}

// close closes the listeners the servers did not take; closing one again
// does no harm.
func (l *listeners) close() {
	for _, lis := range []net.Listener{l.tcp, l.metrics, l.socket} {
		if lis != nil {
			_ = lis.Close()
		}
	}
}

// listen binds every listener of the manager and makes sure the state
// directory exists and can be written, so that a start that cannot serve
// fails before it writes anything in it.
func (m *Manager) listen() (_ *listeners, err error) {
	l := &listeners{}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if l.tcp, err = listenTCP("--listen-addr", m.cfg.ListenAddr); err != nil {
		return nil, err
	}
	m.addr = l.tcp.Addr().String()
	if l.advertise, err = advertiseAddr(m.cfg.AdvertiseAddr, l.tcp.Addr().(*net.TCPAddr)); err != nil {
		return nil, configError{err}
	}
	if m.cfg.MetricsAddr != "" {
		if l.metrics, err = listenTCP("--metrics-addr", m.cfg.MetricsAddr); err != nil {
			if _, port, _ := net.SplitHostPort(m.cfg.MetricsAddr); port == strconv.Itoa(l.tcp.Addr().(*net.TCPAddr).Port) {
				return nil, configErrorf("manager: --metrics-addr %s takes the port of the remote API (--listen-addr %s): choose another port", m.cfg.MetricsAddr, m.cfg.ListenAddr)
			}
			return nil, err
		}
	}
	if err := usableStateDir(m.cfg.StateDir); err != nil {
		return nil, err
	}
	if l.socket, err = listenControlSocket(m.SocketPath()); err != nil {
		return nil, err
	}
	return l, nil
}

// listenTCP listens on addr, given by flag, and says what to do when it
// cannot.
func listenTCP(flag, addr string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	switch {
	case err == nil:
		return lis, nil
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, configErrorf("manager: %s %s is in use by another process: choose another address", flag, addr)
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return nil, configErrorf("manager: %s %s is not an address of this machine: choose one of its addresses", flag, addr)
	case errors.Is(err, syscall.EACCES):
		return nil, configErrorf("manager: %s %s needs a privilege this process lacks (ports below 1024 do): choose another port", flag, addr)
	}
	return nil, configErrorf("manager: cannot listen on %s %s: %w", flag, addr, err)
}

// usableStateDir creates the state directory if need be and checks that
// this process can write in it.
func usableStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return configErrorf("manager: cannot create the state directory: %w: choose another --state-dir", err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return configErrorf("manager: the state directory %s is not writable: %w: fix its permissions or choose another --state-dir", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return configErrorf("manager: the state directory %s is not writable: %w", dir, err)
	}
	return nil
}

// holdsFiles reports whether dir exists and is not empty.
func holdsFiles(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0 || err != nil && !errors.Is(err, fs.ErrNotExist)
}
