package ca

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestBootstrapFlow is the whole path of a new node: fetch the root with no
// certificate, check it against the token, get a certificate with the
// token, then call with that certificate.
func TestBootstrapFlow(t *testing.T) {
	m := startManager(t, managerOptions{})
	tests := []struct {
		role   Role
		method string
	}{
		{RoleClient, probeClientAllowed},
		{RoleManager, probeManagerOnly},
	}
	for _, tt := range tests {
		t.Run(string(tt.role), func(t *testing.T) {
			ctx := testContext(t)
			creds, err := Join(ctx, m.addr, tt.role, m.authority.token(tt.role))
			if err != nil {
				t.Fatalf("Join: %v", err)
			}
			if !creds.RootCA.Equal(m.root) || creds.RootCA.CanSign() {
				t.Fatal("Join returned another root, or one with a key")
			}
			holder := newHolder(t, creds.KeyPair)
			id := holder.Identity()
			if id.Role != tt.role || id.ClusterID != m.root.ClusterID() {
				t.Fatalf("joined as %+v, want a %s of %s", id, tt.role, m.root.ClusterID())
			}
			got, err := callProbe(ctx, dial(t, m.addr, ClientTLSConfig(creds.RootCA, holder)), tt.method)
			if err != nil {
				t.Fatalf("call with the new certificate: %v", err)
			}
			if want := "node=" + id.NodeID + " role=" + string(tt.role) + " fwd="; got != want {
				t.Fatalf("answer = %q, want %q", got, want)
			}
		})
	}
}

// TestJoinRefused checks the tokens the CA must not accept.
func TestJoinRefused(t *testing.T) {
	m := startManager(t, managerOptions{})
	other := newTestRoot(t, "other")
	oldClientToken := m.authority.token(RoleClient)
	m.authority.setToken(RoleClient, NewJoinToken(m.root).String()) // rotation

	tests := []struct {
		name     string
		role     Role
		token    string
		setup    func()
		wantCode codes.Code
		wantErr  error
	}{
		{name: "wrong secret", role: RoleManager, token: NewJoinToken(m.root).String(), wantCode: codes.Unauthenticated},
		{name: "rotated token", role: RoleClient, token: oldClientToken, wantCode: codes.Unauthenticated},
		{name: "client token for a manager", role: RoleManager, token: m.authority.token(RoleClient), wantCode: codes.Unauthenticated},
		{name: "role disabled", role: RoleClient, token: m.authority.token(RoleClient),
			setup: func() { m.authority.setToken(RoleClient, "") }, wantCode: codes.PermissionDenied},
		{name: "another cluster's token", role: RoleManager, token: NewJoinToken(other).String(), wantErr: ErrRootCAMismatch},
		{name: "malformed token", role: RoleManager, token: "SHLTKN-1-x-y", wantErr: ErrMalformedToken},
		{name: "unknown role", role: "admin", token: m.authority.token(RoleManager), wantErr: ErrInvalidIdentity},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			_, err := Join(testContext(t), m.addr, tt.role, tt.token)
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Join = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && status.Code(err) != tt.wantCode {
				t.Fatalf("Join = %v, want code %s", err, tt.wantCode)
			}
		})
	}
}

// TestJoinChecksRootBeforeSendingSecret points a node holding cluster A's
// token at a manager of cluster B (an impostor, or a mistyped address). The
// node must stop after fetching B's root, and B must never see the secret.
func TestJoinChecksRootBeforeSendingSecret(t *testing.T) {
	a := startManager(t, managerOptions{clusterID: "cluster-a"})
	b := startManager(t, managerOptions{clusterID: "cluster-b"})
	token := a.authority.token(RoleManager)
	secret := token[strings.LastIndex(token, "-")+1:]

	_, err := Join(testContext(t), b.addr, RoleManager, token)
	if !errors.Is(err, ErrRootCAMismatch) {
		t.Fatalf("Join against another cluster = %v, want ErrRootCAMismatch", err)
	}
	seen := b.recorder.requests()
	if len(seen) != 1 || !strings.HasPrefix(seen[0], api.CA_GetRootCACertificate_FullMethodName) {
		t.Fatalf("the impostor received %q; want the root CA request alone", seen)
	}
	for _, r := range seen {
		if strings.Contains(r, secret) {
			t.Fatalf("the impostor received the secret: %q", r)
		}
	}
}

// TestJoinAssignsNodeIDs checks that the CA, not the node, names new nodes.
func TestJoinAssignsNodeIDs(t *testing.T) {
	m := startManager(t, managerOptions{})
	ids := map[string]bool{}
	for range 3 {
		creds, err := Join(testContext(t), m.addr, RoleClient, m.authority.token(RoleClient))
		if err != nil {
			t.Fatal(err)
		}
		ids[newHolder(t, creds.KeyPair).Identity().NodeID] = true
	}
	if len(ids) != 3 {
		t.Fatalf("three joins got %d node IDs", len(ids))
	}
}

