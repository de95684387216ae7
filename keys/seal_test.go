package keys

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustCreate(t, testConfig(t))
	tests := []struct {
		name  string
		plain []byte
		ad    []byte
	}{
		{name: "nil", plain: nil},
		{name: "empty with context", plain: []byte{}, ad: []byte("entry 1")},
		{name: "short", plain: []byte("SHOAL-MARKER-7f3a"), ad: []byte("entry 2")},
		{name: "1 MiB", plain: bytes.Repeat([]byte("x"), 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := k.Seal(tt.plain, tt.ad)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != len(tt.plain)+SealOverhead {
				t.Fatalf("sealed %d bytes into %d, want overhead %d", len(tt.plain), len(sealed), SealOverhead)
			}
			if len(tt.plain) >= 8 && bytes.Contains(sealed, tt.plain[:8]) {
				t.Fatal("sealed bytes hold the plaintext")
			}
			got, err := k.Open(sealed, tt.ad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tt.plain) || got == nil {
				t.Fatalf("Open returned %d bytes (nil %v), want %d", len(got), got == nil, len(tt.plain))
			}
		})
	}
}

// TestAppendSeal seals two messages one after the other into one buffer:
// the bytes before each are kept, and each opens on its own.
func TestAppendSeal(t *testing.T) {
	k := mustCreate(t, testConfig(t))
	buf := []byte("head")
	buf, err := k.AppendSeal(buf, []byte("first"), []byte("ad 1"))
	if err != nil {
		t.Fatal(err)
	}
	mid := len(buf)
	if buf, err = k.AppendSeal(buf, []byte("second"), []byte("ad 2")); err != nil {
		t.Fatal(err)
	}
	if string(buf[:4]) != "head" || mid != 4+len("first")+SealOverhead || len(buf) != mid+len("second")+SealOverhead {
		t.Fatalf("buffer of %d bytes, first seal ending at %d", len(buf), mid)
	}
	for _, m := range []struct{ sealed, plain, ad string }{
		{string(buf[4:mid]), "first", "ad 1"},
		{string(buf[mid:]), "second", "ad 2"},
	} {
		got, err := k.Open([]byte(m.sealed), []byte(m.ad))
		if err != nil || string(got) != m.plain {
			t.Errorf("Open = %q, %v; want %q", got, err, m.plain)
		}
	}
}

func TestSealIsRandomized(t *testing.T) {
	k := mustCreate(t, testConfig(t))
	a, b := mustSeal(t, k, "same", "ad"), mustSeal(t, k, "same", "ad")
	if bytes.Equal(a, b) {
		t.Fatal("two seals of the same plaintext are equal")
	}
}

func TestOpenRefuses(t *testing.T) {
	cfg := testConfig(t)
	k := mustCreate(t, cfg)
	other := mustCreate(t, testConfig(t))
	sealed := mustSeal(t, k, "SHOAL-MARKER-7f3a", "entry 7 term 2")
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 0x01
		return b
	}
	tests := []struct {
		name   string
		keys   *Keys
		sealed []byte
		ad     string
		want   error
	}{
		{name: "other context", keys: k, sealed: sealed, ad: "entry 8 term 2", want: ErrAuthentication},
		{name: "no context", keys: k, sealed: sealed, ad: "", want: ErrAuthentication},
		{name: "another node's keys", keys: other, sealed: sealed, ad: "entry 7 term 2", want: ErrAuthentication},
		{name: "unknown format", keys: k, sealed: flip(0), ad: "entry 7 term 2", want: ErrMalformedSealed},
		{name: "key ID changed", keys: k, sealed: flip(4), ad: "entry 7 term 2", want: ErrUnknownKey},
		{name: "salt changed", keys: k, sealed: flip(sealSaltOffset), ad: "entry 7 term 2", want: ErrAuthentication},
		{name: "nonce changed", keys: k, sealed: flip(sealNonceStart), ad: "entry 7 term 2", want: ErrAuthentication},
		{name: "ciphertext changed", keys: k, sealed: flip(sealNonceStart + gcmNonceSize + 3), ad: "entry 7 term 2", want: ErrAuthentication},
		{name: "tag changed", keys: k, sealed: flip(len(sealed) - 1), ad: "entry 7 term 2", want: ErrAuthentication},
		{name: "truncated", keys: k, sealed: sealed[:len(sealed)-1], ad: "entry 7 term 2", want: ErrAuthentication},
		{name: "shorter than the overhead", keys: k, sealed: sealed[:SealOverhead-1], ad: "entry 7 term 2", want: ErrMalformedSealed},
		{name: "empty", keys: k, sealed: nil, want: ErrMalformedSealed},
		{name: "plaintext", keys: k, sealed: []byte(strings.Repeat("SHOAL-MARKER-7f3a", 4)), want: ErrMalformedSealed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.keys.Open(tt.sealed, []byte(tt.ad))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %q, %v; want %v", got, err, tt.want)
			}
			t.Logf("error: %v", err)
		})
	}
}

