package keys

import (
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoal-project/shoal/internal/atomicfile"
)

// FileName is the key file's name in Config.Dir.
const FileName = "raft.dek"

// The key file is
//
//	magic "SHOALDEK" (8) | version 1 (1) | mode (1) | [check value (16)] |
//	payload length (4, big-endian) | payload | SHA-256 of all bytes before it (32)
//
// Mode 0 (unlocked): the payload is the key set in clear; the file's mode
// 0600 and the state directory's permissions are all that protect it.
// Mode 1 (autolocked): the check value is present and the payload is the
// key set sealed with AES-256-GCM (random 96-bit nonce before the
// ciphertext) under the wrap key, with every byte before the payload length
// as additional data. The wrap key and the check value are derived from the
// unlock key with HKDF-SHA256 under distinct labels.
//
// The key set is a count (1 byte) and that many (ID (4, big-endian) | key
// (32)) in increasing ID order; the last is the current key.
//
// The checksum tells damage from a wrong unlock key: a file whose checksum
// fails is corrupt; with a good checksum, a check value that does not match
// means a wrong unlock key; a matching check value with a payload that fails
// authentication means the file was rewritten by someone without the key
// (ErrCorrupt). The check value lets nobody guess the unlock key: it is a
// pseudo-random function of 256 random bits.
const (
	fileMagic    = "SHOALDEK"
	fileVersion  = 1
	modeUnlocked = 0
	modeLocked   = 1
	checkSize    = 16
	sumSize      = sha256.Size
	dekSize      = 4 + 32
	// MaxKeys is the most data keys a key file holds: the current one and
	// older ones still needed to read data on disk.
	MaxKeys = 16
	// maxFileSize bounds what is read from disk before it is parsed.
	maxFileSize = 64 << 10

	hkdfWrapInfo  = "shoal keys v1: key file wrap key"
	hkdfCheckInfo = "shoal keys v1: unlock key check value"
)

// wrapping is what an unlock key gives: the key that seals the key set and
// the value that identifies the unlock key.
type wrapping struct {
	key   [32]byte
	check [checkSize]byte
}

func deriveWrapping(u *UnlockKey) (*wrapping, error) {
	w := &wrapping{}
	k, err := hkdf.Key(sha256.New, u.b[:], nil, hkdfWrapInfo, len(w.key))
	if err != nil {
		return nil, fmt.Errorf("keys: derive wrap key: %w", err)
	}
	copy(w.key[:], k)
	clear(k)
	c, err := hkdf.Key(sha256.New, u.b[:], nil, hkdfCheckInfo, checkSize)
	if err != nil {
		return nil, fmt.Errorf("keys: derive check value: %w", err)
	}
	copy(w.check[:], c)
	return w, nil
}

func (w *wrapping) wipe() {
	if w != nil {
		clear(w.key[:])
	}
}

// fileContents is a key file split into its parts, before any unwrapping.
type fileContents struct {
	mode    byte
	check   [checkSize]byte
	header  []byte // the bytes authenticated with a wrapped payload
	payload []byte
}

// parseFile checks the framing and the checksum of a key file.
func parseFile(b []byte) (*fileContents, error) {
	fixed := len(fileMagic) + 2
	if len(b) < fixed+4+sumSize {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrCorrupt, len(b))
	}
	body, sum := b[:len(b)-sumSize], b[len(b)-sumSize:]
	if got := sha256.Sum256(body); subtle.ConstantTimeCompare(got[:], sum) != 1 {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if string(body[:len(fileMagic)]) != fileMagic {
		return nil, fmt.Errorf("%w: not a shoal key file", ErrCorrupt)
	}
	if v := body[len(fileMagic)]; v != fileVersion {
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, v, fileVersion)
	}
	c := &fileContents{mode: body[len(fileMagic)+1]}
	rest := body[fixed:]
	switch c.mode {
	case modeUnlocked:
	case modeLocked:
		if len(rest) < checkSize {
			return nil, fmt.Errorf("%w: check value cut short", ErrCorrupt)
		}
		copy(c.check[:], rest)
		rest = rest[checkSize:]
	default:
		return nil, fmt.Errorf("%w: unknown mode %d", ErrCorrupt, c.mode)
	}
	c.header = body[:len(body)-len(rest)]
	if len(rest) < 4 {
		return nil, fmt.Errorf("%w: payload length cut short", ErrCorrupt)
	}
	n := binary.BigEndian.Uint32(rest)
	if uint64(n) != uint64(len(rest)-4) {
		return nil, fmt.Errorf("%w: payload of %d bytes, %d present", ErrCorrupt, n, len(rest)-4)
	}
	c.payload = rest[4:]
	return c, nil
}

