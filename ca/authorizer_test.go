package ca

import (
	"context"
	"crypto/tls"
	"errors"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestAuthorization drives real TLS handshakes and gRPC calls against a
// manager and checks who gets through, and with which refusal.
func TestAuthorization(t *testing.T) {
	m := startManager(t, managerOptions{})
	other := newTestRoot(t, "other-cluster")
	now := time.Now()
	managerPair := issuePair(t, m.root, RoleManager, now)
	clientPair := issuePair(t, m.root, RoleClient, now)
	removedPair := issuePair(t, m.root, RoleManager, now)
	strangerPair := issuePair(t, other, RoleManager, now)
	removedID := newHolder(t, removedPair).Identity().NodeID
	m.denyList.remove(removedID)
	managerID := newHolder(t, managerPair).Identity().NodeID
	clientID := newHolder(t, clientPair).Identity().NodeID

	withCert := func(kp KeyPair) *tls.Config { return ClientTLSConfig(m.root, newHolder(t, kp)) }
	// The stranger trusts our root, so only our side can refuse it, during
	// the handshake (TestHandshakes checks why; the client's error here
	// depends on timing).
	stranger := ClientTLSConfig(m.root, newHolder(t, strangerPair))

	forward := func(nodeID string, role Role) func(context.Context) context.Context {
		return func(ctx context.Context) context.Context {
			return metadata.AppendToOutgoingContext(ctx, MetadataForwardedNodeID, nodeID, MetadataForwardedRole, string(role))
		}
	}
	tests := []struct {
		name     string
		tls      *tls.Config // nil: plain TCP
		method   string
		ctx      func(context.Context) context.Context
		want     string // answer when the call is accepted
		wantCode codes.Code
		wantText string // in the refusal
	}{
		{"manager calls a manager method", withCert(managerPair), probeManagerOnly, nil, "node=" + managerID + " role=manager fwd=", codes.OK, ""},
		{"client calls a client method", withCert(clientPair), probeClientAllowed, nil, "node=" + clientID + " role=client fwd=", codes.OK, ""},
		{"manager calls a client method", withCert(managerPair), probeClientAllowed, nil, "node=" + managerID + " role=manager fwd=", codes.OK, ""},
		{"client calls a manager method", withCert(clientPair), probeManagerOnly, nil, "", codes.PermissionDenied, "role client may not call"},
		{"method without a rule", withCert(managerPair), probeUnlisted, nil, "", codes.PermissionDenied, "no access rule"},
		{"TLS without a certificate", ClientTLSConfig(m.root, nil), probeClientAllowed, nil, "", codes.Unauthenticated, "no client certificate"},
		{"plain TCP", nil, probeClientAllowed, nil, "", codes.Unavailable, ""},
		{"plain TCP to a public method", nil, api.CA_GetRootCACertificate_FullMethodName, nil, "", codes.Unavailable, ""},
		{"certificate of another cluster's CA", stranger, probeClientAllowed, nil, "", codes.Unavailable, ""},
		{"removed node with a valid certificate", withCert(removedPair), probeClientAllowed, nil, "", codes.PermissionDenied, "node removed"},
		{"manager forwards for a client", withCert(managerPair), probeClientAllowed, forward(clientID, RoleClient),
			"node=" + clientID + " role=client fwd=" + managerID, codes.OK, ""},
		{"forwarded client on a manager method", withCert(managerPair), probeManagerOnly, forward(clientID, RoleClient), "", codes.PermissionDenied, "role client may not call"},
		{"client forges a forwarded manager", withCert(clientPair), probeClientAllowed, forward(managerID, RoleManager), "", codes.PermissionDenied, "only managers may forward"},
		{"manager forwards for a removed node", withCert(managerPair), probeClientAllowed, forward(removedID, RoleManager), "", codes.PermissionDenied, "node removed"},
		{"manager forwards a malformed role", withCert(managerPair), probeClientAllowed, forward(clientID, "root"), "", codes.Unauthenticated, "role"},
		{"manager forwards a malformed node ID", withCert(managerPair), probeClientAllowed, forward("a/b", RoleClient), "", codes.Unauthenticated, "node ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			if tt.ctx != nil {
				ctx = tt.ctx(ctx)
			}
			conn := dial(t, m.addr, tt.tls)
			before := m.probe.callCount()
			var got string
			var err error
			if tt.method == api.CA_GetRootCACertificate_FullMethodName {
				_, err = api.NewCAClient(conn).GetRootCACertificate(ctx, &api.GetRootCACertificateRequest{})
			} else {
				got, err = callProbe(ctx, conn, tt.method)
			}
			if code := status.Code(err); code != tt.wantCode {
				t.Fatalf("call = %q, %v; want code %s", got, err, tt.wantCode)
			}
			if err != nil && !strings.Contains(err.Error(), tt.wantText) {
				t.Fatalf("refusal = %v, want it to mention %q", err, tt.wantText)
			}
			if tt.wantCode != codes.OK {
				if n := m.probe.callCount(); n != before {
					t.Errorf("the handler ran %d times for a refused call", n-before)
				}
				return
			}
			if got != tt.want {
				t.Errorf("answer = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestRemovedNodeRefusal checks that a removed node can tell its refusal
// apart from any other, so that it can stop itself.
func TestRemovedNodeRefusal(t *testing.T) {
	m := startManager(t, managerOptions{})
	pair := issuePair(t, m.root, RoleClient, time.Now())
	holder := newHolder(t, pair)
	conn := dial(t, m.addr, ClientTLSConfig(m.root, holder))
	ctx := testContext(t)

	if _, err := callProbe(ctx, conn, probeClientAllowed); err != nil {
		t.Fatalf("call before removal: %v", err)
	}
	if _, err := callProbe(ctx, conn, probeManagerOnly); IsNodeRemoved(err) || status.Code(err) != codes.PermissionDenied {
		t.Fatalf("wrong-role refusal = %v; want PermissionDenied that is not a removal", err)
	}
	// The same connection, still open, is refused from the next call on.
	m.denyList.remove(holder.Identity().NodeID)
	_, err := callProbe(ctx, conn, probeClientAllowed)
	if !IsNodeRemoved(err) {
		t.Fatalf("call after removal = %v; want a node-removed refusal", err)
	}
	if id, _ := RemovedNode(err); id != holder.Identity().NodeID {
		t.Fatalf("the refusal names node %q, want the caller %q", id, holder.Identity().NodeID)
	}
}

// TestRevokedCertificateRefusal checks that every role of client
// certificate is refused once revoked, on an open connection too, with a
// reason of its own, and that another client is not.
func TestRevokedCertificateRefusal(t *testing.T) {
	m := startManager(t, managerOptions{})
	ctx := testContext(t)
	for _, role := range ClientRoles {
		t.Run(string(role), func(t *testing.T) {
			revoked := newHolder(t, issuePair(t, m.root, role, time.Now()))
			other := newHolder(t, issuePair(t, m.root, role, time.Now()))
			conn := dial(t, m.addr, ClientTLSConfig(m.root, revoked))
			otherConn := dial(t, m.addr, ClientTLSConfig(m.root, other))
			if _, err := callProbe(ctx, conn, probeClientAllowed); err != nil {
				t.Fatalf("call before revocation: %v", err)
			}
			m.denyList.revoke(revoked.Identity().NodeID)
			_, err := callProbe(ctx, conn, probeClientAllowed)
			st := status.Convert(err)
			if st.Code() != codes.PermissionDenied || IsNodeRemoved(err) || len(st.Details()) != 1 {
				t.Fatalf("call after revocation = %v; want PermissionDenied with one detail, not a removal", err)
			}
			if info, ok := st.Details()[0].(*errdetails.ErrorInfo); !ok || info.GetReason() != ReasonCertificateRevoked {
				t.Fatalf("refusal detail %v, want reason %s", st.Details()[0], ReasonCertificateRevoked)
			}
			// Renewal is refused too: a revocation outlives the certificate.
			csr, _, err := NewCSR()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := api.NewCAClient(conn).RenewNodeCertificate(ctx, &api.RenewNodeCertificateRequest{Csr: csr}); status.Code(err) != codes.PermissionDenied {
				t.Fatalf("renewal after revocation = %v, want PermissionDenied", err)
			}
			if _, err := callProbe(ctx, otherConn, probeClientAllowed); err != nil {
				t.Fatalf("another certificate of the same role is refused: %v", err)
			}
		})
	}
}

// TestForwardingKeepsIdentity forwards a client's call through
// ForwardingContext, as a follower forwards to the leader: the receiving
// side sees the client, forwarded by the manager.
func TestForwardingKeepsIdentity(t *testing.T) {
	m := startManager(t, managerOptions{})
	client := newHolder(t, issuePair(t, m.root, RoleClient, time.Now()))
	conn := dial(t, m.addr, ClientTLSConfig(m.root, client))

	got, err := callProbe(testContext(t), conn, probeRelay)
	if err != nil {
		t.Fatalf("Relay: %v", err)
	}
	want := "node=" + client.Identity().NodeID + " role=client fwd=" + m.holder.Identity().NodeID
	if got != want {
		t.Fatalf("forwarded answer = %q, want %q", got, want)
	}

	// Once the forwarding manager is removed, the refusal names it, not
	// the client it forwarded for.
	m.denyList.remove(m.holder.Identity().NodeID)
	_, err = callProbe(testContext(t), conn, probeRelay)
	if id, ok := RemovedNode(err); !ok || id != m.holder.Identity().NodeID {
		t.Fatalf("relay through a removed manager = %v (names %q), want a refusal naming the manager", err, id)
	}
}

func TestForwardingContextNeedsCaller(t *testing.T) {
	if _, err := ForwardingContext(context.Background()); err == nil {
		t.Fatal("ForwardingContext without a Caller succeeded")
	}
}

// TestStreamAuthorization checks the stream interceptor, and that the
// stream's handler sees the caller.
func TestStreamAuthorization(t *testing.T) {
	m := startManager(t, managerOptions{})
	now := time.Now()
	manager := newHolder(t, issuePair(t, m.root, RoleManager, now))
	client := newHolder(t, issuePair(t, m.root, RoleClient, now))
	ctx := testContext(t)

	got, err := callStream(ctx, dial(t, m.addr, ClientTLSConfig(m.root, manager)))
	if err != nil {
		t.Fatalf("manager stream: %v", err)
	}
	if want := "node=" + manager.Identity().NodeID + " role=manager fwd="; got != want {
		t.Errorf("stream answer = %q, want %q", got, want)
	}
	if _, err := callStream(ctx, dial(t, m.addr, ClientTLSConfig(m.root, client))); status.Code(err) != codes.PermissionDenied {
		t.Errorf("client stream = %v, want PermissionDenied", err)
	}
	if _, err := callStream(ctx, dial(t, m.addr, ClientTLSConfig(m.root, nil))); status.Code(err) != codes.Unauthenticated {
		t.Errorf("stream without a certificate = %v, want Unauthenticated", err)
	}
}

func TestNewAuthorizerRefusesBadPolicies(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
	}{
		{"empty", Policy{}},
		{"not a full method", Policy{"Probe/Method": AllowRoles(RoleManager)}},
		{"no method", Policy{"/shoal.test.Probe/": AllowRoles(RoleManager)}},
		{"neither public nor roles", Policy{probeManagerOnly: {}}},
		{"both public and roles", Policy{probeManagerOnly: {Public: true, Roles: []Role{RoleClient}}}},
		{"unknown role", Policy{probeManagerOnly: AllowRoles("admin")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewAuthorizer(AuthorizerConfig{Policy: tt.policy}); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewAuthorizer = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

// TestAuthorizeWithoutGRPC checks the decisions that need no connection: a
// context without a peer is unauthenticated, and a public method needs
// nothing.
func TestAuthorizeWithoutGRPC(t *testing.T) {
	a, err := NewAuthorizer(AuthorizerConfig{Policy: CAPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authorize(context.Background(), api.CA_RenewNodeCertificate_FullMethodName); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Authorize without a peer = %v, want Unauthenticated", err)
	}
	ctx, err := a.Authorize(context.Background(), api.CA_GetRootCACertificate_FullMethodName)
	if err != nil {
		t.Fatalf("Authorize of a public method = %v", err)
	}
	if _, ok := CallerFromContext(ctx); ok {
		t.Error("a public method got a Caller")
	}
}
