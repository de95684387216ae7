package store

import "errors"

// Errors returned by the store. Each names a class of failure; the error
// actually returned wraps one of them with the details (which action, which
// object), so match with errors.Is. The rejections of a committed entry
// (ErrExists, ErrNotFound, ErrVersionConflict, ErrInvalid, ErrTooLarge) are
// decided by Apply identically on every manager and change nothing.
var (
	// ErrExists means a create or rename used an id, or a kind and name,
	// that another object has.
	ErrExists = errors.New("store: object already exists")
	// ErrNotFound means no object has the given id (and kind), or name.
	ErrNotFound = errors.New("store: object not found")
	// ErrVersionConflict means an update or delete expected a version the
	// object no longer has: someone else changed it first.
	ErrVersionConflict = errors.New("store: version conflict")
	// ErrInvalid means a kind, name, id, label, selector, action or entry
	// payload breaks the rules documented on api.Object and in this
	// package.
	ErrInvalid = errors.New("store: invalid")
	// ErrTooLarge means an object, a transaction or an entry exceeds a
	// limit of Config (before proposing) or a hard limit (when applying).
	ErrTooLarge = errors.New("store: too large")
	// ErrCorruptSnapshot means Restore was given bytes that are not a whole,
	// valid store snapshot; the store was left as it was.
	ErrCorruptSnapshot = errors.New("store: corrupt snapshot")
	// ErrNoProposer means Update or Batch was called on a store built
	// without a Proposer (a replica that only applies entries).
	ErrNoProposer = errors.New("store: no proposer")
)