// unwrap returns the key set of a parsed file. w is nil for an unlocked
// file; for a locked one it must be given.
func (c *fileContents) unwrap(w *wrapping) ([]dek, error) {
	if c.mode == modeUnlocked {
		return decodeKeySet(c.payload)
	}
	if subtle.ConstantTimeCompare(c.check[:], w.check[:]) != 1 {
		return nil, ErrWrongUnlockKey
	}
	aead, err := newGCM(w.key[:])
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nil, c.payload, c.header)
	if err != nil {
		return nil, fmt.Errorf("%w: the unlock key is right but the wrapped keys fail authentication", ErrCorrupt)
	}
	defer clear(plain)
	return decodeKeySet(plain)
}

// encodeFile writes a key file holding deks, wrapped when w is not nil.
func encodeFile(deks []dek, w *wrapping) ([]byte, error) {
	set := encodeKeySet(deks)
	defer clear(set)
	b := []byte(fileMagic)
	b = append(b, fileVersion)
	payload := set
	if w == nil {
		b = append(b, modeUnlocked)
	} else {
		b = append(b, modeLocked)
		b = append(b, w.check[:]...)
		aead, err := newGCM(w.key[:])
		if err != nil {
			return nil, err
		}
		payload = aead.Seal(nil, nil, set, b)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	sum := sha256.Sum256(b)
	return append(b, sum[:]...), nil
}

func encodeKeySet(deks []dek) []byte {
	b := make([]byte, 0, 1+len(deks)*dekSize)
	b = append(b, byte(len(deks)))
	for i := range deks {
		b = binary.BigEndian.AppendUint32(b, deks[i].id)
		b = append(b, deks[i].key[:]...)
	}
	return b
}

func decodeKeySet(b []byte) ([]dek, error) {
	if len(b) < 1 {
		return nil, fmt.Errorf("%w: empty key set", ErrCorrupt)
	}
	n := int(b[0])
	if n < 1 || n > MaxKeys {
		return nil, fmt.Errorf("%w: %d keys, want 1 to %d", ErrCorrupt, n, MaxKeys)
	}
	if len(b) != 1+n*dekSize {
		return nil, fmt.Errorf("%w: key set of %d bytes for %d keys", ErrCorrupt, len(b), n)
	}
	deks := make([]dek, n)
	for i := range deks {
		rec := b[1+i*dekSize:]
		deks[i].id = binary.BigEndian.Uint32(rec)
		copy(deks[i].key[:], rec[4:dekSize])
		if deks[i].id == 0 || i > 0 && deks[i].id <= deks[i-1].id {
			return nil, fmt.Errorf("%w: key IDs are not increasing from 1", ErrCorrupt)
		}
	}
	return deks, nil
}

// readFile reads the key file in dir, refusing sizes no key file has.
func readFile(dir string) ([]byte, error) {
	path := filepath.Join(dir, FileName)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: %w", ErrNotFound, dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("keys: read %s: %w", path, err)
	}
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrCorrupt, path, maxFileSize)
	}
	return b, nil
}

var tempPrefix = atomicfile.TempPrefix(FileName)

// writeFileAtomic replaces the key file in dir with data: a temporary file
// in dir (mode 0600 from its creation), synced, renamed over the key file,
// and dir synced (a rename is durable only once its directory is). A crash
// leaves the old file or the new one, never a mix.
func writeFileAtomic(dir string, data []byte) error {
	if err := atomicfile.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
		return fmt.Errorf("keys: replace key file: %w", err)
	}
	return nil
}

// removeTemps removes temporary files a crash left behind: they may hold
// keys that are no longer current, in clear.
func removeTemps(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	removed := false
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("keys: remove stale temporary file: %w", err)
			}
			removed = true
		}
	}
	if removed {
		return syncDir(dir)
	}
	return nil
}

// makeDir creates dir with mode 0700, or narrows an existing one to it,
// and makes its entry durable.
func makeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return syncDir(filepath.Dir(dir))
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return nil
}
