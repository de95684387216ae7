package keys

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestCreateThenOpen(t *testing.T) {
	cfg := testConfig(t)
	if Exists(cfg.Dir) {
		t.Fatal("Exists before Create")
	}
	k := mustCreate(t, cfg)
	if !Exists(cfg.Dir) {
		t.Fatal("Exists is false after Create")
	}
	sealed := mustSeal(t, k, "before restart", "ctx")
	k.Close()

	k2 := mustOpenUnlocked(t, cfg)
	checkOpens(t, k2, sealed, "ctx", "before restart")
	if st := k2.Status(); st.Current != 1 || len(st.Older) != 0 || st.Autolocked {
		t.Fatalf("status %+v, want key 1 alone, unlocked", st)
	}
}

func TestFilePermissions(t *testing.T) {
	cfg := testConfig(t)
	// A directory made by someone else with a wider mode is narrowed.
	if err := os.Mkdir(cfg.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	k := mustCreate(t, cfg)
	check := func() {
		t.Helper()
		for path, want := range map[string]fs.FileMode{cfg.Dir: 0o700, filepath.Join(cfg.Dir, FileName): 0o600} {
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Mode().Perm(); got != want {
				t.Errorf("%s has mode %v, want %v", path, got, want)
			}
		}
		ents, err := os.ReadDir(cfg.Dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 {
			t.Errorf("%d files in %s, want the key file alone", len(ents), cfg.Dir)
		}
	}
	check()
	if err := k.RotateDEK(); err != nil {
		t.Fatal(err)
	}
	check()
	if _, err := k.EnableAutolock(); err != nil {
		t.Fatal(err)
	}
	check()
}

func TestCreateAndOpenErrors(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, cfg Config)
		call    func(cfg Config) error
		want    []error
	}{
		{
			name: "open without a key file",
			call: func(cfg Config) error { _, _, err := Open(cfg); return err },
			want: []error{ErrNotFound, fs.ErrNotExist},
		},
		{
			name: "unlock without a key file",
			call: func(cfg Config) error { _, err := Unlock(cfg, NewUnlockKey()); return err },
			want: []error{ErrNotFound},
		},
		{
			name:    "create over a key file",
			prepare: func(t *testing.T, cfg Config) { mustCreate(t, cfg) },
			call:    func(cfg Config) error { _, err := Create(cfg); return err },
			want:    []error{ErrExists},
		},
		{
			name:    "unlock a file that is not locked",
			prepare: func(t *testing.T, cfg Config) { mustCreate(t, cfg) },
			call:    func(cfg Config) error { _, err := Unlock(cfg, NewUnlockKey()); return err },
			want:    []error{ErrNotAutolocked},
		},
		{
			name: "empty Dir",
			call: func(cfg Config) error { cfg.Dir = ""; _, _, err := Open(cfg); return err },
			want: []error{ErrInvalidConfig},
		},
		{
			name: "a file larger than any key file",
			prepare: func(t *testing.T, cfg Config) {
				mustCreate(t, cfg)
				if err := os.WriteFile(filepath.Join(cfg.Dir, FileName), make([]byte, maxFileSize+1), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			call: func(cfg Config) error { _, _, err := Open(cfg); return err },
			want: []error{ErrCorrupt},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			if tt.prepare != nil {
				tt.prepare(t, cfg)
			}
			err := tt.call(cfg)
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("error = %v, want %v", err, want)
				}
			}
			t.Logf("error: %v", err)
		})
	}
}

// A crash while writing leaves a temporary file, which may hold keys that
// are no longer current in clear: the next open removes it.
func TestOpenRemovesTemporaryFiles(t *testing.T) {
	cfg := testConfig(t)
	mustCreate(t, cfg).Close()
	stale := filepath.Join(cfg.Dir, tempPrefix+"123")
	if err := os.WriteFile(stale, []byte("old keys"), 0o600); err != nil {
		t.Fatal(err)
	}
	mustOpenUnlocked(t, cfg)
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("temporary file still there: %v", err)
	}
}

func TestRotateAndRetire(t *testing.T) {
	cfg := testConfig(t)
	k := mustCreate(t, cfg)
	sealed1 := mustSeal(t, k, "under key 1", "a")
	if err := k.RotateDEK(); err != nil {
		t.Fatal(err)
	}
	if g := k.Generation(); g != 2 {
		t.Fatalf("generation %d after one rotation, want 2", g)
	}
	sealed2 := mustSeal(t, k, "under key 2", "b")
	if id, _ := sealedKeyID(sealed2); id != 2 {
		t.Fatalf("sealed with key %d after rotation, want 2", id)
	}
	checkOpens(t, k, sealed1, "a", "under key 1")

	// A restart before retirement keeps both keys.
	k.Close()
	k = mustOpenUnlocked(t, cfg)
	checkOpens(t, k, sealed1, "a", "under key 1")
	checkOpens(t, k, sealed2, "b", "under key 2")

	before := fileBytes(t, cfg)
	if err := k.RetireBefore(1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, fileBytes(t, cfg)) {
		t.Fatal("RetireBefore with nothing to drop rewrote the file")
	}
	// The current key is never dropped, whatever the caller asks.
	if err := k.RetireBefore(100); err != nil {
		t.Fatal(err)
	}
	if st := k.Status(); st.Current != 2 || len(st.Older) != 0 {
		t.Fatalf("status %+v after retiring, want key 2 alone", st)
	}
	if _, err := k.Open(sealed1, []byte("a")); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Open of retired key's data: %v, want ErrUnknownKey", err)
	}
	k.Close()
	k = mustOpenUnlocked(t, cfg)
	if st := k.Status(); st.Current != 2 || len(st.Older) != 0 {
		t.Fatalf("status %+v after restart, want key 2 alone", st)
	}
	checkOpens(t, k, sealed2, "b", "under key 2")
}

func TestRotationsOutpacingSnapshots(t *testing.T) {
	k := mustCreate(t, testConfig(t))
	for range MaxKeys - 1 {
		if err := k.RotateDEK(); err != nil {
			t.Fatal(err)
		}
	}
	if err := k.RotateDEK(); !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("rotation beyond MaxKeys: %v, want ErrTooManyKeys", err)
	}
	if err := k.RetireBefore(k.Generation()); err != nil {
		t.Fatal(err)
	}
	if err := k.RotateDEK(); err != nil {
		t.Fatalf("rotation after retiring: %v", err)
	}
	if st := k.Status(); !slices.Equal(st.Older, []uint32{MaxKeys}) {
		t.Fatalf("status %+v", st)
	}
}

func fileBytes(t testing.TB, cfg Config) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cfg.Dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
