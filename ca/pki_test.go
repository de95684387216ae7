package ca

import (
	"context"
	"crypto/tls"
	"sync"
	"testing"
	"time"
)

// testValidity is the lifetime of the certificates tests issue unless they
// say otherwise.
const testValidity = time.Hour

// newTestRoot creates a root CA for clusterID, dated now.
func newTestRoot(t *testing.T, clusterID string) *RootCA {
	t.Helper()
	root, err := CreateRootCA(clusterID, time.Now())
	if err != nil {
		t.Fatalf("CreateRootCA: %v", err)
	}
	return root
}

// issuePair issues a key pair for a new node with role under root, valid
// around now.
func issuePair(t *testing.T, root *RootCA, role Role, now time.Time) KeyPair {
	t.Helper()
	return issuePairFor(t, root, NewID(), role, now)
}

func issuePairFor(t *testing.T, root *RootCA, nodeID string, role Role, now time.Time) KeyPair {
	t.Helper()
	kp, err := root.NewKeyPair(nodeID, role, now.Add(-time.Minute), now.Add(testValidity))
	if err != nil {
		t.Fatalf("NewKeyPair(%s): %v", role, err)
	}
	return kp
}

// newHolder returns a holder serving kp.
func newHolder(t *testing.T, kp KeyPair) *CertificateHolder {
	t.Helper()
	cert, err := kp.TLSCertificate()
	if err != nil {
		t.Fatalf("TLSCertificate: %v", err)
	}
	h, err := NewCertificateHolder(cert)
	if err != nil {
		t.Fatalf("NewCertificateHolder: %v", err)
	}
	return h
}

// memAuthority is an in-memory Authority: what the manager's store
// provides, without the store.
type memAuthority struct {
	mu     sync.Mutex
	root   *RootCA
	tokens map[Role]string
}

func newMemAuthority(root *RootCA) *memAuthority {
	return &memAuthority{root: root, tokens: map[Role]string{
		RoleManager: NewJoinToken(root).String(),
		RoleClient:  NewJoinToken(root).String(),
	}}
}

func (a *memAuthority) RootCA(context.Context) (*RootCA, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.root, nil
}

func (a *memAuthority) JoinToken(_ context.Context, role Role) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tokens[role], nil
}

func (a *memAuthority) token(role Role) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tokens[role]
}

// setToken replaces the token of role; "" disables joining with it.
func (a *memAuthority) setToken(role Role, token string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tokens[role] = token
}

// memDenyList is an in-memory DenyList.
type memDenyList struct {
	mu      sync.Mutex
	removed map[string]bool
	revoked map[string]bool
}

func (d *memDenyList) IsRevoked(nodeID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.revoked[nodeID]
}

func (d *memDenyList) revoke(nodeID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.revoked == nil {
		d.revoked = map[string]bool{}
	}
	d.revoked[nodeID] = true
}

func (d *memDenyList) IsRemoved(nodeID string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.removed[nodeID]
}

func (d *memDenyList) remove(nodeID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed == nil {
		d.removed = map[string]bool{}
	}
	d.removed[nodeID] = true
}

// tlsCert parses kp for tests that build tls.Configs by hand.
func tlsCert(t *testing.T, kp KeyPair) tls.Certificate {
	t.Helper()
	c, err := kp.TLSCertificate()
	if err != nil {
		t.Fatalf("TLSCertificate: %v", err)
	}
	return *c
}
