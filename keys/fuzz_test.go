package keys

import (
	"bytes"
	"errors"
	"testing"
)

// The key file comes from disk: parsing any bytes must fail cleanly or give
// keys that write back to the same bytes (an unlocked file has one
// encoding).
func FuzzParseKeyFile(f *testing.F) {
	deks := []dek{{id: 1}, {id: 3, key: [32]byte{1, 2, 3}}}
	plain, err := encodeFile(deks, nil)
	if err != nil {
		f.Fatal(err)
	}
	w, err := deriveWrapping(&UnlockKey{})
	if err != nil {
		f.Fatal(err)
	}
	locked, err := encodeFile(deks, w)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(plain)
	f.Add(locked)
	f.Add([]byte(fileMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseFile(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parse error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		got, err := c.unwrap(w)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrWrongUnlockKey) {
				t.Fatalf("unwrap error %v", err)
			}
			return
		}
		if c.mode == modeUnlocked {
			again, err := encodeFile(got, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("keys parsed from %x write back as %x", b, again)
			}
		}
	})
}

// Sealed data comes from disk: Open must refuse anything Seal did not make
// with these keys and this context, and never panic.
func FuzzOpenSealed(f *testing.F) {
	k := &Keys{log: testConfig(f).withDefaults().Logger, deks: []dek{{id: 1, key: [32]byte{9}}, {id: 2, key: [32]byte{7}}}}
	good, err := k.Seal([]byte("SHOAL-MARKER-7f3a"), []byte("ctx"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, []byte("ctx"))
	f.Add([]byte{1, 0, 0, 0, 1}, []byte(nil))
	f.Add(make([]byte, SealOverhead), []byte(nil))
	f.Fuzz(func(t *testing.T, sealed, ad []byte) {
		plain, err := k.Open(sealed, ad)
		if err == nil {
			// Each fuzzing process seals its own seed, so compare what
			// it opened to, not the bytes.
			if string(ad) != "ctx" || string(plain) != "SHOAL-MARKER-7f3a" {
				t.Fatalf("Open accepted %x (context %q) as %q", sealed, ad, plain)
			}
			return
		}
		if !errors.Is(err, ErrMalformedSealed) && !errors.Is(err, ErrUnknownKey) && !errors.Is(err, ErrAuthentication) {
			t.Fatalf("Open error %v is none of the documented ones", err)
		}
	})
}

// Unlock keys come from users: parsing must fail cleanly, and a parsed key
// has exactly one spelling.
func FuzzParseUnlockKey(f *testing.F) {
	f.Add(NewUnlockKey().String())
	f.Add("SHLKEY-1-")
	f.Add("SHLKEY-1-" + "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz")
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseUnlockKey(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedUnlockKey) {
				t.Fatalf("error %v does not wrap ErrMalformedUnlockKey", err)
			}
			return
		}
		again, err := ParseUnlockKey(u.String())
		if err != nil || !again.Equal(u) {
			t.Fatalf("%q parsed, but its String %q does not parse back to it: %v", s, u.String(), err)
		}
	})
}
