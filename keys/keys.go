package keys

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
)

// Config says where a node's keys live and where logs go.
type Config struct {
	// Dir is the directory of the key file, STATE_DIR/keys. It is created
	// with mode 0700 if missing; the key file in it has mode 0600.
	// Required.
	Dir string
	// Logger receives the package's logs, which name key IDs and never key
	// material. Nil discards them.
	Logger *slog.Logger
}

// Validate reports the first field that cannot work, wrapping
// ErrInvalidConfig.
func (c Config) Validate() error {
	if c.Dir == "" {
		return fmt.Errorf("%w: Dir is empty", ErrInvalidConfig)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Dir = filepath.Clean(c.Dir)
	return c
}

// Keys holds a node's data encryption keys (DEKs) and keeps its key file
// in step with them. It implements storage.Cipher and storage.KeyRetirer.
//
// All methods are safe for concurrent use. Seal and Open never wait for
// the disk: a change (RotateDEK, RetireBefore, the autolock methods) writes
// the new key file first, then makes it current in memory, so no data is
// ever sealed with a key the file does not hold. Changes are serialized
// with each other. After Close every method fails with ErrClosed.
type Keys struct {
	log *slog.Logger
	dir string

	// changeMu serializes changes, from reading the state to writing the
	// file and installing the new state. It is taken before mu.
	changeMu sync.Mutex

	mu     sync.RWMutex
	deks   []dek     // increasing IDs; the last seals
	wrap   *wrapping // nil unless autolocked
	closed bool

	// sealing is the message key Seal uses while it has uses left and its
	// data key is the current one; opening the one Open derived last.
	sealing, opening atomic.Pointer[messageKey]
}

// Status describes the keys without revealing them.
type Status struct {
	// Current is the ID of the data key that seals new data.
	Current uint32
	// Older are the IDs of data keys kept only to read data sealed before
	// a rotation; each goes once a snapshot covers that data.
	Older []uint32
	// Autolocked says whether the key file is wrapped with an unlock key.
	Autolocked bool
}

// Exists reports whether dir holds a key file.
func Exists(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, FileName))
	return err == nil
}

// Create makes a key file with one new data key, unlocked, in cfg.Dir. It
// fails with ErrExists if there is one already: a node's existing keys are
// never replaced, since its Raft data may be readable with nothing else.
// The file is durable when Create returns.
func Create(cfg Config) (*Keys, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := makeDir(cfg.Dir); err != nil {
		return nil, err
	}
	if Exists(cfg.Dir) {
		return nil, fmt.Errorf("%w in %s", ErrExists, cfg.Dir)
	}
	if err := removeTemps(cfg.Dir); err != nil {
		return nil, err
	}
	k := &Keys{log: cfg.Logger, dir: cfg.Dir, deks: []dek{newDEK(1)}}
	if err := k.write(k.deks, nil); err != nil {
		k.Close()
		return nil, err
	}
	k.log.Info("created raft data key", "key_id", 1, "dir", cfg.Dir)
	return k, nil
}

// Open loads the key file in cfg.Dir. If the file is autolocked it returns
// locked true and no Keys: the caller must get the unlock key from the user
// and call Unlock. A missing file fails with ErrNotFound, a damaged one
// with ErrCorrupt.
func Open(cfg Config) (k *Keys, locked bool, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, false, err
	}
	cfg = cfg.withDefaults()
	c, err := load(cfg.Dir)
	if err != nil {
		return nil, false, err
	}
	if c.mode == modeLocked {
		cfg.Logger.Info("key file is autolocked; waiting for the unlock key", "dir", cfg.Dir)
		return nil, true, nil
	}
	deks, err := c.unwrap(nil)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", filepath.Join(cfg.Dir, FileName), err)
	}
	return opened(cfg, deks, nil), false, nil
}

// Unlock loads an autolocked key file with its unlock key. A key that is
// not the one the file is wrapped with fails with ErrWrongUnlockKey and
// changes nothing; a damaged file fails with ErrCorrupt; a file that is
// not autolocked fails with ErrNotAutolocked. The caller may Wipe u
// afterwards: Keys keeps only keys derived from it.
func Unlock(cfg Config, u *UnlockKey) (*Keys, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c, err := load(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if c.mode != modeLocked {
		return nil, fmt.Errorf("%w: %s is not locked", ErrNotAutolocked, filepath.Join(cfg.Dir, FileName))
	}
	w, err := deriveWrapping(u)
	if err != nil {
		return nil, err
	}
	deks, err := c.unwrap(w)
	if err != nil {
		w.wipe()
		return nil, err
	}
	cfg.Logger.Info("unlocked key file", "dir", cfg.Dir)
	return opened(cfg, deks, w), nil
}

func load(dir string) (*fileContents, error) {
	if err := removeTemps(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b, err := readFile(dir)
	if err != nil {
		return nil, err
	}
	c, err := parseFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, FileName), err)
	}
	return c, nil
}

