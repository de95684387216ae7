package keys

import (
	"crypto/rand"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
)

// An unlock key is
//
//	SHLKEY-1-<key>
//
// where SHLKEY names the format, 1 is its version and <key> is 256 random
// bits as exactly 50 lowercase base-36 digits (the layout of SwarmKit's
// SWMKEY and of shoal's join tokens). Base 36 keeps the key selectable with
// a double click and easy to read aloud; the fixed width makes the encoding
// canonical, so one key has one spelling.
const (
	unlockKeyPrefix  = "SHLKEY"
	unlockKeyVersion = "1"
	unlockKeySize    = 32 // bytes
)

var unlockKeyDigits = base36Len(unlockKeySize)

// UnlockKey is the key-encryption key of an autolocked key file. Its String
// is the whole key; its LogValue hides it, so slog never writes it. Wipe
// zeroes it once it is no longer needed. Methods are not safe for use while
// another goroutine calls Wipe.
type UnlockKey struct {
	b [unlockKeySize]byte
}

// NewUnlockKey draws a new random unlock key.
func NewUnlockKey() *UnlockKey {
	u := &UnlockKey{}
	_, _ = rand.Read(u.b[:]) // never fails (crypto/rand since Go 1.24)
	return u
}

// ParseUnlockKey parses s, which must be an unlock key as String writes it;
// white space around it (a pasted line) is ignored. Errors wrap
// ErrMalformedUnlockKey, say which part is wrong and never include the key.
func ParseUnlockKey(s string) (*UnlockKey, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 || parts[0] != unlockKeyPrefix {
		return nil, fmt.Errorf("%w: want %s-%s-<key>", ErrMalformedUnlockKey, unlockKeyPrefix, unlockKeyVersion)
	}
	if parts[1] != unlockKeyVersion {
		return nil, fmt.Errorf("%w: version %.8q is not %s", ErrMalformedUnlockKey, parts[1], unlockKeyVersion)
	}
	u := &UnlockKey{}
	if err := decodeBase36(parts[2], u.b[:]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedUnlockKey, err)
	}
	return u, nil
}

// String returns the whole key, for printing it once to the user.
func (u *UnlockKey) String() string {
	return unlockKeyPrefix + "-" + unlockKeyVersion + "-" + base36(u.b[:], unlockKeyDigits)
}

// LogValue hides the key.
func (u *UnlockKey) LogValue() slog.Value {
	return slog.StringValue(unlockKeyPrefix + "-" + unlockKeyVersion + "-<hidden>")
}

// Equal reports whether u and o are the same key.
func (u *UnlockKey) Equal(o *UnlockKey) bool { return u.b == o.b }

// Wipe zeroes the key. A string returned by String cannot be wiped: Go
// strings are immutable, so keep them short-lived.
func (u *UnlockKey) Wipe() { clear(u.b[:]) }

// base36Len is the number of base-36 digits that every value of n bytes
// fits in.
func base36Len(n int) int {
	max := new(big.Int).Lsh(big.NewInt(1), uint(8*n))
	return len(new(big.Int).Sub(max, big.NewInt(1)).Text(36))
}

// base36 writes b, big-endian, as exactly digits lowercase base-36 digits.
func base36(b []byte, digits int) string {
	s := new(big.Int).SetBytes(b).Text(36)
	return strings.Repeat("0", digits-len(s)) + s
}

// decodeBase36 fills out from exactly base36Len(len(out)) lowercase base-36
// digits. big.Int alone would accept upper case and any length; checking
// first keeps one spelling per key.
func decodeBase36(s string, out []byte) error {
	if want := base36Len(len(out)); len(s) != want {
		return fmt.Errorf("key has %d digits, want %d", len(s), want)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return fmt.Errorf("key has a character that is not a lowercase base-36 digit at position %d", i)
		}
	}
	v, ok := new(big.Int).SetString(s, 36)
	if !ok || v.BitLen() > 8*len(out) {
		return fmt.Errorf("key is out of range")
	}
	v.FillBytes(out)
	return nil
}
