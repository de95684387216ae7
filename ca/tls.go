package ca

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
)

// CertificateHolder holds a node's current certificate and hands it to TLS
// at every handshake, so that a renewed certificate is used by the next
// handshake without a restart. Connections already open keep the
// certificate they were made with.
//
// All methods are safe for concurrent use.
type CertificateHolder struct {
	cert atomic.Pointer[heldCertificate]
}

type heldCertificate struct {
	tls *tls.Certificate
	id  Identity
}

// NewCertificateHolder returns a holder serving cert, which must be a node
// certificate (see Set).
func NewCertificateHolder(cert *tls.Certificate) (*CertificateHolder, error) {
	h := &CertificateHolder{}
	if err := h.Set(cert); err != nil {
		return nil, err
	}
	return h, nil
}

// Set replaces the certificate served from the next handshake on. cert must
// have its Leaf (KeyPair.TLSCertificate sets it) naming a node identity,
// and a private key; Set does not verify the chain, which the caller did
// when it obtained the certificate. Errors wrap ErrInvalidCertificate; on
// error the held certificate is unchanged. The caller must not modify cert
// afterwards.
func (h *CertificateHolder) Set(cert *tls.Certificate) error {
	if cert == nil || cert.Leaf == nil || cert.PrivateKey == nil || len(cert.Certificate) == 0 {
		return fmt.Errorf("%w: a TLS certificate needs its leaf and its private key", ErrInvalidCertificate)
	}
	id, err := IdentityFromCertificate(cert.Leaf)
	if err != nil {
		return err
	}
	h.cert.Store(&heldCertificate{tls: cert, id: id})
	return nil
}

// Certificate returns the certificate currently served. The caller must not
// modify it.
func (h *CertificateHolder) Certificate() *tls.Certificate { return h.cert.Load().tls }

// Leaf returns the parsed certificate currently served.
func (h *CertificateHolder) Leaf() *x509.Certificate { return h.cert.Load().tls.Leaf }

// Identity returns the identity the current certificate names.
func (h *CertificateHolder) Identity() Identity { return h.cert.Load().id }

// GetCertificate is for tls.Config.GetCertificate.
func (h *CertificateHolder) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return h.Certificate(), nil
}

// GetClientCertificate is for tls.Config.GetClientCertificate.
func (h *CertificateHolder) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return h.Certificate(), nil
}

// ServerTLSConfig returns the TLS configuration of a manager's remote
// listener: TLS 1.3 only, the manager's certificate from holder, and client
// certificates verified against root when given.
//
// A client certificate is optional at the TLS layer because a joining node
// has none when it fetches the root CA and asks for its certificate. Every
// other call is refused per call by the Authorizer's interceptors, so a
// server that uses this configuration must install them. A certificate
// that does not chain to root fails the handshake.
//
// It fails with ErrInvalidConfig unless holder holds a manager certificate.
func ServerTLSConfig(root *RootCA, holder *CertificateHolder) (*tls.Config, error) {
	if root == nil || holder == nil {
		return nil, fmt.Errorf("%w: ServerTLSConfig needs a root CA and a certificate holder", ErrInvalidConfig)
	}
	if role := holder.Identity().Role; role != RoleManager {
		return nil, fmt.Errorf("%w: a server needs a manager certificate, not a %s one", ErrInvalidConfig, role)
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: holder.GetCertificate,
		ClientAuth:     tls.VerifyClientCertIfGiven,
		ClientCAs:      root.pool,
	}, nil
}

// ClientTLSConfig returns the TLS configuration of a node dialing a
// manager: TLS 1.3 only, the manager verified against root under the name
// ManagerServerName (whatever address was dialed) and as a manager, and the
// node's own certificate from holder. A nil holder dials without a
// certificate, which only the CA's bootstrap calls accept.
func ClientTLSConfig(root *RootCA, holder *CertificateHolder) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    root.pool,
		ServerName: ManagerServerName,
		// The chain and the name are verified by crypto/tls first; this
		// adds that the server is a manager of this cluster, not merely a
		// holder of one of its certificates.
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyManagerPeer(root, cs)
		},
	}
	if holder != nil {
		cfg.GetClientCertificate = holder.GetClientCertificate
	}
	return cfg
}

func verifyManagerPeer(root *RootCA, cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return fmt.Errorf("%w: the server's certificate was not verified", ErrInvalidCertificate)
	}
	id, err := root.identityOf(cs.VerifiedChains[0][0])
	if err != nil {
		return err
	}
	if id.Role != RoleManager {
		return fmt.Errorf("%w: the server is a %s, not a manager", ErrInvalidCertificate, id.Role)
	}
	return nil
}
