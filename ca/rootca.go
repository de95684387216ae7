package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"
)

// RootCAValidity is the lifetime of a root CA certificate. A root outlives
// any sensible cluster because replacing it (root rotation) is not built.
const RootCAValidity = 20 * 365 * 24 * time.Hour

// RootCA is a cluster's certificate authority: its self-signed certificate
// and, on managers, its private key. The cluster ID is the certificate's
// subject O and is written into every certificate the root issues.
//
// A RootCA is immutable and safe for concurrent use. It travels as bytes:
// MarshalPEM (certificate and key, for the replicated store) and
// CertificatePEM (certificate only, for every node) are read back with
// ParseRootCA.
type RootCA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey // nil when the root can only verify
	pool    *x509.CertPool
	digest  [sha256.Size]byte
}

// CreateRootCA creates a new root CA for the cluster clusterID: an ECDSA
// P-256 key and a self-signed certificate valid from now for RootCAValidity.
// The first manager of a cluster calls it once, when it bootstraps.
func CreateRootCA(clusterID string, now time.Time) (*RootCA, error) {
	if err := validateID("cluster ID", clusterID); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ca: generate root key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      pkix.Name{CommonName: rootCACommonName, Organization: []string{clusterID}},
		// Backdated so that a node whose clock is slightly behind still
		// accepts the root at once.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(RootCAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Node certificates are signed by the root itself; no
		// intermediate may be chained under it.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("ca: create root certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("ca: parse new root certificate: %w", err)
	}
	return newRootCA(cert, key)
}

// ParseRootCA reads a root CA from PEM: one CERTIFICATE block and at most
// one PRIVATE KEY block (PKCS#8), in any order. Without the key the root
// can verify certificates but not issue them. The certificate must be a
// self-signed ECDSA P-256 CA certificate naming a valid cluster ID, and the
// key must be its own. Errors wrap ErrInvalidRootCA; the input may come from
// the network.
func ParseRootCA(data []byte) (*RootCA, error) {
	blocks, err := decodePEM(data, pemCertificate, pemPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRootCA, err)
	}
	var cert *x509.Certificate
	var key *ecdsa.PrivateKey
	for _, b := range blocks {
		switch {
		case b.Type == pemCertificate && cert == nil:
			if cert, err = x509.ParseCertificate(b.Bytes); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidRootCA, err)
			}
		case b.Type == pemPrivateKey && key == nil:
			if key, err = parsePKCS8(b.Bytes); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrInvalidRootCA, err)
			}
		default:
			return nil, fmt.Errorf("%w: more than one %s block", ErrInvalidRootCA, b.Type)
		}
	}
	if cert == nil {
		return nil, fmt.Errorf("%w: no certificate", ErrInvalidRootCA)
	}
	return newRootCA(cert, key)
}

// newRootCA checks cert (and key, when not nil) and builds the RootCA.
func newRootCA(cert *x509.Certificate, key *ecdsa.PrivateKey) (*RootCA, error) {
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: not a CA certificate", ErrInvalidRootCA)
	}
	if !isP256(cert.PublicKey) {
		return nil, fmt.Errorf("%w: public key is not ECDSA P-256", ErrInvalidRootCA)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return nil, fmt.Errorf("%w: not self-signed: %w", ErrInvalidRootCA, err)
	}
	if len(cert.Subject.Organization) != 1 {
		return nil, fmt.Errorf("%w: subject %q needs exactly one O (the cluster ID)", ErrInvalidRootCA, cert.Subject.String())
	}
	if err := validateID("cluster ID", cert.Subject.Organization[0]); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRootCA, err)
	}
	if key != nil && !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: the private key is not the certificate's", ErrInvalidRootCA)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &RootCA{
		cert:    cert,
		certPEM: encodeCertificatePEM(cert.Raw),
		key:     key,
		pool:    pool,
		digest:  sha256.Sum256(cert.Raw),
	}, nil
}

// Certificate returns the root certificate. The caller must not modify it.
func (r *RootCA) Certificate() *x509.Certificate { return r.cert }

// CertificatePEM returns the root certificate, PEM-encoded, without the key:
// what GetRootCACertificate serves and what every node keeps on disk.
func (r *RootCA) CertificatePEM() []byte { return bytes.Clone(r.certPEM) }

// MarshalPEM returns the certificate and, when the root has one, the private
// key, PEM-encoded: the form the replicated store keeps. The result is
// secret; never log it or send it to a non-manager.
func (r *RootCA) MarshalPEM() ([]byte, error) {
	if r.key == nil {
		return r.CertificatePEM(), nil
	}
	keyPEM, err := encodeKeyPEM(r.key)
	if err != nil {
		return nil, err
	}
	return append(r.CertificatePEM(), keyPEM...), nil
}

// ClusterID returns the ID of the cluster this root serves.
func (r *RootCA) ClusterID() string { return r.cert.Subject.Organization[0] }

// CanSign reports whether the root holds its private key.
func (r *RootCA) CanSign() bool { return r.key != nil }

// WithoutKey returns the root with its certificate only, for handing to code
// that needs to verify and nothing more.
func (r *RootCA) WithoutKey() *RootCA {
	c := *r
	c.key = nil
	return &c
}

// Digest returns the SHA-256 digest of the root certificate (DER) in the
// encoding of join tokens: 50 lowercase base-36 digits.
func (r *RootCA) Digest() string { return encodeDigest(r.digest) }

// Pool returns a new certificate pool holding the root certificate only.
func (r *RootCA) Pool() *x509.CertPool { return r.pool.Clone() }

// Equal reports whether r and o have the same certificate.
func (r *RootCA) Equal(o *RootCA) bool { return o != nil && r.cert.Equal(o.cert) }

// newSerial returns a random positive 127-bit serial number: unique without
// coordination between the managers that sign, as RFC 5280 allows (at most
// 20 bytes).
func newSerial() *big.Int {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	b[0] &= 0x7f
	n := new(big.Int).SetBytes(b[:])
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n
}
