package storage

import (
	"errors"
	"fmt"
)

// Errors returned by this package. Match them with errors.Is: most are
// returned wrapped, together with the error from etcd or the OS that caused
// them.
var (
	// ErrInvalidConfig means a Config field has a value that cannot work;
	// the message names the field and the value.
	ErrInvalidConfig = errors.New("storage: invalid config")
	// ErrNoWAL means Open found no WAL segment under Dir/wal: this is a new
	// node, or the directory is not the one that was created.
	ErrNoWAL = errors.New("storage: no WAL found")
	// ErrExists means Create found a WAL or snapshot files that a new node
	// must not inherit.
	ErrExists = errors.New("storage: raft state already exists")
	// ErrCorrupt means the WAL, or the snapshot it needs, cannot be read
	// back without dropping records that were written whole: a record fails
	// its checksum, records are missing, or a damaged record has intact
	// records after it. Open refuses to truncate such a log.
	ErrCorrupt = errors.New("storage: WAL is corrupt")
	// ErrInvalidSnapshot means SaveSnapshot was given an empty snapshot, one
	// without a ConfState, or one older than a snapshot already saved.
	ErrInvalidSnapshot = errors.New("storage: invalid snapshot")
	// ErrOlderSnapshot means SaveSnapshot was given a snapshot older than
	// one already saved, such as a node's own, taken in the background,
	// after it saved one received from the leader. The newer one stands;
	// nothing was written. It wraps ErrInvalidSnapshot.
	ErrOlderSnapshot = fmt.Errorf("%w: older than a saved snapshot", ErrInvalidSnapshot)
	// ErrFailed means an earlier write to the WAL failed. What reached the
	// disk is then unknown, so every later write is refused: close the
	// Storage and open it again.
	ErrFailed = errors.New("storage: an earlier WAL write failed")
	// ErrDecrypt means data read back from disk cannot be decrypted by the
	// Config's Cipher: it was sealed with a key the Cipher does not hold
	// (another node's directory, a key file from elsewhere, a key dropped
	// too early) or it was modified. The Cipher's own error is wrapped
	// too. Open fails with it and changes nothing on disk; nothing is
	// skipped or truncated.
	ErrDecrypt = errors.New("storage: cannot decrypt")
	// ErrStateFile means the state file of a snapshot cannot be used: it
	// is missing, damaged, truncated, holds frames of another file, or
	// holds other bytes than the snapshot names. The message names the
	// file. Nothing is repaired or skipped: the node must not start from
	// a state it cannot read whole.
	ErrStateFile = errors.New("storage: bad state file")
	// ErrClosed means the Storage was used after Close.
	ErrClosed = errors.New("storage: closed")
)
