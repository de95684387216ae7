package ca

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestCredentialsRoundTrip(t *testing.T) {
	for _, sealer := range []KeySealer{nil, newTestSealer(t)} {
		t.Run(fmt.Sprintf("sealed=%t", sealer != nil), func(t *testing.T) {
			root := newTestRoot(t, "c1")
			dir := CertificatesPath(t.TempDir())
			kp := issuePair(t, root, RoleManager, time.Now())
			if err := SaveCredentials(dir, Credentials{RootCA: root, KeyPair: kp}, sealer); err != nil {
				t.Fatal(err)
			}
			got, err := LoadCredentials(dir, sealer)
			if err != nil {
				t.Fatal(err)
			}
			if !got.RootCA.Equal(root) || got.RootCA.CanSign() {
				t.Error("the loaded root differs, or has a key")
			}
			if !bytes.Equal(got.KeyPair.CertificatePEM, kp.CertificatePEM) || !bytes.Equal(got.KeyPair.KeyPEM, kp.KeyPEM) {
				t.Error("the loaded key pair differs")
			}
			if rootFile, _ := os.ReadFile(filepath.Join(dir, rootCAFile)); bytes.Contains(rootFile, []byte("PRIVATE KEY")) {
				t.Error("the root's key was written to disk")
			}
			keyFile, err := os.ReadFile(filepath.Join(dir, nodeKeyFile))
			if err != nil {
				t.Fatal(err)
			}
			if inClear := keyInClear(t, keyFile, kp); inClear != (sealer == nil) {
				t.Errorf("node.key holds the key in clear: %t, want %t", inClear, sealer == nil)
			}
			wantModes := map[string]fs.FileMode{".": 0o700, rootCAFile: 0o644, nodeKeyFile: 0o600, nodeCrtFile: 0o644}
			for name, want := range wantModes {
				fi, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if got := fi.Mode().Perm(); got != want {
					t.Errorf("%s has mode %v, want %v", name, got, want)
				}
			}
			if names := dirNames(t, dir); !slices.Equal(names, []string{rootCAFile, nodeCrtFile, nodeKeyFile}) {
				t.Errorf("directory holds %v; want the three files and nothing left over", names)
			}
		})
	}
}

// TestSealedKey: a key in clear is sealed on the first load with a sealer,
// and a sealed key opens only with its sealer.
func TestSealedKey(t *testing.T) {
	root := newTestRoot(t, "c1")
	kp := issuePair(t, root, RoleManager, time.Now())
	sealer := newTestSealer(t)
	dir := CertificatesPath(t.TempDir())
	if err := SaveCredentials(dir, Credentials{RootCA: root, KeyPair: kp}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredentials(dir, sealer); err != nil {
		t.Fatalf("loading a clear key with a sealer: %v", err)
	}
	keyFile, err := os.ReadFile(filepath.Join(dir, nodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if keyInClear(t, keyFile, kp) || !bytes.Contains(keyFile, []byte(pemSealedPrivateKey)) {
		t.Fatalf("the clear key was not sealed in place:\n%s", keyFile)
	}
	for name, s := range map[string]KeySealer{"no sealer": nil, "another sealer": newTestSealer(t)} {
		if _, err := LoadCredentials(dir, s); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("loading a sealed key with %s = %v, want ErrInvalidKey", name, err)
		}
	}
	got, err := LoadCredentials(dir, sealer)
	if err != nil || !bytes.Equal(got.KeyPair.KeyPEM, kp.KeyPEM) {
		t.Fatalf("loading the sealed key with its sealer: %v", err)
	}
}

// testSealer is AES-256-GCM under a random key, the nonce first.
type testSealer struct{ aead cipher.AEAD }

func newTestSealer(t *testing.T) *testSealer {
	t.Helper()
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &testSealer{aead: aead}
}

func (s *testSealer) Seal(plain, additional []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plain, additional), nil
}

func (s *testSealer) Open(sealed, additional []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], additional)
}

// keyInClear reports whether the PEM file holds kp's key unsealed.
func keyInClear(t *testing.T, file []byte, kp KeyPair) bool {
	t.Helper()
	key, _ := pem.Decode(kp.KeyPEM)
	stored, _ := pem.Decode(file)
	if key == nil || stored == nil {
		t.Fatal("no PEM block")
	}
	return bytes.Contains(stored.Bytes, key.Bytes)
}

func TestLoadCredentialsNotSaved(t *testing.T) {
	if _, err := LoadCredentials(CertificatesPath(t.TempDir()), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadCredentials of nothing = %v, want fs.ErrNotExist", err)
	}
}

