package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"slices"
	"testing"
	"time"
)

func TestCreateRootCA(t *testing.T) {
	now := time.Now()
	root, err := CreateRootCA("cluster-1", now)
	if err != nil {
		t.Fatal(err)
	}
	c := root.Certificate()
	if !c.IsCA || !c.MaxPathLenZero || c.MaxPathLen != 0 {
		t.Errorf("IsCA %v, MaxPathLen %d (zero %v); want a CA that allows no intermediate", c.IsCA, c.MaxPathLen, c.MaxPathLenZero)
	}
	// Certificates keep whole seconds.
	if want := now.Add(RootCAValidity).Truncate(time.Second); !c.NotAfter.Equal(want) {
		t.Errorf("root valid until %s, want %s", c.NotAfter, want)
	}
	if root.ClusterID() != "cluster-1" || c.Subject.CommonName != rootCACommonName {
		t.Errorf("subject %q; want CN %s and O cluster-1", c.Subject, rootCACommonName)
	}
	if !isP256(c.PublicKey) || !root.CanSign() {
		t.Error("want an ECDSA P-256 root that can sign")
	}
	if _, err := CreateRootCA("", now); !errors.Is(err, ErrInvalidIdentity) {
		t.Errorf("CreateRootCA with no cluster ID = %v, want ErrInvalidIdentity", err)
	}
}

// TestRootCARoundTrip checks the forms in which a root travels: with its
// key through the store, without it to every node.
func TestRootCARoundTrip(t *testing.T) {
	root := newTestRoot(t, "cluster-1")
	blob, err := root.MarshalPEM()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := ParseRootCA(blob)
	if err != nil {
		t.Fatalf("ParseRootCA(MarshalPEM): %v", err)
	}
	if !loaded.CanSign() || !loaded.Equal(root) || loaded.Digest() != root.Digest() {
		t.Fatal("the loaded root differs from the original or cannot sign")
	}
	// Another manager's copy issues certificates that the original verifies.
	kp := issuePair(t, loaded, RoleManager, time.Now())
	if _, err := root.VerifyNodeCertificate(newHolder(t, kp).Leaf(), time.Now()); err != nil {
		t.Fatalf("a certificate from the loaded root does not verify under the original: %v", err)
	}

	public, err := ParseRootCA(root.CertificatePEM())
	if err != nil {
		t.Fatalf("ParseRootCA(CertificatePEM): %v", err)
	}
	if public.CanSign() || !public.Equal(root) {
		t.Fatal("the certificate-only root should equal the original and not sign")
	}
	if _, err := public.NewKeyPair(NewID(), RoleClient, time.Now(), time.Now().Add(time.Hour)); !errors.Is(err, ErrNoSigningKey) {
		t.Errorf("issuing without the key = %v, want ErrNoSigningKey", err)
	}
	if b, _ := root.WithoutKey().MarshalPEM(); !bytes.Equal(b, root.CertificatePEM()) {
		t.Error("MarshalPEM of WithoutKey should be the certificate alone")
	}
}

func TestParseRootCARefuses(t *testing.T) {
	root := newTestRoot(t, "cluster-1")
	other := newTestRoot(t, "cluster-2")
	blob, _ := root.MarshalPEM()
	otherBlob, _ := other.MarshalPEM()
	keyOnly := blob[len(root.CertificatePEM()):]
	node := issuePair(t, root, RoleManager, time.Now())
	p384 := selfSignedCA(t, elliptic.P384(), []string{"cluster-1"})
	noCluster := selfSignedCA(t, elliptic.P256(), nil)
	withHeader := pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: root.Certificate().Raw})

	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"not PEM", []byte("hello")},
		{"key only", keyOnly},
		{"two certificates", append(root.CertificatePEM(), other.CertificatePEM()...)},
		{"another root's key", append(root.CertificatePEM(), otherBlob[len(other.CertificatePEM()):]...)},
		{"node certificate", node.CertificatePEM},
		{"P-384 root", p384},
		{"root without a cluster ID", noCluster},
		{"PEM headers", withHeader},
		{"trailing garbage", append(root.CertificatePEM(), "junk"...)},
		{"unexpected block", append(root.CertificatePEM(), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}})...)},
		{"oversized", bytes.Repeat([]byte{' '}, maxPEMSize+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseRootCA(tt.data); !errors.Is(err, ErrInvalidRootCA) {
				t.Fatalf("ParseRootCA = %v, want ErrInvalidRootCA", err)
			}
		})
	}
}

// TestNodeCertificateFields checks what a manager and a client certificate
// say, since TLS verification and authorisation rely on each field.
func TestNodeCertificateFields(t *testing.T) {
	root := newTestRoot(t, "cluster-1")
	now := time.Now().Truncate(time.Second)
	tests := []struct {
		role     Role
		dnsNames []string
		ekus     []x509.ExtKeyUsage
	}{
		{RoleManager, []string{ManagerServerName}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}},
		{RoleClient, nil, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			csr, _, err := NewCSR()
			if err != nil {
				t.Fatal(err)
			}
			certPEM, err := root.IssueNodeCertificate(csr, "node-1", tt.role, now.Add(-time.Minute), now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			c, err := ParseCertificatePEM(certPEM)
			if err != nil {
				t.Fatal(err)
			}
			s := c.Subject
			if s.CommonName != "node-1" || !slices.Equal(s.OrganizationalUnit, []string{string(tt.role)}) || !slices.Equal(s.Organization, []string{"cluster-1"}) {
				t.Errorf("subject %q; want CN node-1, OU %s, O cluster-1", s, tt.role)
			}
			if !slices.Equal(c.DNSNames, tt.dnsNames) || len(c.IPAddresses) != 0 {
				t.Errorf("DNS names %v, IPs %v; want %v and no IP", c.DNSNames, c.IPAddresses, tt.dnsNames)
			}
			if !slices.Equal(c.ExtKeyUsage, tt.ekus) || c.KeyUsage != x509.KeyUsageDigitalSignature || c.IsCA {
				t.Errorf("EKU %v, key usage %v, CA %v", c.ExtKeyUsage, c.KeyUsage, c.IsCA)
			}
			if !c.NotBefore.Equal(now.Add(-time.Minute)) || !c.NotAfter.Equal(now.Add(time.Hour)) {
				t.Errorf("valid %s to %s", c.NotBefore, c.NotAfter)
			}
			id, err := root.VerifyNodeCertificate(c, now)
			if want := (Identity{NodeID: "node-1", Role: tt.role, ClusterID: "cluster-1"}); err != nil || id != want {
				t.Errorf("VerifyNodeCertificate = %+v, %v; want %+v", id, err, want)
			}
		})
	}
}

