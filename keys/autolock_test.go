package keys

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func mustUnlock(t testing.TB, cfg Config, u *UnlockKey) *Keys {
	t.Helper()
	k, err := Unlock(cfg, u)
	if err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	t.Cleanup(k.Close)
	return k
}

func checkLocked(t testing.TB, cfg Config) {
	t.Helper()
	k, locked, err := Open(cfg)
	if err != nil || !locked || k != nil {
		t.Fatalf("Open = %v, locked %v, error %v; want locked", k, locked, err)
	}
}

// The story of autolock: enable, restart locked, a wrong key refused, the
// right key accepted, the key rotated, autolock disabled.
func TestAutolock(t *testing.T) {
	cfg := testConfig(t)
	k := mustCreate(t, cfg)
	sealed := mustSeal(t, k, "raft data", "ctx")

	u1, err := k.EnableAutolock()
	if err != nil {
		t.Fatal(err)
	}
	if !k.Autolocked() || !k.Status().Autolocked {
		t.Fatal("not autolocked after EnableAutolock")
	}
	if _, err := k.EnableAutolock(); !errors.Is(err, ErrAutolocked) {
		t.Fatalf("second EnableAutolock: %v, want ErrAutolocked", err)
	}
	// Seal keeps working while locked on disk.
	sealed2 := mustSeal(t, k, "more raft data", "ctx2")
	k.Close()

	checkLocked(t, cfg)
	if _, err := Unlock(cfg, NewUnlockKey()); !errors.Is(err, ErrWrongUnlockKey) {
		t.Fatalf("Unlock with another key: %v, want ErrWrongUnlockKey", err)
	} else if err.Error() != "keys: wrong unlock key" {
		t.Fatalf("message %q", err)
	}
	k = mustUnlock(t, cfg, u1)
	checkOpens(t, k, sealed, "ctx", "raft data")
	checkOpens(t, k, sealed2, "ctx2", "more raft data")

	u2, err := k.RotateUnlockKey()
	if err != nil {
		t.Fatal(err)
	}
	if u2.Equal(u1) {
		t.Fatal("RotateUnlockKey returned the same key")
	}
	k.Close()
	if _, err := Unlock(cfg, u1); !errors.Is(err, ErrWrongUnlockKey) {
		t.Fatalf("Unlock with the rotated-out key: %v, want ErrWrongUnlockKey", err)
	}
	k = mustUnlock(t, cfg, u2)
	checkOpens(t, k, sealed, "ctx", "raft data")

	if err := k.DisableAutolock(); err != nil {
		t.Fatal(err)
	}
	if err := k.DisableAutolock(); err != nil {
		t.Fatalf("DisableAutolock when off: %v", err)
	}
	if _, err := k.RotateUnlockKey(); !errors.Is(err, ErrNotAutolocked) {
		t.Fatalf("RotateUnlockKey when off: %v, want ErrNotAutolocked", err)
	}
	k.Close()
	k = mustOpenUnlocked(t, cfg)
	checkOpens(t, k, sealed2, "ctx2", "more raft data")
	if _, err := Unlock(cfg, u2); !errors.Is(err, ErrNotAutolocked) {
		t.Fatalf("Unlock of an unlocked file: %v, want ErrNotAutolocked", err)
	}
}

// A key rotation while autolocked keeps the file wrapped with the same
// unlock key, and the unlock key can be set from outside (the cluster's).
func TestAutolockWithRotationAndSetUnlockKey(t *testing.T) {
	cfg := testConfig(t)
	k := mustCreate(t, cfg)
	shared := NewUnlockKey()
	if err := k.SetUnlockKey(shared); err != nil {
		t.Fatal(err)
	}
	before := fileBytes(t, cfg)
	if err := k.SetUnlockKey(shared); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, fileBytes(t, cfg)) {
		t.Fatal("setting the key in use rewrote the file")
	}
	if err := k.RotateDEK(); err != nil {
		t.Fatal(err)
	}
	sealed := mustSeal(t, k, "under key 2", "")
	if err := k.RetireBefore(2); err != nil {
		t.Fatal(err)
	}
	k.Close()
	checkLocked(t, cfg)
	copyKey, err := ParseUnlockKey(shared.String())
	if err != nil {
		t.Fatal(err)
	}
	shared.Wipe() // Unlock must not depend on the caller's copy
	k = mustUnlock(t, cfg, copyKey)
	checkOpens(t, k, sealed, "", "under key 2")
	if st := k.Status(); st.Current != 2 || len(st.Older) != 0 || !st.Autolocked {
		t.Fatalf("status %+v", st)
	}
}

// Damage is reported as ErrCorrupt, never as a wrong unlock key, so a user
// is not sent looking for another key when the file is what is broken.
func TestDamagedKeyFile(t *testing.T) {
	cfg := testConfig(t)
	k := mustCreate(t, cfg)
	u, err := k.EnableAutolock()
	if err != nil {
		t.Fatal(err)
	}
	k.Close()
	good := fileBytes(t, cfg)
	path := filepath.Join(cfg.Dir, FileName)
	resum := func(b []byte) []byte {
		sum := sha256.Sum256(b[:len(b)-sumSize])
		return append(b[:len(b)-sumSize], sum[:]...)
	}
	tests := []struct {
		name string
		file func() []byte
		want error
	}{
		{name: "empty", file: func() []byte { return nil }, want: ErrCorrupt},
		{name: "truncated", file: func() []byte { return good[:len(good)-1] }, want: ErrCorrupt},
		{name: "a payload bit flipped", file: func() []byte {
			b := bytes.Clone(good)
			b[len(b)-sumSize-5] ^= 1
			return b
		}, want: ErrCorrupt},
		{name: "the checksum flipped", file: func() []byte {
			b := bytes.Clone(good)
			b[len(b)-1] ^= 1
			return b
		}, want: ErrCorrupt},
		{name: "payload rewritten with a matching checksum", file: func() []byte {
			b := bytes.Clone(good)
			b[len(b)-sumSize-5] ^= 1
			return resum(b)
		}, want: ErrCorrupt},
		{name: "check value rewritten with a matching checksum", file: func() []byte {
			b := bytes.Clone(good)
			b[len(fileMagic)+2] ^= 1
			return resum(b)
		}, want: ErrWrongUnlockKey},
		{name: "another version", file: func() []byte {
			b := bytes.Clone(good)
			b[len(fileMagic)] = 2
			return resum(b)
		}, want: ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, tt.file(), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Unlock(cfg, u)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Unlock: %v, want %v", err, tt.want)
			}
			if tt.want == ErrCorrupt && errors.Is(err, ErrWrongUnlockKey) {
				t.Fatalf("damage reported as a wrong key: %v", err)
			}
			t.Logf("error: %v", err)
		})
	}
}
