package keys

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestParseUnlockKey(t *testing.T) {
	valid := NewUnlockKey()
	s := valid.String()
	digits := s[len("SHLKEY-1-"):]
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "as String writes it", in: s},
		{name: "pasted with a newline and spaces", in: "  " + s + "\n"},
		{name: "all zero", in: "SHLKEY-1-" + strings.Repeat("0", 50)},
		{name: "largest 256-bit value", in: "SHLKEY-1-" + base36(bytes.Repeat([]byte{0xff}, 32), 50)},
		{name: "empty", in: "", wantErr: true},
		{name: "a join token", in: "SHLTKN-1-" + digits, wantErr: true},
		{name: "SwarmKit's prefix", in: "SWMKEY-1-" + digits, wantErr: true},
		{name: "lowercase prefix", in: "shlkey-1-" + digits, wantErr: true},
		{name: "version 2", in: "SHLKEY-2-" + digits, wantErr: true},
		{name: "no version", in: "SHLKEY-" + digits, wantErr: true},
		{name: "one digit short", in: "SHLKEY-1-" + digits[1:], wantErr: true},
		{name: "one digit long", in: "SHLKEY-1-0" + digits, wantErr: true},
		{name: "upper case digits", in: "SHLKEY-1-" + strings.ToUpper(strings.Repeat("a", 50)), wantErr: true},
		{name: "a character outside base 36", in: "SHLKEY-1-" + digits[:49] + "!", wantErr: true},
		{name: "an extra part", in: s + "-x", wantErr: true},
		{name: "a space inside", in: "SHLKEY-1- " + digits[1:], wantErr: true},
		{name: "above 2^256", in: "SHLKEY-1-" + strings.Repeat("z", 50), wantErr: true},
		{name: "plus sign that big.Int would take", in: "SHLKEY-1-+" + digits[1:], wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ParseUnlockKey(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformedUnlockKey) {
					t.Fatalf("error = %v, want ErrMalformedUnlockKey", err)
				}
				if len(digits) > 8 && strings.Contains(err.Error(), digits[:8]) {
					t.Fatalf("error %q repeats the key", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseUnlockKey: %v", err)
			}
			if got := u.String(); got != strings.TrimSpace(tt.in) {
				t.Fatalf("String = %q, want %q", got, strings.TrimSpace(tt.in))
			}
		})
	}
}

func TestUnlockKeyNeverLogged(t *testing.T) {
	u := NewUnlockKey()
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "unlock_key", u)
	if strings.Contains(buf.String(), u.String()[9:]) {
		t.Fatalf("log line %q holds the key", buf.String())
	}
}

func TestUnlockKeyWipe(t *testing.T) {
	u := NewUnlockKey()
	u.Wipe()
	if u.b != [32]byte{} {
		t.Fatal("Wipe left key bytes")
	}
}

func TestNewUnlockKeysDiffer(t *testing.T) {
	if NewUnlockKey().Equal(NewUnlockKey()) {
		t.Fatal("two new unlock keys are equal")
	}
}