func opened(cfg Config, deks []dek, w *wrapping) *Keys {
	k := &Keys{log: cfg.Logger, dir: cfg.Dir, deks: deks, wrap: w}
	st := k.Status()
	k.log.Info("loaded raft data keys", "key_id", st.Current, "older_key_ids", st.Older, "autolocked", st.Autolocked)
	return k
}

func newDEK(id uint32) dek {
	d := dek{id: id}
	_, _ = rand.Read(d.key[:]) // never fails
	return d
}

// Seal encrypts plain with the current data key, binding additional (the
// context: which entry or snapshot this is) to it; Open must be given the
// same additional data. The result names the key and is SealOverhead bytes
// longer than plain. plain and additional are not retained.
func (k *Keys) Seal(plain, additional []byte) ([]byte, error) {
	return k.AppendSeal(nil, plain, additional)
}

// AppendSeal is Seal appending the result to dst, which must not overlap
// plain, and returning the extended slice: a caller that seals many
// messages reuses one buffer.
func (k *Keys) AppendSeal(dst, plain, additional []byte) ([]byte, error) {
	k.mu.RLock()
	if k.closed {
		k.mu.RUnlock()
		return nil, ErrClosed
	}
	mk := k.sealing.Load()
	if mk != nil && mk.id == k.deks[len(k.deks)-1].id && mk.claim() {
		k.mu.RUnlock()
		return mk.seal(dst, plain, additional), nil
	}
	// A copy, so a change may wipe the old state while this one derives.
	d := k.deks[len(k.deks)-1]
	k.mu.RUnlock()
	defer clear(d.key[:])
	mk, err := newMessageKey(&d)
	if err != nil {
		return nil, err
	}
	mk.claim()
	k.sealing.Store(mk) // a racing Seal may store its own: either is fine
	return mk.seal(dst, plain, additional), nil
}

// Open decrypts data sealed by Seal with any key still held. It fails with
// ErrMalformedSealed for bytes Seal never made, ErrUnknownKey when the key
// they name is not held (another node's data, or a key dropped too early)
// and ErrAuthentication when they were modified or additional differs.
// The result is a new slice, empty but not nil for empty plaintext.
func (k *Keys) Open(sealed, additional []byte) ([]byte, error) {
	id, err := sealedKeyID(sealed)
	if err != nil {
		return nil, err
	}
	k.mu.RLock()
	if k.closed {
		k.mu.RUnlock()
		return nil, ErrClosed
	}
	var d dek
	found := false
	for _, x := range k.deks {
		if x.id == id {
			d, found = x, true
			break
		}
	}
	held := k.idsLocked()
	k.mu.RUnlock()
	if !found {
		return nil, fmt.Errorf("%w: key %d, held %v", ErrUnknownKey, id, held)
	}
	defer clear(d.key[:])
	mk, err := openingKey(&d, sealed, k.opening.Load())
	if err != nil {
		return nil, err
	}
	k.opening.Store(mk)
	return mk.open(sealed, additional)
}

// Generation returns the ID of the current data key. IDs only grow: a
// rotation makes the next one current.
func (k *Keys) Generation() uint64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return 0
	}
	return uint64(k.deks[len(k.deks)-1].id)
}

// RotateDEK makes a new data key current. New data is sealed with it once
// RotateDEK returns; the older keys stay, for reading, until RetireBefore
// says no data on disk needs them (with storage, after a snapshot taken
// after the rotation is saved). The key file holds the new key before any
// data is sealed with it. It fails with ErrTooManyKeys when MaxKeys keys
// are held already.
func (k *Keys) RotateDEK() error {
	var id uint32
	err := k.change(func(deks []dek, w *wrapping) ([]dek, *wrapping, error) {
		if len(deks) >= MaxKeys {
			return nil, nil, fmt.Errorf("%w: %d held", ErrTooManyKeys, len(deks))
		}
		last := deks[len(deks)-1].id
		if last == ^uint32(0) {
			return nil, nil, fmt.Errorf("keys: key IDs exhausted")
		}
		id = last + 1
		return append(deks, newDEK(id)), w, nil
	})
	if err == nil {
		k.log.Info("rotated raft data key", "key_id", id)
	}
	return err
}