// Every single-bit change anywhere in sealed data is refused.
func TestOpenRefusesEveryBitFlip(t *testing.T) {
	k := mustCreate(t, testConfig(t))
	sealed := mustSeal(t, k, "payload", "ad")
	for bit := 0; bit < len(sealed)*8; bit++ {
		b := bytes.Clone(sealed)
		b[bit/8] ^= 1 << (bit % 8)
		if got, err := k.Open(b, []byte("ad")); err == nil {
			t.Fatalf("bit %d flipped: Open = %q, want an error", bit, got)
		}
	}
}

func TestUseAfterClose(t *testing.T) {
	k := mustCreate(t, testConfig(t))
	sealed := mustSeal(t, k, "x", "")
	k.Close()
	k.Close()
	if _, err := k.Seal(nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Seal after Close: %v", err)
	}
	if _, err := k.Open(sealed, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close: %v", err)
	}
	if err := k.RotateDEK(); !errors.Is(err, ErrClosed) {
		t.Errorf("RotateDEK after Close: %v", err)
	}
	if err := k.RetireBefore(5); !errors.Is(err, ErrClosed) {
		t.Errorf("RetireBefore after Close: %v", err)
	}
	if _, err := k.EnableAutolock(); !errors.Is(err, ErrClosed) {
		t.Errorf("EnableAutolock after Close: %v", err)
	}
	if k.deks != nil || k.Generation() != 0 {
		t.Error("Close kept keys")
	}
}

// Seal and Open run on the Raft goroutines while the manager rotates keys
// and toggles autolock.
func TestConcurrentUse(t *testing.T) {
	k := mustCreate(t, testConfig(t))
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				ad := []byte{byte(g), byte(i)}
				sealed, err := k.Seal([]byte("data"), ad)
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := k.Open(sealed, ad); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 5 {
			if err := k.RotateDEK(); err != nil {
				t.Error(err)
				return
			}
			if _, err := k.EnableAutolock(); err != nil {
				t.Error(err)
				return
			}
			if err := k.DisableAutolock(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if st := k.Status(); st.Current != 6 || len(st.Older) != 5 {
		t.Fatalf("status %+v, want current 6 and 5 older keys", st)
	}
}

func saltOf(sealed []byte) string { return string(sealed[sealSaltOffset:sealNonceStart]) }

// A message key seals maxMessageKeyUses messages, each with its own nonce,
// then the next one gets a new salt; a rotation changes the salt at once.
// Everything opens whichever message key sealed it.
func TestMessageKeysAreBoundedAndRenewed(t *testing.T) {
	k := mustCreate(t, testConfig(t))
	first := mustSeal(t, k, "one", "ad")
	second := mustSeal(t, k, "two", "ad")
	if saltOf(first) != saltOf(second) {
		t.Fatal("two seals in a row derived two message keys")
	}
	if string(first[sealNonceStart:sealNonceStart+gcmNonceSize]) == string(second[sealNonceStart:sealNonceStart+gcmNonceSize]) {
		t.Fatal("two seals under one message key share a nonce")
	}
	k.sealing.Load().uses.Store(maxMessageKeyUses)
	third := mustSeal(t, k, "three", "ad")
	if saltOf(third) == saltOf(second) {
		t.Fatalf("a message key sealed more than %d messages", maxMessageKeyUses)
	}
	if err := k.RotateDEK(); err != nil {
		t.Fatal(err)
	}
	fourth := mustSeal(t, k, "four", "ad")
	if saltOf(fourth) == saltOf(third) {
		t.Fatal("the message key of a rotated-out data key still seals")
	}
	for i, sealed := range [][]byte{first, second, third, fourth, first} {
		if _, err := k.Open(sealed, []byte("ad")); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}
