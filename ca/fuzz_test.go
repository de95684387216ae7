package ca

import (
	"testing"
	"time"
)

// Fuzz targets for every decoder of bytes that come from the network or
// the disk. Run one with go test -fuzz FuzzParseJoinToken ./ca/.

// FuzzParseJoinToken checks that the parser never panics and that a token
// it accepts has exactly one spelling: its own.
func FuzzParseJoinToken(f *testing.F) {
	root, err := CreateRootCA("c1", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(NewJoinToken(root).String())
	f.Add("SHLTKN-1--")
	f.Add("SHLTKN-1-" + root.Digest() + "-zzzzzzzzzzzzzzzzzzzzzzzzz")
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseJoinToken(s)
		if err != nil {
			return
		}
		if tok.String() != s {
			t.Fatalf("ParseJoinToken(%q) accepted a token that prints as %q", s, tok.String())
		}
	})
}

// FuzzParseRootCA feeds what GetRootCACertificate answers, and what the
// store holds, to ParseRootCA.
func FuzzParseRootCA(f *testing.F) {
	root, err := CreateRootCA("c1", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	blob, err := root.MarshalPEM()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob)
	f.Add(root.CertificatePEM())
	f.Add([]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRootCA(data)
		if err != nil {
			return
		}
		// What is accepted is a usable root.
		if r.ClusterID() == "" || r.Pool() == nil {
			t.Fatal("accepted a root without a cluster ID")
		}
	})
}

// FuzzParseCSR feeds what IssueNodeCertificate and RenewNodeCertificate
// receive to ParseCSR.
func FuzzParseCSR(f *testing.F) {
	csr, _, err := NewCSR()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(csr)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCSR(data)
		if err != nil {
			return
		}
		if !isP256(c.PublicKey) || c.CheckSignature() != nil {
			t.Fatal("accepted a request the CA must not sign")
		}
	})
}

// FuzzParseCertificatePEM feeds what a joining or renewing node receives,
// and what it reads from disk, to the certificate and key pair parsers.
func FuzzParseCertificatePEM(f *testing.F) {
	root, err := CreateRootCA("c1", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	kp, err := root.NewKeyPair("n1", RoleClient, time.Now(), time.Now().Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(kp.CertificatePEM, kp.KeyPEM)
	f.Add(root.CertificatePEM(), []byte{})
	f.Fuzz(func(t *testing.T, certPEM, keyPEM []byte) {
		if c, err := ParseCertificatePEM(certPEM); err == nil {
			_, _ = IdentityFromCertificate(c)
			_, _ = root.VerifyNodeCertificate(c, time.Now())
		}
		_, _ = KeyPair{CertificatePEM: certPEM, KeyPEM: keyPEM}.TLSCertificate()
	})
}
