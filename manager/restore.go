package manager

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/backup"
	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/internal/atomicfile"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/store"
)

// Restoring a backup (shoal snapshot restore) goes in two steps, so that
// the manager alone decides what its state directory holds:
//
//  1. PrepareRestore checks the backup whole, then writes it, decrypted, to
//     STATE_DIR/restore.backup in a new or empty state directory, and
//     nothing else.
//  2. The manager's first start on that directory (no WAL) founds a
//     one-manager cluster from it: it checks it again, takes the root CA
//     with its key from the backup's cluster object and signs its own
//     certificate with it (a new node ID; the cluster keeps its ID, its
//     client certificates and its join token), and founds Raft with the
//     store's state as its first snapshot, at the backup's index, so that
//     new writes get versions above every restored object's
//     (raft.InitialState). The leader's reconcile loop then replaces the
//     old managers' node objects with its own.
//
// restore.backup is removed only once the WAL holds the state and the
// identity is committed. A crash before the WAL is in place leaves no WAL
// (storage.CreateInitial renames it into place whole): the next start is a
// first start again, from restore.backup. A crash after leaves a WAL with
// the whole state: the next start is a restart, which removes
// restore.backup. --join and --force-new-cluster are refused on a first
// start with restore.backup.

// RestoreFileName is the backup a first start founds its cluster from, in
// the state directory.
const RestoreFileName = "restore.backup"

func (m *Manager) restorePath() string { return filepath.Join(m.cfg.StateDir, RestoreFileName) }

