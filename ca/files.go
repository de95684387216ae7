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
)

// The files of STATE_DIR/certificates (mode 0700):
//
//	ca.crt        the root CA certificate, no key (0644)
//	node.key      the node's private key, PKCS#8 (0600)
//	node.crt      the node's certificate (0644)
//	node.pending  a new key and certificate being installed (0600)
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

// CertificatesPath returns the credentials directory of stateDir.
func CertificatesPath(stateDir string) string { return filepath.Join(stateDir, CertificatesDir) }

// SaveCredentials writes the root CA certificate and the node's key pair to
// dir, creating it. The root's key, if it has one, is not written. The pair
// is checked first, so an unusable one never reaches the disk. Not safe to
// call concurrently with itself or SaveKeyPair on the same dir.
func SaveCredentials(dir string, c Credentials) error {
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
	return SaveKeyPair(dir, c.KeyPair)
}

// SaveKeyPair replaces the node's key pair in dir, as a renewal does; see
// the file layout above for how it survives a crash. When it returns nil
// the new pair is durable. Not safe to call concurrently with itself on the
// same dir.
func SaveKeyPair(dir string, kp KeyPair) error {
	if _, err := kp.TLSCertificate(); err != nil {
		return err
	}
	pending := append(bytes.Clone(kp.CertificatePEM), kp.KeyPEM...)
	if err := writeFileAtomic(filepath.Join(dir, pendingFile), pending, 0o600); err != nil {
		return err
	}
	return installPending(dir, kp)
}

// installPending copies the committed pair of node.pending into node.key and
// node.crt, then removes node.pending.
func installPending(dir string, kp KeyPair) error {
	if err := writeFileAtomic(filepath.Join(dir, nodeKeyFile), kp.KeyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(dir, nodeCrtFile), kp.CertificatePEM, 0o644); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(dir, pendingFile)); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return syncDir(dir)
}

// LoadCredentials reads the credentials SaveCredentials wrote to dir, first
// finishing the installation of a pair that a crash interrupted (so it may
// write). It checks that the key is the certificate's and that the
// certificate was signed by the root for its cluster, not that it is still
// valid: a node with an expired certificate has to join again, and its
// caller decides that. When the node never saved credentials the error
// wraps fs.ErrNotExist.
func LoadCredentials(dir string) (Credentials, error) {
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
	var kp KeyPair
	if kp.KeyPEM, err = os.ReadFile(filepath.Join(dir, nodeKeyFile)); err != nil {
		return Credentials{}, fmt.Errorf("ca: %w", err)
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
	blocks, err := decodePEM(data, pemCertificate, pemPrivateKey)
	if err != nil || len(blocks) != 2 || blocks[0].Type != pemCertificate || blocks[1].Type != pemPrivateKey {
		// Written atomically, so only tampering or a disk fault gets here.
		return fmt.Errorf("%w: %s is not a certificate followed by its key", ErrInvalidCertificate, pendingFile)
	}
	kp := KeyPair{CertificatePEM: pem.EncodeToMemory(blocks[0]), KeyPEM: pem.EncodeToMemory(blocks[1])}
	if _, err := kp.TLSCertificate(); err != nil {
		return fmt.Errorf("ca: %s: %w", pendingFile, err)
	}
	return installPending(dir, kp)
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

// writeFileAtomic replaces path with data: a temporary file in the same
// directory, synced, renamed over path, and the directory synced (etcd
// #6368: a rename is durable only once its directory is).
func writeFileAtomic(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("ca: sync %s: %w", dir, err)
	}
	return nil
}
