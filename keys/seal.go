package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
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
// Why a key per message: AES-GCM with random 96-bit nonces is safe for
// about 2^32 messages per key, and a busy cluster can append that many
// Raft entries under one data key. A fresh 128-bit salt per message makes
// message keys collide only after about 2^64 messages, as an extended-nonce
// AEAD (XChaCha20-Poly1305, XAES-256-GCM) would, using only the standard
// library. The cost is one HMAC-SHA256 and one AES-GCM key setup per
// message, a few microseconds, which is small next to the fsync each Raft
// batch waits for (BenchmarkSeal).
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
)

// hkdfDataInfo separates message keys from every other key derived here.
const hkdfDataInfo = "shoal keys v1: raft data message key"

// dek is one data encryption key.
type dek struct {
	id  uint32
	key [32]byte
}

// sealWith seals plain under k with a new salt and nonce.
func sealWith(k *dek, plain, additional []byte) ([]byte, error) {
	out := make([]byte, sealNonceStart, sealNonceStart+gcmNonceSize+len(plain)+gcmTagSize)
	out[0] = sealFormat
	binary.BigEndian.PutUint32(out[sealIDOffset:], k.id)
	_, _ = rand.Read(out[sealSaltOffset:sealNonceStart]) // never fails
	aead, err := messageAEAD(&k.key, out[sealSaltOffset:sealNonceStart])
	if err != nil {
		return nil, err
	}
	// NewGCMWithRandomNonce draws the nonce and writes it before the
	// ciphertext.
	return aead.Seal(out, nil, plain, sealAD(out[:sealNonceStart], additional)), nil
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

// openWith opens sealed data whose key ID is k's.
func openWith(k *dek, sealed, additional []byte) ([]byte, error) {
	aead, err := messageAEAD(&k.key, sealed[sealSaltOffset:sealNonceStart])
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, nil, sealed[sealNonceStart:], sealAD(sealed[:sealNonceStart], additional))
	if err != nil {
		return nil, fmt.Errorf("%w with key %d: modified, moved, or sealed by another key file's key %d", ErrAuthentication, k.id, k.id)
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