func TestIssueNodeCertificateRefuses(t *testing.T) {
	root := newTestRoot(t, "cluster-1")
	now := time.Now()
	csr, _, err := NewCSR()
	if err != nil {
		t.Fatal(err)
	}
	p384Key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384DER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, p384Key)
	p384CSR := pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: p384DER})
	block, _ := pem.Decode(csr)
	tampered := bytes.Clone(block.Bytes)
	tampered[len(tampered)-3] ^= 0xff // inside the signature
	tamperedCSR := pem.EncodeToMemory(&pem.Block{Type: pemCSR, Bytes: tampered})

	tests := []struct {
		name   string
		csr    []byte
		nodeID string
		role   Role
		want   error
	}{
		{"P-384 key", p384CSR, "n1", RoleClient, ErrInvalidCSR},
		{"bad signature", tamperedCSR, "n1", RoleClient, ErrInvalidCSR},
		{"certificate instead of CSR", root.CertificatePEM(), "n1", RoleClient, ErrInvalidCSR},
		{"no node ID", csr, "", RoleClient, ErrInvalidIdentity},
		{"unknown role", csr, "n1", "admin", ErrInvalidIdentity},
		{"node ID with a slash", csr, "n/1", RoleClient, ErrInvalidIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := root.IssueNodeCertificate(tt.csr, tt.nodeID, tt.role, now, now.Add(time.Hour)); !errors.Is(err, tt.want) {
				t.Fatalf("IssueNodeCertificate = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestIssueStopsAtRootExpiry(t *testing.T) {
	root := newTestRoot(t, "cluster-1")
	end := root.Certificate().NotAfter
	kp, err := root.NewKeyPair("n1", RoleClient, end.Add(-time.Hour), end.Add(90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := newHolder(t, kp).Leaf().NotAfter; !got.Equal(end) {
		t.Fatalf("NotAfter %s, want the root's %s", got, end)
	}
	if _, err := root.NewKeyPair("n1", RoleClient, end, end.Add(time.Hour)); err == nil {
		t.Fatal("a certificate that starts when the root ends was issued")
	}
}

func TestVerifyNodeCertificateRefuses(t *testing.T) {
	root := newTestRoot(t, "cluster-1")
	other := newTestRoot(t, "cluster-2")
	now := time.Now()
	leaf := newHolder(t, issuePair(t, root, RoleClient, now)).Leaf()
	if _, err := other.VerifyNodeCertificate(leaf, now); !errors.Is(err, ErrInvalidCertificate) {
		t.Errorf("verify under another root = %v", err)
	}
	if _, err := root.VerifyNodeCertificate(leaf, leaf.NotAfter.Add(time.Second)); !errors.Is(err, ErrInvalidCertificate) {
		t.Errorf("verify after expiry = %v", err)
	}
}

func TestIdentityFromCertificateRefuses(t *testing.T) {
	tests := []struct {
		name    string
		subject pkix.Name
	}{
		{"two OUs", pkix.Name{CommonName: "n1", OrganizationalUnit: []string{"manager", "client"}, Organization: []string{"c"}}},
		{"no O", pkix.Name{CommonName: "n1", OrganizationalUnit: []string{"manager"}}},
		{"unknown role", pkix.Name{CommonName: "n1", OrganizationalUnit: []string{"admin"}, Organization: []string{"c"}}},
		{"empty CN", pkix.Name{OrganizationalUnit: []string{"client"}, Organization: []string{"c"}}},
		{"CN with a space", pkix.Name{CommonName: "n 1", OrganizationalUnit: []string{"client"}, Organization: []string{"c"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := IdentityFromCertificate(&x509.Certificate{Subject: tt.subject}); !errors.Is(err, ErrInvalidCertificate) {
				t.Fatalf("IdentityFromCertificate = %v, want ErrInvalidCertificate", err)
			}
		})
	}
}

func TestKeyPairMismatch(t *testing.T) {
	root := newTestRoot(t, "cluster-1")
	a := issuePair(t, root, RoleClient, time.Now())
	b := issuePair(t, root, RoleClient, time.Now())
	if _, err := (KeyPair{CertificatePEM: a.CertificatePEM, KeyPEM: b.KeyPEM}).TLSCertificate(); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("TLSCertificate of a mismatched pair = %v, want ErrInvalidKey", err)
	}
}

// selfSignedCA returns a PEM CA certificate made without CreateRootCA, for
// roots that CreateRootCA would never make.
func selfSignedCA(t *testing.T, curve elliptic.Curve, org []string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x", Organization: org},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return encodeCertificatePEM(der)
}