func TestReadIdentityWithoutTheKey(t *testing.T) {
	root := newTestRoot(t, "c1")
	dir := CertificatesPath(t.TempDir())
	if _, err := ReadIdentity(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadIdentity of nothing = %v, want fs.ErrNotExist", err)
	}
	kp := issuePairFor(t, root, "n1", RoleManager, time.Now())
	if err := SaveCredentials(dir, Credentials{RootCA: root, KeyPair: kp}, newTestSealer(t)); err != nil {
		t.Fatal(err)
	}
	// No sealer: the key stays closed, the certificate is enough.
	id, err := ReadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Identity{NodeID: "n1", Role: RoleManager, ClusterID: "c1"}); id != want {
		t.Fatalf("ReadIdentity = %+v, want %+v", id, want)
	}
}

func TestSaveKeyPairReplaces(t *testing.T) {
	root := newTestRoot(t, "c1")
	dir := CertificatesPath(t.TempDir())
	if err := SaveCredentials(dir, Credentials{RootCA: root, KeyPair: issuePair(t, root, RoleClient, time.Now())}, nil); err != nil {
		t.Fatal(err)
	}
	renewed := issuePair(t, root, RoleClient, time.Now())
	if err := SaveKeyPair(dir, renewed, nil); err != nil {
		t.Fatal(err)
	}
	got, err := LoadCredentials(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.KeyPair.CertificatePEM, renewed.CertificatePEM) {
		t.Fatal("LoadCredentials did not return the renewed pair")
	}

	mismatched := KeyPair{CertificatePEM: renewed.CertificatePEM, KeyPEM: issuePair(t, root, RoleClient, time.Now()).KeyPEM}
	if err := SaveKeyPair(dir, mismatched, nil); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("SaveKeyPair of a mismatched pair = %v, want ErrInvalidKey", err)
	}
	if got, err := LoadCredentials(dir, nil); err != nil || !bytes.Equal(got.KeyPair.KeyPEM, renewed.KeyPEM) {
		t.Fatalf("a refused save changed the files: %v", err)
	}
}

// TestLoadFinishesInterruptedSave simulates a crash at each step of
// SaveKeyPair after node.pending was written: the new key alone in place,
// or not yet. Either way the node restarts with the new pair, whole.
func TestLoadFinishesInterruptedSave(t *testing.T) {
	root := newTestRoot(t, "c1")
	old := issuePair(t, root, RoleManager, time.Now())
	renewed := issuePair(t, root, RoleManager, time.Now())
	tests := []struct {
		name          string
		newKeyWritten bool
		sealer        KeySealer
	}{
		{"crash before the key", false, nil},
		{"crash between the key and the certificate", true, nil},
		{"sealed: crash before the key", false, newTestSealer(t)},
		{"sealed: crash between the key and the certificate", true, newTestSealer(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := CertificatesPath(t.TempDir())
			if err := SaveCredentials(dir, Credentials{RootCA: root, KeyPair: old}, tt.sealer); err != nil {
				t.Fatal(err)
			}
			storedKey, err := sealKey(renewed.KeyPEM, tt.sealer)
			if err != nil {
				t.Fatal(err)
			}
			pending := append(bytes.Clone(renewed.CertificatePEM), storedKey...)
			if err := writeFileAtomic(filepath.Join(dir, pendingFile), pending, 0o600); err != nil {
				t.Fatal(err)
			}
			if tt.newKeyWritten {
				if err := writeFileAtomic(filepath.Join(dir, nodeKeyFile), storedKey, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := LoadCredentials(dir, tt.sealer)
			if err != nil {
				t.Fatalf("LoadCredentials: %v", err)
			}
			if !bytes.Equal(got.KeyPair.CertificatePEM, renewed.CertificatePEM) || !bytes.Equal(got.KeyPair.KeyPEM, renewed.KeyPEM) {
				t.Fatal("LoadCredentials did not finish installing the new pair")
			}
			if _, err := os.Stat(filepath.Join(dir, pendingFile)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("node.pending is still there: %v", err)
			}
		})
	}
}

func TestLoadCredentialsRefuses(t *testing.T) {
	root := newTestRoot(t, "c1")
	other := newTestRoot(t, "c2")
	kp := issuePair(t, root, RoleClient, time.Now())
	tests := []struct {
		name   string
		damage func(dir string) error
		want   error
	}{
		{"certificate of another root", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, rootCAFile), other.CertificatePEM(), 0o644)
		}, ErrInvalidCertificate},
		{"key of another certificate", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, nodeKeyFile), issuePair(t, root, RoleClient, time.Now()).KeyPEM, 0o600)
		}, ErrInvalidKey},
		{"damaged pending pair", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, pendingFile), kp.KeyPEM, 0o600)
		}, ErrInvalidCertificate},
		{"damaged root", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, rootCAFile), []byte("x"), 0o644)
		}, ErrInvalidRootCA},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := CertificatesPath(t.TempDir())
			if err := SaveCredentials(dir, Credentials{RootCA: root, KeyPair: kp}, nil); err != nil {
				t.Fatal(err)
			}
			if err := tt.damage(dir); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadCredentials(dir, nil); !errors.Is(err, tt.want) {
				t.Fatalf("LoadCredentials = %v, want %v", err, tt.want)
			}
		})
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
