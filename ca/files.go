package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/shoal-project/shoal/internal/atomicfile"
)

// The files of STATE_DIR/certificates (mode 0700):
//
//	ca.crt        the root CA certificate, no key (0644)
//	node.key      the node's private key, PKCS#8 (0600), sealed when a
//	              KeySealer is given
//	node.crt      the node's certificate (0644)
//	node.pending  a new certificate and key being installed (0600)
//
// Every file is replaced atomically: written to a temporary file, synced,
// renamed over the old one, and the directory synced. The key and the
// certificate must change together, which two renames cannot do, so
// SaveKeyPair first writes both to node.pending: once that file exists the
// new pair is committed, and LoadCredentials finishes the installation if a
// crash interrupted it. A crash can thus leave the old pair or the new one,
// never a key with another key's certificate.
const (
	// CertificatesDir is the directory of the node's credentials under the
	// state directory.
	CertificatesDir = "certificates"

	rootCAFile  = "ca.crt"
	nodeKeyFile = "node.key"
	nodeCrtFile = "node.crt"
	pendingFile = "node.pending"
)

// A KeySealer encrypts the node's private key before it reaches the disk
// and decrypts it when it is read back; a manager's is its data keys
// (*keys.Keys), so that with autolock the key is as locked as the Raft
// data. Sealed results must say which key sealed them. A nil KeySealer
// keeps the key in clear.
type KeySealer interface {
	Seal(plain, additional []byte) ([]byte, error)
	Open(sealed, additional []byte) ([]byte, error)
}

// nodeKeyContext binds a sealed key to its use, so that no other sealed
// blob of the same sealer can stand in for it.
const nodeKeyContext = "shoal node private key"

// sealKey returns what node.key holds for the PEM key keyPEM.
func sealKey(keyPEM []byte, s KeySealer) ([]byte, error) {
	if s == nil {
		return keyPEM, nil
	}
	blocks, err := decodePEM(keyPEM, pemPrivateKey)
	if err != nil || len(blocks) != 1 {
		return nil, fmt.Errorf("%w: not one PEM private key", ErrInvalidKey)
	}
	sealed, err := s.Seal(blocks[0].Bytes, []byte(nodeKeyContext))
	if err != nil {
		return nil, fmt.Errorf("ca: sealing the node key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemSealedPrivateKey, Bytes: sealed}), nil
}

// openKey returns the PEM key that a node.key block holds, and whether it
// was in clear.
func openKey(b *pem.Block, s KeySealer) (keyPEM []byte, clear bool, err error) {
	switch {
	case b.Type == pemPrivateKey:
		return pem.EncodeToMemory(b), true, nil
	case s == nil:
		return nil, false, fmt.Errorf("%w: the node key is sealed and no key to open it was given", ErrInvalidKey)
	}
	der, err := s.Open(b.Bytes, []byte(nodeKeyContext))
	if err != nil {
		return nil, false, fmt.Errorf("%w: opening the sealed node key: %w", ErrInvalidKey, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), false, nil
}

// CertificatesPath returns the credentials directory of stateDir.
func CertificatesPath(stateDir string) string { return filepath.Join(stateDir, CertificatesDir) }

// SaveCredentials writes the root CA certificate and the node's key pair to
// dir, creating it, the key sealed with s unless s is nil. The root's key,
// if it has one, is not written. The pair is checked first, so an unusable
// one never reaches the disk. Not safe to call concurrently with itself or
// SaveKeyPair on the same dir.
func SaveCredentials(dir string, c Credentials, s KeySealer) error {
	if c.RootCA == nil {
		return fmt.Errorf("%w: no root CA to save", ErrInvalidRootCA)
	}
	if _, err := c.KeyPair.TLSCertificate(); err != nil {
		return err
	}
	if err := makeDir(dir); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, rootCAFile), c.RootCA.CertificatePEM(), 0o644); err != nil {
		return err
	}
	return SaveKeyPair(dir, c.KeyPair, s)
}

// SaveKeyPair replaces the node's key pair in dir, as a renewal does, the
// key sealed with s unless s is nil; see the file layout above for how it
// survives a crash. When it returns nil the new pair is durable. Not safe to
// call concurrently with itself on the same dir.
func SaveKeyPair(dir string, kp KeyPair, s KeySealer) error {
	if _, err := kp.TLSCertificate(); err != nil {
		return err
	}
	storedKey, err := sealKey(kp.KeyPEM, s)
	if err != nil {
		return err
	}
	pending := append(bytes.Clone(kp.CertificatePEM), storedKey...)
	if err := writeFileAtomic(filepath.Join(dir, pendingFile), pending, 0o600); err != nil {
		return err
	}
	return installPending(dir, kp.CertificatePEM, storedKey)
}

// installPending copies the committed pair of node.pending into node.key and
// node.crt, then removes node.pending. storedKey is the key as node.key
// holds it, sealed or not.
func installPending(dir string, certPEM, storedKey []byte) error {
	if err := writeFileAtomic(filepath.Join(dir, nodeKeyFile), storedKey, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, nodeCrtFile), certPEM, 0o644); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, pendingFile)); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return syncDir(dir)
}

