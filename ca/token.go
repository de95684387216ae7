package ca

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"math/big"
	"strings"
)

// A join token is
//
//	SHLTKN-1-<digest>-<secret>
//
// where SHLTKN names the format, 1 is its version, <digest> is the SHA-256
// of the root CA certificate (DER) as exactly 50 lowercase base-36 digits
// and <secret> is 128 random bits as exactly 25 lowercase base-36 digits
// (SwarmKit's SWMTKN layout). Base 36 keeps a token short and selectable
// with a double click; fixed widths make the encoding canonical.
//
// The digest lets a joining node check the root CA it fetched from an
// unverified manager before it trusts that manager with the secret; the
// secret is what the CA checks. Each role has its own token, so the secret
// alone says what the bearer may become. Rotating a token keeps the digest
// and draws a new secret; the old token stops working at once.
const (
	tokenPrefix  = "SHLTKN"
	tokenVersion = "1"
	secretSize   = 16 // bytes
)

var (
	digestDigits = base36Len(sha256.Size)
	secretDigits = base36Len(secretSize)
)

// JoinToken is a parsed join token. The zero value is no token. Its String
// is the whole token, secret included; its LogValue hides the secret, so
// slog never writes it.
type JoinToken struct {
	digest [sha256.Size]byte
	secret [secretSize]byte
}

// NewJoinToken draws a token for root with a new random secret. It is how a
// cluster makes its tokens and how it rotates one.
func NewJoinToken(root *RootCA) JoinToken {
	t := JoinToken{digest: root.digest}
	_, _ = rand.Read(t.secret[:]) // never fails
	return t
}

// ParseJoinToken parses s, which must be exactly a token as String writes
// it. Errors wrap ErrMalformedToken, say which part is wrong and never
// include the secret.
func ParseJoinToken(s string) (JoinToken, error) {
	parts := strings.Split(s, "-")
	if len(parts) != 4 || parts[0] != tokenPrefix {
		return JoinToken{}, fmt.Errorf("%w: want %s-%s-<digest>-<secret>", ErrMalformedToken, tokenPrefix, tokenVersion)
	}
	if parts[1] != tokenVersion {
		return JoinToken{}, fmt.Errorf("%w: version %.8q is not %s", ErrMalformedToken, parts[1], tokenVersion)
	}
	var t JoinToken
	if err := decodeBase36(parts[2], t.digest[:]); err != nil {
		return JoinToken{}, fmt.Errorf("%w: root CA digest: %w", ErrMalformedToken, err)
	}
	if err := decodeBase36(parts[3], t.secret[:]); err != nil {
		return JoinToken{}, fmt.Errorf("%w: secret: %w", ErrMalformedToken, err)
	}
	return t, nil
}

// String returns the whole token, secret included.
func (t JoinToken) String() string {
	if t.IsZero() {
		return ""
	}
	return tokenPrefix + "-" + tokenVersion + "-" + encodeDigest(t.digest) + "-" + base36(t.secret[:], secretDigits)
}

// LogValue writes the token with its secret hidden.
func (t JoinToken) LogValue() slog.Value {
	if t.IsZero() {
		return slog.StringValue("")
	}
	return slog.StringValue(tokenPrefix + "-" + tokenVersion + "-" + encodeDigest(t.digest) + "-<secret>")
}

// IsZero reports whether t is the zero JoinToken.
func (t JoinToken) IsZero() bool { return t == JoinToken{} }

// RootDigest returns the digest of the root CA certificate the token names,
// encoded as in the token.
func (t JoinToken) RootDigest() string { return encodeDigest(t.digest) }

// CheckRootCA returns nil when root is the root CA the token names, and an
// error wrapping ErrRootCAMismatch otherwise. A joining node calls it on the
// root it fetched, before it sends the token anywhere.
func (t JoinToken) CheckRootCA(root *RootCA) error {
	if t.digest != root.digest {
		return fmt.Errorf("%w: the root CA has digest %s, the token names %s", ErrRootCAMismatch, root.Digest(), t.RootDigest())
	}
	return nil
}

// ValidateJoinToken checks a token presented by a joining node (presented)
// against the cluster's current token for the role it asks for (current,
// "" when joining with that role is disabled), under root. It returns nil
// or an error wrapping ErrJoinDisabled, ErrMalformedToken,
// ErrRootCAMismatch or ErrInvalidToken. The secrets are compared in
// constant time.
func ValidateJoinToken(root *RootCA, current, presented string) error {
	if current == "" {
		return ErrJoinDisabled
	}
	got, err := ParseJoinToken(presented)
	if err != nil {
		return err
	}
	if err := got.CheckRootCA(root); err != nil {
		return err
	}
	want, err := ParseJoinToken(current)
	if err != nil {
		// Not %w: the presented token is not the malformed one.
		return fmt.Errorf("ca: the cluster's current join token is unusable: %v", err)
	}
	// The digests are public; the secrets are compared without a timing
	// signal. A current token left over from a replaced root matches
	// nothing.
	if want.digest != root.digest || subtle.ConstantTimeCompare(got.secret[:], want.secret[:]) != 1 {
		return ErrInvalidToken
	}
	return nil
}

func encodeDigest(d [sha256.Size]byte) string { return base36(d[:], digestDigits) }

// base36Len is the number of base-36 digits that hold any n-byte value.
func base36Len(n int) int {
	max := new(big.Int).Lsh(big.NewInt(1), uint(8*n))
	return len(max.Sub(max, big.NewInt(1)).Text(36))
}

// base36 writes b, a big-endian number, in lowercase base 36, left-padded
// with zeros to width digits.
func base36(b []byte, width int) string {
	s := new(big.Int).SetBytes(b).Text(36)
	return strings.Repeat("0", width-len(s)) + s
}

// decodeBase36 reads exactly base36Len(len(dst)) lowercase base-36 digits
// into dst, refusing values that do not fit, so that every value has one
// spelling.
func decodeBase36(s string, dst []byte) error {
	width := base36Len(len(dst))
	if len(s) != width {
		return fmt.Errorf("%d characters, want %d", len(s), width)
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z') {
			return fmt.Errorf("characters other than 0-9 and a-z")
		}
	}
	n, ok := new(big.Int).SetString(s, 36)
	if !ok || n.BitLen() > 8*len(dst) {
		return fmt.Errorf("value out of range")
	}
	n.FillBytes(dst)
	return nil
}
