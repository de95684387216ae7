package keys

import "errors"

// Errors returned by this package. Match them with errors.Is: most are
// wrapped with the detail that caused them (the path, the key ID, the OS
// error). No error message ever contains key material.
var (
	// ErrInvalidConfig means a Config field cannot work; the message names
	// the field and the value.
	ErrInvalidConfig = errors.New("keys: invalid config")
	// ErrNotFound means the directory holds no key file: a node that never
	// created one, or the wrong directory. It also matches fs.ErrNotExist.
	ErrNotFound = errors.New("keys: no key file")
	// ErrExists means Create found a key file that a new node must not
	// replace: the keys in it may be the only way to read its Raft data.
	ErrExists = errors.New("keys: key file already exists")
	// ErrCorrupt means the key file cannot be read back as written: its
	// checksum does not match, its structure is invalid, or (autolocked)
	// the unlock key is the right one but the wrapped keys fail
	// authentication. It is never returned for a wrong unlock key.
	ErrCorrupt = errors.New("keys: key file is corrupt")
	// ErrWrongUnlockKey means Unlock was given a well-formed unlock key that
	// is not the one the key file is wrapped with. The file is intact.
	ErrWrongUnlockKey = errors.New("keys: wrong unlock key")
	// ErrMalformedUnlockKey means a string is not an unlock key of the form
	// SHLKEY-1-<50 base-36 digits>; the message says which part is wrong
	// and never repeats the key.
	ErrMalformedUnlockKey = errors.New("keys: malformed unlock key")
	// ErrNotAutolocked means an operation needs autolock (RotateUnlockKey),
	// or Unlock was called on a key file that is not locked.
	ErrNotAutolocked = errors.New("keys: autolock is not enabled")
	// ErrAutolocked means EnableAutolock was called while autolock is
	// already on; the unlock key the user holds stays valid. Use
	// RotateUnlockKey to replace it.
	ErrAutolocked = errors.New("keys: autolock is already enabled")
	// ErrTooManyKeys means RotateDEK would keep more than MaxKeys data
	// keys: older keys are dropped only after a snapshot covers their
	// data, so rotations are outpacing snapshots.
	ErrTooManyKeys = errors.New("keys: too many data keys waiting for a snapshot")
	// ErrMalformedSealed means bytes given to Keys.Open are not sealed data
	// of a format this package writes: too short or an unknown format.
	ErrMalformedSealed = errors.New("keys: malformed sealed data")
	// ErrUnknownKey means sealed data names a data key that is not held:
	// it was sealed by another node's keys, or with a key already dropped.
	ErrUnknownKey = errors.New("keys: sealed with a data key that is not held")
	// ErrAuthentication means sealed data fails authentication with the
	// key whose ID it names: it was modified, it belongs to another
	// context (another entry's index or term), or another node's key file
	// sealed it (every node's first key has ID 1).
	ErrAuthentication = errors.New("keys: sealed data fails authentication")
	// ErrClosed means the Keys was used after Close.
	ErrClosed = errors.New("keys: closed")
)
