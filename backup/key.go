package backup

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// MinKeyBytes is the shortest secret a key file may hold.
const MinKeyBytes = 16

// ErrBadKeyFile is wrapped by the errors of a key file that cannot be
// used: missing, unreadable, or too short.
var ErrBadKeyFile = errors.New("unusable key file")

// keyFileError is ErrBadKeyFile for one file.
type keyFileError struct{ msg string }

func (e keyFileError) Error() string        { return e.msg }
func (e keyFileError) Is(target error) bool { return target == ErrBadKeyFile }

// badKeyFile says what is wrong with the key file at path, and what to
// do: give the one a backup was saved with, or make one.
func badKeyFile(path, format string, args ...any) error {
	return keyFileError{fmt.Sprintf(format, args...) + fmt.Sprintf(
		": give the key file the backup was saved with, or, for new backups, make one with 'head -c 32 /dev/urandom | base64 > %s' and keep it apart from them", path)}
}

// The HKDF info strings: one key seals the frames, the other makes the
// header's check value.
const (
	infoFrames = "shoal backup format 1: AES-256-GCM frames"
	infoCheck  = "shoal backup format 1: key check"
)

// Key is the secret of a key file, which encrypts backups.
type Key struct {
	name   string // where it came from, for messages
	secret []byte
}

// LoadKeyFile reads a key file: any secret of at least MinKeyBytes bytes
// once white space around it is trimmed.
func LoadKeyFile(path string) (*Key, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, badKeyFile(path, "the key file %s does not exist", path)
	case err != nil:
		return nil, keyFileError{fmt.Sprintf("reading the key file: %v", err)}
	}
	return NewKey(path, b)
}

// NewKey returns the key of a key file's contents b, named name in
// messages.
func NewKey(name string, b []byte) (*Key, error) {
	secret := bytes.TrimSpace(b)
	if len(secret) < MinKeyBytes {
		return nil, badKeyFile(name, "the key file %s holds %d bytes, and a key needs at least %d", name, len(secret), MinKeyBytes)
	}
	return &Key{name: name, secret: bytes.Clone(secret)}, nil
}

// Name is where the key came from.
func (k *Key) Name() string { return k.name }

// derive returns the cipher of the frames and the check value of a file
// with salt.
func (k *Key) derive(salt []byte) (cipher.AEAD, []byte, error) {
	key, err := hkdf.Key(sha256.New, k.secret, salt, infoFrames, 32)
	if err != nil {
		return nil, nil, err
	}
	check, err := hkdf.Key(sha256.New, k.secret, salt, infoCheck, 32)
	if err != nil {
		return nil, nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, err
	}
	return aead, check, nil
}

// frameNonce is frame number's nonce: the number, big-endian, in the last
// 8 bytes. A file has a key of its own (its salt is random), so a number
// is never used twice with one key.
func frameNonce(nonce []byte, number uint64) []byte {
	clear(nonce)
	for i := range 8 {
		nonce[len(nonce)-1-i] = byte(number >> (8 * i))
	}
	return nonce
}

// frameAD is frame number's additional data: the digest of the file's
// magic and header, the number, and whether it is the last.
func frameAD(ad []byte, headerDigest []byte, number uint64, last bool) []byte {
	ad = append(ad[:0], headerDigest...)
	for i := 7; i >= 0; i-- {
		ad = append(ad, byte(number>>(8*i)))
	}
	if last {
		return append(ad, 1)
	}
	return append(ad, 0)
}