// LoadCredentials reads the credentials SaveCredentials wrote to dir,
// opening a sealed key with s. It may write: it first finishes the
// installation of a pair that a crash interrupted, and it seals a key
// found in clear when s is given (a state directory from before keys were
// sealed). It checks that the key is the certificate's and that the
// certificate was signed by the root for its cluster, not that it is still
// valid: a node with an expired certificate has to join again, and its
// caller decides that. When the node never saved credentials the error
// wraps fs.ErrNotExist.
func LoadCredentials(dir string, s KeySealer) (Credentials, error) {
	if err := finishPending(dir); err != nil {
		return Credentials{}, err
	}
	rootPEM, err := os.ReadFile(filepath.Join(dir, rootCAFile))
	if err != nil {
		return Credentials{}, fmt.Errorf("ca: %w", err)
	}
	root, err := ParseRootCA(rootPEM)
	if err != nil {
		return Credentials{}, fmt.Errorf("ca: %s: %w", rootCAFile, err)
	}
	stored, err := os.ReadFile(filepath.Join(dir, nodeKeyFile))
	if err != nil {
		return Credentials{}, fmt.Errorf("ca: %w", err)
	}
	blocks, err := decodePEM(stored, pemPrivateKey, pemSealedPrivateKey)
	if err != nil || len(blocks) != 1 {
		return Credentials{}, fmt.Errorf("%w: %s holds no single key", ErrInvalidKey, nodeKeyFile)
	}
	var kp KeyPair
	var clear bool
	if kp.KeyPEM, clear, err = openKey(blocks[0], s); err != nil {
		return Credentials{}, err
	}
	if kp.CertificatePEM, err = os.ReadFile(filepath.Join(dir, nodeCrtFile)); err != nil {
		return Credentials{}, fmt.Errorf("ca: %w", err)
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		return Credentials{}, err
	}
	if err := checkSignedBy(root, cert.Leaf); err != nil {
		return Credentials{}, err
	}
	if clear && s != nil {
		if err := SaveKeyPair(dir, kp, s); err != nil {
			return Credentials{}, fmt.Errorf("ca: sealing the node key found in clear: %w", err)
		}
	}
	return Credentials{RootCA: root.WithoutKey(), KeyPair: kp}, nil
}

// finishPending installs node.pending if it exists.
func finishPending(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, pendingFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	blocks, err := decodePEM(data, pemCertificate, pemPrivateKey, pemSealedPrivateKey)
	if err != nil || len(blocks) != 2 || blocks[0].Type != pemCertificate || blocks[1].Type == pemCertificate {
		// Written atomically, so only tampering or a disk fault gets here.
		return fmt.Errorf("%w: %s is not a certificate followed by its key", ErrInvalidCertificate, pendingFile)
	}
	// The pair was checked before it was written; a sealed key is checked
	// against its certificate when LoadCredentials opens it.
	return installPending(dir, pem.EncodeToMemory(blocks[0]), pem.EncodeToMemory(blocks[1]))
}

// ReadIdentity returns the identity that the node certificate in dir names,
// without opening the key or checking the signature: for messages about a
// state directory, not for trusting it. When dir holds no node certificate
// the error wraps fs.ErrNotExist.
func ReadIdentity(dir string) (Identity, error) {
	b, err := os.ReadFile(filepath.Join(dir, nodeCrtFile))
	if err != nil {
		return Identity{}, fmt.Errorf("ca: %w", err)
	}
	cert, err := ParseCertificatePEM(b)
	if err != nil {
		return Identity{}, fmt.Errorf("ca: %s: %w", nodeCrtFile, err)
	}
	return IdentityFromCertificate(cert)
}

// checkSignedBy checks that leaf is a node certificate signed by root for
// root's cluster, ignoring its validity dates.
func checkSignedBy(root *RootCA, leaf *x509.Certificate) error {
	if err := leaf.CheckSignatureFrom(root.cert); err != nil {
		return fmt.Errorf("%w: not signed by the root CA: %w", ErrInvalidCertificate, err)
	}
	_, err := root.identityOf(leaf)
	return err
}

func makeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	// The directory's own entry must be durable before files in it count.
	return syncDir(filepath.Dir(dir))
}

// writeFileAtomic replaces path with data durably (see package atomicfile).
func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	if err := atomicfile.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return nil
}
