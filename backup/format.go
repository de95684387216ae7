package backup

import (
	"errors"
	"fmt"
)

// Magic begins every backup file.
const Magic = "SHOALBAK"

// Format is the layout this package writes and reads.
const Format = 1

const (
	// frameSize is the most plaintext one encrypted frame holds.
	frameSize = 1 << 20
	// maxHeaderBytes bounds the header, so that a damaged length cannot
	// make a reader allocate without limit.
	maxHeaderBytes = 1 << 20
	// trailerSize is the SHA-256 at the end of the file.
	trailerSize = 32
	// saltSize is the length of the HKDF salt of an encrypted file.
	saltSize = 32
	// sealOverhead is what AES-GCM adds to a frame: its tag.
	sealOverhead = 16
)

// ErrInvalid is wrapped by every error about a file that is not a sound
// backup, whatever the reason below.
var ErrInvalid = errors.New("not a sound backup")

// The reasons a file is refused; each error wraps one of them and
// ErrInvalid.
var (
	// ErrNotBackup: the file does not begin with Magic.
	ErrNotBackup = errors.New("not a shoal backup")
	// ErrUnknownFormat: a format this version does not read.
	ErrUnknownFormat = errors.New("unknown backup format")
	// ErrDamaged: the file's bytes are not those that were written (the
	// checksum, a frame's authentication or the objects do not match).
	ErrDamaged = errors.New("damaged backup")
	// ErrTruncated: the file ends before its end.
	ErrTruncated = errors.New("truncated backup")
	// ErrEncrypted: the objects are encrypted and no key was given.
	ErrEncrypted = errors.New("encrypted backup")
	// ErrWrongKey: the key given is not the one the file was written with.
	ErrWrongKey = errors.New("wrong backup key")
)

// fileError is an error about the file: its message, the reason it
// wraps, and the cause found on the way, if any.
type fileError struct {
	reason error
	msg    string
	cause  error
}

func (e *fileError) Error() string { return e.msg }
func (e *fileError) Unwrap() error { return e.cause }
func (e *fileError) Is(target error) bool {
	return target == e.reason || target == ErrInvalid
}

func invalid(reason error, format string, args ...any) error {
	return &fileError{reason: reason, msg: fmt.Sprintf(format, args...)}
}

// reasonOf returns the reason err wraps, nil for an error that is not
// about the file (a read error of the disk, say).
func reasonOf(err error) error {
	for _, r := range []error{ErrNotBackup, ErrUnknownFormat, ErrDamaged, ErrTruncated, ErrEncrypted, ErrWrongKey} {
		if errors.Is(err, r) {
			return r
		}
	}
	return nil
}