// RetireBefore drops the data keys with IDs below generation, except the
// current one, and rewrites the key file without them. The caller vouches
// that no data on disk still needs them: storage calls it after it removed
// every file Open could read that was sealed with them. Nothing to drop
// makes it a no-op that touches no file.
func (k *Keys) RetireBefore(generation uint64) error {
	k.mu.RLock()
	closed := k.closed
	needed := !closed && uint64(k.deks[0].id) < generation && len(k.deks) > 1
	k.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if !needed {
		return nil
	}
	var dropped []uint32
	err := k.change(func(deks []dek, w *wrapping) ([]dek, *wrapping, error) {
		keep := deks[:0:0]
		for i, d := range deks {
			if uint64(d.id) < generation && i < len(deks)-1 {
				dropped = append(dropped, d.id)
				continue
			}
			keep = append(keep, d)
		}
		return keep, w, nil
	})
	if err == nil && len(dropped) > 0 {
		k.log.Info("dropped raft data keys no data on disk needs", "key_ids", dropped)
	}
	return err
}

// Status returns the key IDs and whether autolock is on.
func (k *Keys) Status() Status {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if k.closed {
		return Status{}
	}
	ids := k.idsLocked()
	return Status{Current: ids[len(ids)-1], Older: ids[:len(ids)-1], Autolocked: k.wrap != nil}
}

func (k *Keys) idsLocked() []uint32 {
	ids := make([]uint32, len(k.deks))
	for i, d := range k.deks {
		ids[i] = d.id
	}
	return ids
}

// Close zeroes the keys held in memory. Later calls do nothing. Close the
// Keys only after whatever seals or opens with it (the Raft node) stopped.
func (k *Keys) Close() {
	k.changeMu.Lock()
	defer k.changeMu.Unlock()
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	k.closed = true
	k.sealing.Store(nil)
	k.opening.Store(nil)
	wipe(k.deks)
	k.deks = nil
	k.wrap.wipe()
	k.wrap = nil
}

func wipe(deks []dek) {
	for i := range deks {
		clear(deks[i].key[:])
	}
}

// change computes a new state from a copy of the current one, writes it to
// the key file, and only then installs it. fn gets copies it may modify;
// it returns deks itself (possibly appended to) or a slice in new memory,
// never one that starts inside deks, and at least one key.
func (k *Keys) change(fn func(deks []dek, w *wrapping) ([]dek, *wrapping, error)) error {
	k.changeMu.Lock()
	defer k.changeMu.Unlock()

	k.mu.RLock()
	if k.closed {
		k.mu.RUnlock()
		return ErrClosed
	}
	deks := append([]dek(nil), k.deks...)
	var w *wrapping
	if k.wrap != nil {
		c := *k.wrap
		w = &c
	}
	k.mu.RUnlock()

	newDeks, newWrap, err := fn(deks, w)
	if errors.Is(err, errUnchanged) {
		wipe(deks)
		w.wipe()
		return nil
	}
	if err == nil {
		err = k.write(newDeks, newWrap)
	}
	if err != nil {
		wipe(deks)
		wipe(newDeks)
		w.wipe()
		newWrap.wipe()
		return err
	}
	// The copies fn did not pass on hold keys that are no longer used.
	if &deks[0] != &newDeks[0] {
		wipe(deks)
	}
	if w != newWrap {
		w.wipe()
	}

	k.mu.Lock()
	oldDeks, oldWrap := k.deks, k.wrap
	k.deks, k.wrap = newDeks, newWrap
	k.mu.Unlock()
	wipe(oldDeks)
	oldWrap.wipe()
	return nil
}

// errUnchanged, returned by a change function, means the state is already
// what was asked: nothing is written.
var errUnchanged = errors.New("keys: unchanged")

func (k *Keys) write(deks []dek, w *wrapping) error {
	b, err := encodeFile(deks, w)
	if err != nil {
		return err
	}
	defer clear(b)
	return writeFileAtomic(k.dir, b)
}
