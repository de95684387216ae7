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
	"github.com/shoal-project/shoal/internal/atomicfile"
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
//  3. Start Raft: restart, bootstrap or join. From then on the WAL exists.
//  4. On a first start, commit the identity (commitIdentity).
//
// The identity is bound to the Raft state. A manager's certificate names
// its node ID, under which the cluster knows it as a member; a manager
// that came back under that ID with an empty log could vote for and
// acknowledge entries it never had, as if it had lost its disk silently.
// So STATE_DIR/certificates must never exist without STATE_DIR/raft, and a
// manager that finds it so refuses to start. To make that refusal mean
// only "the Raft state was lost", a first start keeps its credentials in
// STATE_DIR/certificates.pending until Raft has created its WAL, then
// renames that directory to certificates (one rename, and the directory
// synced). What a start then finds tells what happened before:
//
//   - raft/ and certificates/: a restart.
//   - raft/ and certificates.pending/ only: a first start stopped (crashed)
//     between the creation of the WAL, made with those certificates, and
//     the rename; the rename is finished.
//   - certificates/ without raft/: the Raft state was lost. Refused.
//   - no raft/ (with or without certificates.pending/ and keys/): a first
//     start. What an earlier first start left (it failed or crashed before
//     its WAL existed) is discarded: it protects nothing. With
//     restore.backup, the first start founds the cluster from that backup
//     (restore.go), which it keeps until the identity is committed.
//
// A first start that fails before the WAL exists (a join refused, an
// unreachable manager, a timeout) removes what it wrote (undoFirstStart),
// leaving the state directory as it found it, so the same command can
// simply be run again.
//
// One gap remains, which only Raft could close: a joiner that stops after
// the leader added it as a member but before its WAL exists leaves a
// member that will never answer; the cluster lists it as unreachable, and
// 'shoal node rm' removes it.

// pendingCertificatesDir holds, in the state directory, the credentials of
// a first start until its Raft state exists.
const pendingCertificatesDir = ca.CertificatesDir + ".pending"

// raftDirName is the directory of the Raft state in the state directory.
const raftDirName = "raft"

// stateFound is what the state directory held when the start began.
type stateFound struct {
	dirExisted bool
	raft       bool // a WAL: this manager has Raft state
	raftDir    bool // STATE_DIR/raft exists, with or without a WAL
	certs      bool // STATE_DIR/certificates holds files
	pending    bool // STATE_DIR/certificates.pending exists
	keys       bool // STATE_DIR/keys holds data keys
	restore    bool // STATE_DIR/restore.backup exists: a backup to found the cluster from
}

func (m *Manager) raftDir() string { return filepath.Join(m.cfg.StateDir, raftDirName) }