// TestIssueNodeCertificateRequests sends malformed requests straight to the
// service, as a node that does not use Join could.
func TestIssueNodeCertificateRequests(t *testing.T) {
	m := startManager(t, managerOptions{})
	client := api.NewCAClient(dial(t, m.addr, ClientTLSConfig(m.root, nil)))
	csr, _, err := NewCSR()
	if err != nil {
		t.Fatal(err)
	}
	token := m.authority.token(RoleClient)
	tests := []struct {
		name string
		req  *api.IssueNodeCertificateRequest
		want codes.Code
	}{
		{"valid", &api.IssueNodeCertificateRequest{Csr: csr, Role: api.CertificateRole_CERTIFICATE_ROLE_CLIENT, Token: token}, codes.OK},
		{"no role", &api.IssueNodeCertificateRequest{Csr: csr, Token: token}, codes.InvalidArgument},
		{"no CSR", &api.IssueNodeCertificateRequest{Role: api.CertificateRole_CERTIFICATE_ROLE_CLIENT, Token: token}, codes.InvalidArgument},
		{"garbage CSR", &api.IssueNodeCertificateRequest{Csr: []byte("csr"), Role: api.CertificateRole_CERTIFICATE_ROLE_CLIENT, Token: token}, codes.InvalidArgument},
		{"no token", &api.IssueNodeCertificateRequest{Csr: csr, Role: api.CertificateRole_CERTIFICATE_ROLE_CLIENT}, codes.InvalidArgument},
		{"huge token", &api.IssueNodeCertificateRequest{Csr: csr, Role: api.CertificateRole_CERTIFICATE_ROLE_CLIENT, Token: strings.Repeat("SHLTKN-", 1000)}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.IssueNodeCertificate(testContext(t), tt.req)
			if status.Code(err) != tt.want {
				t.Fatalf("IssueNodeCertificate = %v, want %s", err, tt.want)
			}
		})
	}
}

// TestRenewNodeCertificate renews over RPC for the identity of the
// caller's certificate, and refuses whoever has none or was removed.
func TestRenewNodeCertificate(t *testing.T) {
	m := startManager(t, managerOptions{})
	ctx := testContext(t)
	holder := newHolder(t, issuePair(t, m.root, RoleClient, time.Now()))
	client := api.NewCAClient(dial(t, m.addr, ClientTLSConfig(m.root, holder)))

	kp, err := RenewKeyPair(ctx, client, m.root, holder.Identity())
	if err != nil {
		t.Fatalf("RenewKeyPair: %v", err)
	}
	renewed := newHolder(t, kp)
	if renewed.Identity() != holder.Identity() {
		t.Fatalf("renewed identity %+v, want %+v", renewed.Identity(), holder.Identity())
	}
	if renewed.Leaf().SerialNumber.Cmp(holder.Leaf().SerialNumber) == 0 || renewed.Leaf().PublicKey.(*ecdsa.PublicKey).Equal(holder.Leaf().PublicKey) {
		t.Fatal("the renewed certificate has the old serial or the old key")
	}

	// Asking for another identity than the certificate's is caught by the
	// renewing node too.
	other := holder.Identity()
	other.Role = RoleManager
	if _, err := RenewKeyPair(ctx, client, m.root, other); !errors.Is(err, ErrInvalidCertificate) {
		t.Fatalf("RenewKeyPair for another role = %v, want ErrInvalidCertificate", err)
	}

	anonymous := api.NewCAClient(dial(t, m.addr, ClientTLSConfig(m.root, nil)))
	if _, err := RenewKeyPair(ctx, anonymous, m.root, holder.Identity()); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("renewal without a certificate = %v, want Unauthenticated", err)
	}
	m.denyList.remove(holder.Identity().NodeID)
	if _, err := RenewKeyPair(ctx, client, m.root, holder.Identity()); !IsNodeRemoved(err) {
		t.Fatalf("renewal by a removed node = %v, want a node-removed refusal", err)
	}
}

func TestRenewNeedsAuthorizer(t *testing.T) {
	s, err := NewServer(ServerConfig{Authority: newMemAuthority(newTestRoot(t, "c1"))})
	if err != nil {
		t.Fatal(err)
	}
	csr, _, _ := NewCSR()
	if _, err := s.RenewNodeCertificate(context.Background(), &api.RenewNodeCertificateRequest{Csr: csr}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("RenewNodeCertificate without a Caller = %v, want Unauthenticated", err)
	}
}

func TestNewServerConfig(t *testing.T) {
	a := newMemAuthority(newTestRoot(t, "c1"))
	tests := []struct {
		name string
		cfg  ServerConfig
		ok   bool
	}{
		{"defaults", ServerConfig{Authority: a}, true},
		{"seconds-long certificates", ServerConfig{Authority: a, CertificateValidity: 10 * time.Second}, true},
		{"no authority", ServerConfig{}, false},
		{"validity under a second", ServerConfig{Authority: a, CertificateValidity: time.Millisecond}, false},
		{"backdate over a tenth", ServerConfig{Authority: a, CertificateValidity: time.Hour, Backdate: 7 * time.Minute}, false},
		{"negative backdate", ServerConfig{Authority: a, Backdate: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewServer(tt.cfg)
			if tt.ok != (err == nil) || err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewServer = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
