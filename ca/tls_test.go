package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"testing"
	"time"
)

func TestServerTLSConfigNeedsManager(t *testing.T) {
	root := newTestRoot(t, "c1")
	client := newHolder(t, issuePair(t, root, RoleClient, time.Now()))
	if _, err := ServerTLSConfig(root, client); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("ServerTLSConfig with a client certificate = %v, want ErrInvalidConfig", err)
	}
	cfg, err := ServerTLSConfig(root, newHolder(t, issuePair(t, root, RoleManager, time.Now())))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Fatalf("MinVersion %x, ClientAuth %v", cfg.MinVersion, cfg.ClientAuth)
	}
}

// handshake runs one TLS handshake between a server and a client config
// over loopback and returns the client's and the server's errors.
func handshake(t *testing.T, server, client *tls.Config) (clientErr, serverErr error) {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", server)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	serverDone := make(chan error, 1)
	go func() {
		c, err := lis.Accept()
		if err != nil {
			serverDone <- err
			return
		}
		defer c.Close()
		if err := c.(*tls.Conn).Handshake(); err != nil {
			serverDone <- err
			return
		}
		_, err = c.Write([]byte{1})
		serverDone <- err
	}()
	c, err := tls.Dial("tcp", lis.Addr().String(), client)
	if err == nil {
		// In TLS 1.3 the server judges the client's certificate after the
		// client finished: the server's byte, or its alert, is the verdict.
		_, err = c.Read(make([]byte, 1))
		c.Close()
	}
	return err, <-serverDone
}

func TestHandshakes(t *testing.T) {
	root := newTestRoot(t, "c1")
	now := time.Now()
	manager := newHolder(t, issuePair(t, root, RoleManager, now))
	client := newHolder(t, issuePair(t, root, RoleClient, now))
	server, err := ServerTLSConfig(root, manager)
	if err != nil {
		t.Fatal(err)
	}
	stranger := newHolder(t, issuePair(t, newTestRoot(t, "c2"), RoleManager, now))
	tls12 := ClientTLSConfig(root, client)
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
	// A client certificate has neither the name nor the usage to serve,
	// even if a server is configured with one by hand.
	impostor := &tls.Config{Certificates: []tls.Certificate{*client.Certificate()}, MinVersion: tls.VersionTLS13}

	// A certificate fit to serve in every way but its role, which the CA
	// never issues; the client's own check refuses it.
	notManager := &tls.Config{Certificates: []tls.Certificate{servingClientCert(t, root)}, MinVersion: tls.VersionTLS13}

	tests := []struct {
		name           string
		server, client *tls.Config
		ok             bool
	}{
		{"client with a certificate", server, ClientTLSConfig(root, client), true},
		{"client without a certificate", server, ClientTLSConfig(root, nil), true},
		{"client certificate of another cluster", server, ClientTLSConfig(root, stranger), false},
		{"client limited to TLS 1.2", server, tls12, false},
		{"server with a client certificate", impostor, ClientTLSConfig(root, nil), false},
		{"server of another cluster", server, ClientTLSConfig(newTestRoot(t, "c2"), nil), false},
		{"server whose certificate names a client", notManager, ClientTLSConfig(root, nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientErr, serverErr := handshake(t, tt.server, tt.client)
			t.Logf("client: %v; server: %v", clientErr, serverErr)
			if ok := clientErr == nil && serverErr == nil; ok != tt.ok {
				t.Fatalf("handshake: client %v, server %v; want ok=%v", clientErr, serverErr, tt.ok)
			}
		})
	}
}

// TestHolderSwap checks that a renewed certificate is served at once, and
// that a bad one is refused without disturbing the current one.
func TestHolderSwap(t *testing.T) {
	root := newTestRoot(t, "c1")
	first := issuePair(t, root, RoleManager, time.Now())
	h := newHolder(t, first)
	second, err := issuePair(t, root, RoleManager, time.Now()).TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Set(second); err != nil {
		t.Fatal(err)
	}
	if got, _ := h.GetCertificate(nil); got != second {
		t.Fatal("GetCertificate does not serve the new certificate")
	}
	if got, _ := h.GetClientCertificate(nil); got != second {
		t.Fatal("GetClientCertificate does not serve the new certificate")
	}
	if err := h.Set(&tls.Certificate{Certificate: second.Certificate}); !errors.Is(err, ErrInvalidCertificate) {
		t.Fatalf("Set without a leaf = %v, want ErrInvalidCertificate", err)
	}
	if h.Certificate() != second {
		t.Fatal("a refused Set changed the served certificate")
	}
}

// servingClientCert signs, with root's key, a certificate with the name and
// usage of a manager's but the role of a client.
func servingClientCert(t *testing.T, root *RootCA) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{NodeID: "n1", Role: RoleClient, ClusterID: root.ClusterID()}
	tmpl := &x509.Certificate{
		SerialNumber: newSerial(), Subject: id.subject(), DNSNames: []string{ManagerServerName},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root.cert, &key.PublicKey, root.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
