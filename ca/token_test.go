package ca

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestTokenWidths(t *testing.T) {
	if digestDigits != 50 || secretDigits != 25 {
		t.Fatalf("digest and secret widths = %d, %d; the format says 50, 25", digestDigits, secretDigits)
	}
}

func TestJoinTokenFormat(t *testing.T) {
	var counting [32]byte
	for i := range counting {
		counting[i] = byte(i)
	}
	var ones [16]byte
	for i := range ones {
		ones[i] = 0xff
	}
	tests := []struct {
		name  string
		token JoinToken
		want  string
	}{
		{"zero is no token", JoinToken{}, ""},
		{"small values are zero-padded", JoinToken{secret: [16]byte{15: 1}},
			"SHLTKN-1-" + strings.Repeat("0", 50) + "-0000000000000000000000001"},
		{"largest secret", JoinToken{digest: counting, secret: ones},
			"SHLTKN-1-0004kt6yh5gguqfu8e93hara9xtyf5l309wcar43f213wip34v-f5lxx1zz5pnorynqglhzmsp33"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.token.String()
			if got != tt.want {
				t.Fatalf("String = %q, want %q", got, tt.want)
			}
			if got == "" {
				return
			}
			back, err := ParseJoinToken(got)
			if err != nil || back != tt.token {
				t.Fatalf("ParseJoinToken(String) = %v, %v; want the token back", back, err)
			}
		})
	}
}

func TestParseJoinTokenRefuses(t *testing.T) {
	valid := NewJoinToken(newTestRoot(t, "c1"))
	digest, secret := valid.RootDigest(), strings.Split(valid.String(), "-")[3]
	tests := []struct {
		name, token, wantText string
	}{
		{"empty", "", "want SHLTKN-1"},
		{"another product's prefix", "SWMTKN-1-" + digest + "-" + secret, "want SHLTKN-1"},
		{"lowercase prefix", "shltkn-1-" + digest + "-" + secret, "want SHLTKN-1"},
		{"unknown version", "SHLTKN-2-" + digest + "-" + secret, "version"},
		{"missing secret", "SHLTKN-1-" + digest, "want SHLTKN-1"},
		{"extra part", "SHLTKN-1-" + digest + "-" + secret + "-x", "want SHLTKN-1"},
		{"short digest", "SHLTKN-1-" + digest[1:] + "-" + secret, "root CA digest: 49 characters"},
		{"long digest", "SHLTKN-1-0" + digest + "-" + secret, "root CA digest: 51 characters"},
		{"uppercase digest", "SHLTKN-1-" + strings.ToUpper(digest) + "-" + secret, "root CA digest: characters"},
		{"digest over 256 bits", "SHLTKN-1-" + strings.Repeat("z", 50) + "-" + secret, "root CA digest: value out of range"},
		{"short secret", "SHLTKN-1-" + digest + "-" + secret[1:], "secret: 24 characters"},
		{"secret over 128 bits", "SHLTKN-1-" + digest + "-" + strings.Repeat("z", 25), "secret: value out of range"},
		{"secret with a symbol", "SHLTKN-1-" + digest + "-" + secret[1:] + "_", "secret: characters"},
		{"surrounding space", " " + valid.String() + "\n", "want SHLTKN-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseJoinToken(tt.token)
			if !errors.Is(err, ErrMalformedToken) {
				t.Fatalf("ParseJoinToken = %v, want ErrMalformedToken", err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("error %q does not say %q", err, tt.wantText)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

func TestJoinTokenLogValueHidesSecret(t *testing.T) {
	tok := NewJoinToken(newTestRoot(t, "c1"))
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("joining", "token", tok)
	secret := strings.Split(tok.String(), "-")[3]
	if strings.Contains(buf.String(), secret) {
		t.Fatalf("the log shows the secret: %s", buf.String())
	}
	if !strings.Contains(buf.String(), tok.RootDigest()) {
		t.Fatalf("the log lacks the digest: %s", buf.String())
	}
}

func TestValidateJoinToken(t *testing.T) {
	root := newTestRoot(t, "c1")
	otherRoot := newTestRoot(t, "c2")
	current := NewJoinToken(root)
	rotatedAway := NewJoinToken(root) // a token the cluster had before `current`
	tests := []struct {
		name               string
		current, presented string
		want               error
	}{
		{"the current token", current.String(), current.String(), nil},
		{"role disabled", "", current.String(), ErrJoinDisabled},
		{"malformed", current.String(), "SHLTKN-1-nope", ErrMalformedToken},
		{"rotated token", current.String(), rotatedAway.String(), ErrInvalidToken},
		{"another cluster's token", current.String(), NewJoinToken(otherRoot).String(), ErrRootCAMismatch},
		{"current token of a replaced root", NewJoinToken(otherRoot).String(), current.String(), ErrInvalidToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateJoinToken(root, tt.current, tt.presented)
			if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
				t.Fatalf("ValidateJoinToken = %v, want %v", err, tt.want)
			}
		})
	}
	if err := ValidateJoinToken(root, "garbage", current.String()); err == nil || errors.Is(err, ErrMalformedToken) {
		t.Errorf("an unusable stored token = %v; want an error that does not blame the presented token", err)
	}
}

func TestNewIDs(t *testing.T) {
	a, b := NewID(), NewID()
	if a == b || len(a) != 25 {
		t.Fatalf("NewID = %q, %q; want two different 25-character IDs", a, b)
	}
	if err := validateID("node ID", a); err != nil {
		t.Fatal(err)
	}
}
