package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"time"
)

// DefaultCertificateValidity is the lifetime of a node certificate unless
// configured otherwise: SwarmKit's 90 days. Nodes renew at about half of it.
const DefaultCertificateValidity = 90 * 24 * time.Hour

// IssueNodeCertificate signs the public key of csr (PEM, checked by
// ParseCSR) into a certificate for nodeID with role, in the root's cluster,
// valid from notBefore to notAfter (cut at the root's own expiry). It
// returns the certificate, PEM-encoded.
//
// Everything in the certificate comes from the arguments, nothing from the
// request but its key. Manager certificates carry the DNS name
// ManagerServerName and may serve and dial; client certificates may only
// dial.
//
// Errors wrap ErrNoSigningKey, ErrInvalidCSR or ErrInvalidIdentity. Safe for
// concurrent use.
func (r *RootCA) IssueNodeCertificate(csrPEM []byte, nodeID string, role Role, notBefore, notAfter time.Time) ([]byte, error) {
	if r.key == nil {
		return nil, ErrNoSigningKey
	}
	id := Identity{NodeID: nodeID, Role: role, ClusterID: r.ClusterID()}
	if err := id.Validate(); err != nil {
		return nil, err
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	if notAfter.After(r.cert.NotAfter) {
		notAfter = r.cert.NotAfter
	}
	if !notBefore.Before(notAfter) {
		return nil, fmt.Errorf("ca: certificate would be valid from %s to %s", notBefore, notAfter)
	}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(),
		Subject:      id.subject(),
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		// ECDSA keys sign only; TLS 1.3 needs nothing else.
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if role == RoleManager {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.DNSNames = []string{ManagerServerName}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.cert, csr.PublicKey, r.key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign certificate for node %s: %w", nodeID, err)
	}
	return encodeCertificatePEM(der), nil
}

func (id Identity) subject() pkix.Name {
	return pkix.Name{CommonName: id.NodeID, OrganizationalUnit: []string{string(id.Role)}, Organization: []string{id.ClusterID}}
}

// VerifyNodeCertificate checks that cert was issued by this root for this
// cluster, is valid at now and may be used to dial (every node certificate
// may), and returns the identity it names. Errors wrap
// ErrInvalidCertificate. Safe for concurrent use.
func (r *RootCA) VerifyNodeCertificate(cert *x509.Certificate, now time.Time) (Identity, error) {
	_, err := cert.Verify(x509.VerifyOptions{
		Roots:       r.pool,
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidCertificate, err)
	}
	return r.identityOf(cert)
}

// identityOf returns the identity cert names, which must be in r's
// cluster. The caller has checked that r signed cert.
func (r *RootCA) identityOf(cert *x509.Certificate) (Identity, error) {
	id, err := IdentityFromCertificate(cert)
	if err != nil {
		return Identity{}, err
	}
	if id.ClusterID != r.ClusterID() {
		return Identity{}, fmt.Errorf("%w: cluster %q, want %q", ErrInvalidCertificate, id.ClusterID, r.ClusterID())
	}
	return id, nil
}

// NewKeyPair generates a key and issues a certificate for it at once, for
// the nodes whose key is made where the root's key is: the first manager
// when it bootstraps, and client certificates issued by an administrator on
// a manager. Errors are those of IssueNodeCertificate.
func (r *RootCA) NewKeyPair(nodeID string, role Role, notBefore, notAfter time.Time) (KeyPair, error) {
	csrPEM, keyPEM, err := NewCSR()
	if err != nil {
		return KeyPair{}, err
	}
	certPEM, err := r.IssueNodeCertificate(csrPEM, nodeID, role, notBefore, notAfter)
	if err != nil {
		return KeyPair{}, err
	}
	return KeyPair{CertificatePEM: certPEM, KeyPEM: keyPEM}, nil
}

// NewCSR generates an ECDSA P-256 key and a certificate request for it. It
// returns both PEM-encoded; the key (PKCS#8) never leaves the node. The
// request's subject is empty: the CA decides the identity.
func NewCSR() (csrPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: generate key: %w", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: create certificate request: %w", err)
	}
	keyPEM, err = encodeKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: der}), keyPEM, nil
}

// KeyPair is a node's certificate and private key, PEM-encoded, as they are
// kept on disk. KeyPEM is secret.
type KeyPair struct {
	CertificatePEM []byte
	KeyPEM         []byte
}

// TLSCertificate parses the pair into a tls.Certificate with Leaf set,
// checking that the key is the certificate's. Errors wrap
// ErrInvalidCertificate or ErrInvalidKey.
func (kp KeyPair) TLSCertificate() (*tls.Certificate, error) {
	leaf, err := ParseCertificatePEM(kp.CertificatePEM)
	if err != nil {
		return nil, err
	}
	key, err := parseKeyPEM(kp.KeyPEM)
	if err != nil {
		return nil, err
	}
	if !key.PublicKey.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("%w: the key is not the certificate's", ErrInvalidKey)
	}
	return &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}, nil
}
