package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"fmt"
)

// PEM block types this package reads and writes.
const (
	pemCertificate = "CERTIFICATE"
	pemCSR         = "CERTIFICATE REQUEST"
	pemPrivateKey  = "PRIVATE KEY" // PKCS#8

	// pemSealedPrivateKey holds a PKCS#8 key sealed with a KeySealer.
	pemSealedPrivateKey = "SHOAL SEALED PRIVATE KEY"
)

// maxPEMSize bounds the PEM input this package parses, before parsing: a
// certificate, key or request of ours is well under 2 KiB, and bytes from
// the network should not cost more than that to refuse.
const maxPEMSize = 64 << 10

// decodePEM splits data into PEM blocks. Every block must be of one of the
// wanted types, and nothing but white space may follow the last block, so
// that two parsers of the same bytes cannot see different contents.
func decodePEM(data []byte, wanted ...string) ([]*pem.Block, error) {
	if len(data) > maxPEMSize {
		return nil, fmt.Errorf("%d bytes of PEM, more than %d", len(data), maxPEMSize)
	}
	var blocks []*pem.Block
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if len(b.Headers) != 0 {
			return nil, fmt.Errorf("PEM block %q has headers", b.Type)
		}
		ok := false
		for _, w := range wanted {
			ok = ok || b.Type == w
		}
		if !ok {
			return nil, fmt.Errorf("unexpected PEM block %q", b.Type)
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return nil, fmt.Errorf("no PEM block")
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%d bytes after the last PEM block", len(rest))
	}
	return blocks, nil
}

// ParseCertificatePEM parses exactly one PEM-encoded certificate, as the CA
// service returns them. It checks the encoding only: verify the result with
// RootCA.VerifyNodeCertificate. Errors wrap ErrInvalidCertificate.
func ParseCertificatePEM(data []byte) (*x509.Certificate, error) {
	blocks, err := decodePEM(data, pemCertificate)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCertificate, err)
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("%w: %d certificates, want 1", ErrInvalidCertificate, len(blocks))
	}
	cert, err := x509.ParseCertificate(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCertificate, err)
	}
	return cert, nil
}

// ParseCSR parses a PEM-encoded certificate request and checks what the CA
// relies on: an ECDSA P-256 public key, and a signature by that key, which
// proves the requester holds the private key. The subject and extensions
// are not looked at; the CA decides them. Errors wrap ErrInvalidCSR.
func ParseCSR(data []byte) (*x509.CertificateRequest, error) {
	blocks, err := decodePEM(data, pemCSR)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("%w: %d requests, want 1", ErrInvalidCSR, len(blocks))
	}
	csr, err := x509.ParseCertificateRequest(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	if !isP256(csr.PublicKey) {
		return nil, fmt.Errorf("%w: public key is not ECDSA P-256", ErrInvalidCSR)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCSR, err)
	}
	return csr, nil
}

// parseKeyPEM parses one PKCS#8 ECDSA P-256 private key. Errors wrap
// ErrInvalidKey and never include key material.
func parseKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	blocks, err := decodePEM(data, pemPrivateKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	if len(blocks) != 1 {
		return nil, fmt.Errorf("%w: %d keys, want 1", ErrInvalidKey, len(blocks))
	}
	return parsePKCS8(blocks[0].Bytes)
}

func parsePKCS8(der []byte) (*ecdsa.PrivateKey, error) {
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !isP256(&key.PublicKey) {
		return nil, fmt.Errorf("%w: not an ECDSA P-256 key", ErrInvalidKey)
	}
	return key, nil
}

func encodeKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("ca: marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
}

func encodeCertificatePEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
}

func isP256(pub any) bool {
	k, ok := pub.(*ecdsa.PublicKey)
	return ok && k.Curve == elliptic.P256()
}