// PrepareRestore makes stateDir (new, or empty) ready for a manager to
// found a cluster from the backup file: it checks the file whole (the
// SHA-256, the decryption with key, every object as a follower checks a
// snapshot, and that its cluster object can found a cluster) before it
// writes anything, then writes it decrypted to stateDir/restore.backup
// (0600; stateDir 0700), checks what it wrote, and syncs it into place. On
// error it leaves stateDir as it found it (not created, or empty). It
// returns what the backup holds.
func PrepareRestore(stateDir, file string, key *backup.Key) (*backup.Info, error) {
	created, err := checkRestoreDir(stateDir)
	if err != nil {
		return nil, err
	}
	info, err := backup.VerifyFile(file, key)
	if err != nil {
		return nil, err
	}
	if _, err := backupCluster(info); err != nil {
		return nil, err
	}
	info.Contents = nil // held in memory: let it go before the copy is checked

	if created {
		if err := os.Mkdir(stateDir, 0o700); err != nil {
			return nil, fmt.Errorf("manager: creating the state directory: %w", err)
		}
	} else if err := os.Chmod(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	if err := writeRestoreFile(filepath.Join(stateDir, RestoreFileName), file, key, info); err != nil {
		if created {
			_ = os.RemoveAll(stateDir)
		}
		return nil, err
	}
	if created {
		if err := atomicfile.SyncDir(filepath.Dir(filepath.Clean(stateDir))); err != nil {
			return nil, fmt.Errorf("manager: %w", err)
		}
	}
	return info, nil
}

// checkRestoreDir accepts a state directory that does not exist (its
// parent must), or is an empty directory, and says whether it is to be
// created.
func checkRestoreDir(dir string) (create bool, err error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		parent := filepath.Dir(filepath.Clean(dir))
		if pfi, err := os.Stat(parent); err != nil || !pfi.IsDir() {
			return false, configErrorf("manager: the directory %s, in which --state-dir %s would be made, does not exist: create it first", parent, dir)
		}
		return true, nil
	case err != nil:
		return false, configErrorf("manager: cannot use --state-dir %s: %w", dir, err)
	case !fi.IsDir():
		return false, configErrorf("manager: --state-dir %s is not a directory: choose a new directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, configErrorf("manager: cannot read --state-dir %s: %w", dir, err)
	}
	if len(entries) > 0 {
		holds := entries[0].Name()
		if len(entries) > 1 {
			holds += fmt.Sprintf(" and %d more", len(entries)-1)
		}
		return false, configErrorf("manager: --state-dir %s is not empty (it holds %s): a backup is restored into a new or empty directory; choose another, or empty it if what it holds is not needed",
			dir, holds)
	}
	return false, nil
}

// writeRestoreFile writes the backup file, decrypted, to path, as
// backup.Save writes a backup: checked whole before it is put in place.
func writeRestoreFile(path, file string, key *backup.Key, want *backup.Info) error {
	src, err := os.Open(file)
	if err != nil {
		return err
	}
	defer src.Close()
	r, err := backup.NewReader(src, key)
	if err != nil {
		return err
	}
	if h := r.Header(); h.GetRaftIndex() != want.Header.GetRaftIndex() || !maps.Equal(h.GetObjects(), want.Header.GetObjects()) {
		return fmt.Errorf("manager: %s changed since it was checked: it now holds %s at index %d, not %s at index %d",
			file, backup.CountsString(h.GetObjects()), h.GetRaftIndex(), backup.CountsString(want.Header.GetObjects()), want.Header.GetRaftIndex())
	}
	if _, err := backup.Save(path, false, r.Header(), r, nil); err != nil {
		return fmt.Errorf("manager: writing %s: %w", path, err)
	}
	return nil
}

// backupCluster returns the spec of the backup's cluster object, once it
// has checked that it can found a cluster: a root CA with its key, of the
// cluster the header names.
func backupCluster(info *backup.Info) (clusterSpec, error) {
	var o *api.Object
	var err error
	info.Contents.View(func(tx store.ReadTx) { o, err = tx.GetByName(store.KindCluster, clusterObjectName) })
	if err != nil {
		return clusterSpec{}, fmt.Errorf("manager: the backup holds no cluster object (%v), so it cannot found a cluster", err)
	}
	spec, err := parseClusterSpec(o)
	if err != nil {
		return clusterSpec{}, fmt.Errorf("manager: the backup's %w", err)
	}
	root, err := ca.ParseRootCA([]byte(spec.RootCA))
	switch {
	case err != nil:
		return clusterSpec{}, fmt.Errorf("manager: the backup's root CA: %w", err)
	case !root.CanSign():
		return clusterSpec{}, errors.New("manager: the backup's root CA has no key, so it cannot sign the restored manager's certificate")
	case root.ClusterID() != spec.ClusterID || spec.ClusterID != info.Header.GetClusterId():
		return clusterSpec{}, fmt.Errorf("manager: the backup's header names cluster %s, its cluster object %s, its root CA %s",
			info.Header.GetClusterId(), spec.ClusterID, root.ClusterID())
	}
	return spec, nil
}

// restoring is what a first start from restore.backup founds Raft with.
type restoring struct {
	path  string
	index uint64
}

// initialState is Raft's initial state: the store's stream in the
// backup, which is checked again as it is read.
func (r *restoring) initialState() *raft.InitialState {
	return &raft.InitialState{Index: r.index, Write: func(w io.Writer) error {
		f, err := os.Open(r.path)
		if err != nil {
			return err
		}
		defer f.Close()
		br, err := backup.NewReader(f, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", RestoreFileName, err)
		}
		if br.Header().GetRaftIndex() != r.index {
			return fmt.Errorf("%s changed during the start: index %d, not %d", RestoreFileName, br.Header().GetRaftIndex(), r.index)
		}
		if _, err := io.Copy(w, br); err != nil {
			return fmt.Errorf("%s: %w", RestoreFileName, err)
		}
		return nil
	}}
}

// restoreCredentials makes this manager's certificate for a first start
// from restore.backup, in dir (certificates.pending): signed by the root
// CA of the backup's cluster object, for a new node ID.
func (m *Manager) restoreCredentials(dir string) (ca.Credentials, error) {
	path := m.restorePath()
	info, err := backup.VerifyFile(path, nil)
	if err != nil {
		return ca.Credentials{}, fmt.Errorf("manager: %s: %w; restore the backup again (shoal snapshot restore) into an empty directory", path, err)
	}
	spec, err := backupCluster(info)
	if err != nil {
		return ca.Credentials{}, err
	}
	root, err := ca.ParseRootCA([]byte(spec.RootCA))
	if err != nil {
		return ca.Credentials{}, err
	}
	kp, err := m.newKeyPair(root, ca.NewID(), ca.RoleManager, time.Now())
	if err != nil {
		return ca.Credentials{}, err
	}
	creds := ca.Credentials{RootCA: root, KeyPair: kp}
	if err := ca.SaveCredentials(dir, creds, m.keys); err != nil {
		return ca.Credentials{}, fmt.Errorf("manager: saving the certificates: %w", err)
	}
	m.restoring = &restoring{path: path, index: info.Header.GetRaftIndex()}
	m.log.Info("founding the cluster from a backup", "cluster_id", root.ClusterID(), "index", info.Header.GetRaftIndex(),
		"objects", backup.CountsString(info.Header.GetObjects()), "taken_by", info.Header.GetNodeId(),
		"taken_at", info.Header.GetCreatedAt().AsTime().UTC().Format(time.RFC3339))
	return creds, nil
}

// removeRestoreFile removes restore.backup once the Raft state made from
// it is durable and the identity committed.
func (m *Manager) removeRestoreFile() {
	path := m.restorePath()
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("removing the restored backup; the next start tries again", "path", path, "err", err)
		return
	}
	if err := atomicfile.SyncDir(m.cfg.StateDir); err != nil {
		m.log.Warn("syncing the state directory", "err", err)
	}
	m.log.Info("the cluster holds the backup's state: removed " + RestoreFileName)
}
