package storage

import (
	"fmt"
	"log/slog"
)

// Config configures a Storage.
type Config struct {
	// Dir is the directory of one node's Raft state, STATE_DIR/raft. The
	// WAL lives in Dir/wal and the snapshots and their state files in
	// Dir/snap; Dir/snap.tmp holds those files while they are written or
	// received. Required.
	Dir string

	// Logger receives the package's logs and, bridged from zap, etcd's. Nil
	// discards them.
	Logger *slog.Logger

	// KeepOldSnapshots is how many snapshot files are kept besides the
	// newest one, with the WAL segments they need. Old snapshots are a way
	// back when the newest file is damaged. Unit: files. Default 0.
	KeepOldSnapshots int

	// Cipher, when set, encrypts the data of every entry and snapshot
	// before it reaches the disk and decrypts it on Open; nil stores them
	// in clear. A directory must always be opened with the kind of Cipher
	// it was created with. The WAL's metadata, HardStates, entry indexes,
	// terms and types, and snapshot metadata (ConfState) stay in clear:
	// they hold node identities and positions in the log, no payloads. If
	// the Cipher is also a KeyRetirer, Storage tells it when older keys
	// are no longer needed.
	Cipher Cipher

	// WAL opens and creates the write-ahead log. Nil means etcd's wal
	// package (EtcdWAL). Tests and fault-injection builds put theirs here.
	WAL WALFactory

	// Snapshotter writes and loads snapshot files. Nil means etcd's snap
	// package (EtcdSnapshotter).
	Snapshotter SnapshotterFactory
}

// DefaultConfig returns the defaults for a node whose Raft state lives in
// dir: no old snapshots kept, logs discarded, etcd's wal and snap packages.
func DefaultConfig(dir string) Config {
	return Config{Dir: dir}
}

// Validate reports the first field that cannot work, wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	if c.Dir == "" {
		return fmt.Errorf("%w: Dir is empty", ErrInvalidConfig)
	}
	if c.KeepOldSnapshots < 0 {
		return fmt.Errorf("%w: KeepOldSnapshots is %d, want 0 or more", ErrInvalidConfig, c.KeepOldSnapshots)
	}
	return nil
}

// withDefaults fills the optional fields.
func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.WAL == nil {
		c.WAL = EtcdWAL(c.Logger)
	}
	if c.Snapshotter == nil {
		c.Snapshotter = EtcdSnapshotter(c.Logger)
	}
	return c
}