func (m *Manager) pendingCertificatesPath() string {
	return filepath.Join(m.cfg.StateDir, pendingCertificatesDir)
}

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
		found.raftDir = exists(m.raftDir())
		found.certs = holdsFiles(ca.CertificatesPath(dir))
		found.pending = exists(m.pendingCertificatesPath())
		found.keys = keys.Exists(filepath.Join(dir, keysDirName))
		found.restore = exists(m.restorePath())
	}

	if found.raft {
		switch {
		case !found.keys:
			return found, fmt.Errorf("manager: %s holds Raft state but no data keys in %s; restore them, or remove the state directory and join again",
				dir, filepath.Join(dir, keysDirName))
		case !found.certs && !found.pending:
			return found, fmt.Errorf("manager: %s holds Raft state but no certificates in %s; restore them, or remove the state directory and join again",
				dir, ca.CertificatesPath(dir))
		}
		if m.cfg.JoinAddr != "" {
			m.log.Info("restarting from the state directory: --join and --token are ignored", "state_dir", dir)
		}
		if found.restore {
			m.log.Info("an earlier start from " + RestoreFileName + " made the Raft state: restarting from it, then removing " + RestoreFileName)
		}
		return found, nil
	}

	if found.certs {
		return found, lostRaftStateError(dir)
	}
	if found.restore {
		switch {
		case m.cfg.JoinAddr != "":
			return found, configErrorf("manager: %s holds a backup to restore (%s): a manager started from it founds a cluster of its own, so --join does not apply; drop --join and --token, start it, then join the other managers to it",
				dir, RestoreFileName)
		case m.cfg.ForceNewCluster:
			return found, configErrorf("manager: %s holds a backup to restore (%s), which founds a new one-manager cluster by itself: drop --force-new-cluster",
				dir, RestoreFileName)
		}
	}
	switch {
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

// lostRaftStateError refuses a manager whose certificates outlived its
// Raft state.
func lostRaftStateError(dir string) error {
	id, err := ca.ReadIdentity(ca.CertificatesPath(dir))
	if err != nil {
		return fmt.Errorf("manager: %s has certificates but no Raft state: its Raft log was lost, so it must not rejoin under its old identity. "+
			"If 'shoal node ls' on another manager lists it, remove it with 'shoal node rm ID', then start it again from an empty state directory (remove %s)", dir, dir)
	}
	return fmt.Errorf("manager: %s has this manager's certificates (node ID %s) but no Raft state: its Raft log was lost, so it must not rejoin under its old identity. "+
		"Remove it from the cluster on another manager with 'shoal node rm %s' (unless it was the only one), then start it again from an empty state directory (remove %s)",
		dir, id.NodeID, id.NodeID, dir)
}

// listeners are the sockets of a manager, bound before anything is
// written.
type listeners struct {
	tcp       net.Listener
	metrics   net.Listener // the HTTP listener; nil without HTTPAddr
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
	if flag, addr := m.cfg.httpFlag(); addr != "" {
		if l.metrics, err = listenTCP(flag, addr); err != nil {
			if _, port, _ := net.SplitHostPort(addr); port == strconv.Itoa(l.tcp.Addr().(*net.TCPAddr).Port) {
				return nil, configErrorf("manager: %s %s takes the port of the remote API (--listen-addr %s): choose another port", flag, addr, m.cfg.ListenAddr)
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

// discardFailedStart removes, before a first start writes anything, what
// an earlier first start left when it failed or crashed before its WAL
// existed: pending certificates, and data keys that seal nothing else.
func (m *Manager) discardFailedStart(found stateFound) error {
	if found.pending {
		if id, err := ca.ReadIdentity(m.pendingCertificatesPath()); err == nil {
			m.log.Warn("discarding the certificates of an earlier start that stopped before this manager had Raft state; "+
				"if 'shoal node ls' lists its node ID, remove it with 'shoal node rm'", "earlier_node_id", id.NodeID)
		}
		if err := os.RemoveAll(m.pendingCertificatesPath()); err != nil {
			return fmt.Errorf("manager: removing the certificates an earlier start left: %w", err)
		}
	}
	if found.keys {
		m.log.Info("discarding the data keys of an earlier start that stopped before this manager had Raft state")
		if err := os.RemoveAll(filepath.Join(m.cfg.StateDir, keysDirName)); err != nil {
			return fmt.Errorf("manager: removing the data keys an earlier start left: %w", err)
		}
	}
	return nil
}

// commitIdentity makes the credentials of a first start this manager's,
// once its WAL exists: see the top of this file.
func (m *Manager) commitIdentity() error {
	final := ca.CertificatesPath(m.cfg.StateDir)
	m.credMu.Lock()
	defer m.credMu.Unlock()
	if err := os.Rename(m.pendingCertificatesPath(), final); err != nil {
		return fmt.Errorf("manager: installing this manager's certificates: %w", err)
	}
	if err := atomicfile.SyncDir(m.cfg.StateDir); err != nil {
		return fmt.Errorf("manager: installing this manager's certificates: %w", err)
	}
	if m.sec != nil {
		m.sec.dir = final
	}
	return nil
}

// undoFirstStart removes what a failed first start wrote, unless its WAL
// exists: then the identity is bound to it, and the next start finishes
// what this one began.
func (m *Manager) undoFirstStart(found stateFound) {
	if storage.Exists(m.raftDir()) {
		return
	}
	remove := []string{m.pendingCertificatesPath(), filepath.Join(m.cfg.StateDir, keysDirName)}
	if !found.raftDir {
		remove = append(remove, m.raftDir())
	}
	var removed []string
	for _, p := range remove {
		if !exists(p) {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			m.log.Warn("removing what the failed start wrote", "path", p, "err", err)
			continue
		}
		removed = append(removed, filepath.Base(p))
	}
	if !found.dirExisted {
		_ = os.Remove(m.cfg.StateDir) // only if nothing else is in it
	}
	if len(removed) > 0 {
		m.log.Info("this first start failed before the manager had Raft state: removed what it wrote, so that it can simply be run again",
			"removed", removed)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// holdsFiles reports whether dir exists and is not empty.
func holdsFiles(dir string) bool {
	entries, err := os.ReadDir(dir)
	return err == nil && len(entries) > 0 || err != nil && !errors.Is(err, fs.ErrNotExist)
}
