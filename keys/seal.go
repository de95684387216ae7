package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"
)

// Sealed data is
//
//	format (1 byte) | key ID (4 bytes, big-endian) | salt (16) | nonce (12) | ciphertext | tag (16)
//
// Format 1 is AES-256-GCM under a message key HKDF-Expand-SHA256(data key,
// label || salt). The additional data authenticated with
// it is the first 21 bytes (format, key ID, salt) followed by the caller's
// additional data, so neither the key ID nor the context can be changed.
//
// Why message keys: AES-GCM with random 96-bit nonces is safe for about
// 2^32 messages per key, and a busy cluster can append that many Raft
// entries under one data key. So the data key never seals itself: a
// message key derived from it with a fresh random 128-bit salt seals at
// most maxMessageKeyUses messages, each with its own random nonce, and then
// the next message gets a new salt and a new message key. Under one message
// key the chance of a repeated nonce is then below 2^-49, and message keys
// repeat only after about 2^64 derivations, as with an extended-nonce AEAD
// (XChaCha20-Poly1305, XAES-256-GCM), using only the standard library. A
// message key is derived once and kept (one HMAC-SHA256 and one AES-GCM key
// setup, a few microseconds, which used to be paid per Raft entry:
// BenchmarkSeal); Open keeps the last one it derived, since consecutive
// entries share their salt.
const (
	sealFormat     = 1
	sealIDOffset   = 1
	sealSaltOffset = sealIDOffset + 4
	sealNonceStart = sealSaltOffset + saltSize
	saltSize       = 16
	gcmNonceSize   = 12
	gcmTagSize     = 16

	// SealOverhead is the number of bytes Seal adds to the plaintext.
	SealOverhead = sealNonceStart + gcmNonceSize + gcmTagSize

	// maxMessageKeyUses is how many messages one message key seals.
	maxMessageKeyUses = 1 << 24
)

// hkdfDataInfo separates message keys from every other key derived here.
const hkdfDataInfo = "shoal keys v1: raft data message key"

// dek is one data encryption key.
type dek struct {
	id  uint32
	key [32]byte
}

// messageKey is AES-256-GCM under the message key of one data key and salt.
// An AEAD of crypto/cipher is safe for concurrent use.
type messageKey struct {
	id   uint32
	salt [saltSize]byte
	aead cipher.AEAD
	uses atomic.Uint64 // messages sealed, or claimed to be sealed, under it
}

// newMessageKey derives a message key of k with a new salt.
func newMessageKey(k *dek) (*messageKey, error) {
	mk := &messageKey{id: k.id}
	_, _ = rand.Read(mk.salt[:]) // never fails
	aead, err := messageAEAD(&k.key, mk.salt[:])
	if err != nil {
		return nil, err
	}
	mk.aead = aead
	return mk, nil
}

// claim reports whether mk may seal one more message, counting it.
func (mk *messageKey) claim() bool {
	return mk.uses.Add(1) <= maxMessageKeyUses
}

// seal appends plain sealed under mk with a new nonce to dst.
func (mk *messageKey) seal(dst, plain, additional []byte) []byte {
	start := len(dst)
	out := slices.Grow(dst, sealNonceStart+gcmNonceSize+len(plain)+gcmTagSize)[:start+sealNonceStart]
	head := out[start:]
	head[0] = sealFormat
	binary.BigEndian.PutUint32(head[sealIDOffset:], mk.id)
	copy(head[sealSaltOffset:sealNonceStart], mk.salt[:])
	// NewGCMWithRandomNonce draws the nonce and writes it before the
	// ciphertext.
	return mk.aead.Seal(out, nil, plain, sealAD(head, additional))
}

// sealedKeyID returns the key ID of sealed data after checking its framing.
func sealedKeyID(sealed []byte) (uint32, error) {
	if len(sealed) < SealOverhead {
		return 0, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformedSealed, len(sealed), SealOverhead)
	}
	if sealed[0] != sealFormat {
		return 0, fmt.Errorf("%w: format %d, want %d", ErrMalformedSealed, sealed[0], sealFormat)
	}
	return binary.BigEndian.Uint32(sealed[sealIDOffset:]), nil
}

// openingKey returns the message key that opens sealed, whose key ID is
// k's: last if it is that key's for the same salt, else a new one.
func openingKey(k *dek, sealed []byte, last *messageKey) (*messageKey, error) {
	salt := sealed[sealSaltOffset:sealNonceStart]
	if last != nil && last.id == k.id && string(last.salt[:]) == string(salt) {
		return last, nil
	}
	mk := &messageKey{id: k.id}
	copy(mk.salt[:], salt)
	aead, err := messageAEAD(&k.key, salt)
	if err != nil {
		return nil, err
	}
	mk.aead = aead
	return mk, nil
}

// open opens sealed data under mk.
func (mk *messageKey) open(sealed, additional []byte) ([]byte, error) {
	plain, err := mk.aead.Open(nil, nil, sealed[sealNonceStart:], sealAD(sealed[:sealNonceStart], additional))
	if err != nil {
		return nil, fmt.Errorf("%w with key %d: modified, moved, or sealed by another key file's key %d", ErrAuthentication, mk.id, mk.id)
	}
	if plain == nil {
		// Callers tell empty data from none by nil.
		plain = []byte{}
	}
	return plain, nil
}

func sealAD(header, additional []byte) []byte {
	ad := make([]byte, 0, len(header)+len(additional))
	return append(append(ad, header...), additional...)
}

// messageAEAD returns AES-256-GCM under the message key for salt.
func messageAEAD(key *[32]byte, salt []byte) (cipher.AEAD, error) {
	// The DEK is uniformly random already, so HKDF's extract step adds
	// nothing (RFC 5869, section 3.3): expand it with the salt in the info.
	mk, err := hkdf.Expand(sha256.New, key[:], hkdfDataInfo+string(salt), 32)
	if err != nil {
		return nil, fmt.Errorf("keys: derive message key: %w", err)
	}
	defer clear(mk)
	return newGCM(mk)
}

// newGCM returns AES-256-GCM with random nonces under key.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return aead, nil
}
