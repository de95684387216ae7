package ca

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"time"

	"github.com/shoal-project/shoal/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Credentials are what a node keeps in STATE_DIR/certificates: the root CA
// certificate (without the key, even on managers, whose key lives in the
// replicated store) and the node's own key pair.
type Credentials struct {
	RootCA  *RootCA
	KeyPair KeyPair
}

// Join obtains a certificate for a new node from the manager at addr, with
// a join token for role:
//
//  1. It parses the token, before touching the network.
//  2. It fetches the root CA certificate over TLS that it cannot verify yet
//     and sends nothing but an empty request.
//  3. It checks the fetched root against the token's digest; on a mismatch
//     it stops with ErrRootCAMismatch, and the secret was never sent.
//  4. It dials again with TLS verified against that root (the server must
//     hold a manager certificate of the cluster), generates a key, and sends
//     a CSR with the token. The key never leaves the node.
//  5. It verifies the certificate it gets against the root, its key and
//     role.
//
// opts are added to the options of both connections (a dialer, for
// instance) and must not carry transport credentials: Join sets them.
// Errors wrap the package's sentinels or are gRPC status errors from the
// manager (UNAUTHENTICATED for a wrong or rotated token).
func Join(ctx context.Context, addr string, role Role, token string, opts ...grpc.DialOption) (Credentials, error) {
	if !role.Valid() {
		return Credentials{}, fmt.Errorf("%w: role %q", ErrInvalidIdentity, role)
	}
	t, err := ParseJoinToken(token)
	if err != nil {
		return Credentials{}, err
	}
	root, err := FetchRootCA(ctx, addr, t, opts...)
	if err != nil {
		return Credentials{}, err
	}
	kp, err := requestNodeCertificate(ctx, addr, root, role, t, opts)
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{RootCA: root, KeyPair: kp}, nil
}

// FetchRootCA fetches the root CA certificate from the manager at addr and
// returns it (without a key) if it is the one token names, or an error
// wrapping ErrRootCAMismatch. The connection cannot be verified (the node
// does not know the root yet), so nothing secret is sent on it: the token
// is used only locally. opts are as for Join.
func FetchRootCA(ctx context.Context, addr string, token JoinToken, opts ...grpc.DialOption) (*RootCA, error) {
	if token.IsZero() {
		return nil, fmt.Errorf("%w: no token", ErrMalformedToken)
	}
	unverified := &tls.Config{
		MinVersion: tls.VersionTLS13,
		ServerName: ManagerServerName,
		// The server cannot be verified before its root is known; what it
		// answers is checked against the token's digest instead.
		InsecureSkipVerify: true, //nolint:gosec // see above
	}
	conn, err := grpc.NewClient(addr, withTLS(opts, unverified)...)
	if err != nil {
		return nil, fmt.Errorf("ca: dial %s: %w", addr, err)
	}
	defer conn.Close()
	resp, err := api.NewCAClient(conn).GetRootCACertificate(ctx, &api.GetRootCACertificateRequest{})
	if err != nil {
		return nil, fmt.Errorf("ca: fetch the root CA from %s: %w", addr, err)
	}
	root, err := ParseRootCA(resp.GetCertificate())
	if err != nil {
		return nil, err
	}
	if root.CanSign() {
		return nil, fmt.Errorf("%w: %s sent the root's private key", ErrInvalidRootCA, addr)
	}
	if err := token.CheckRootCA(root); err != nil {
		return nil, err
	}
	return root, nil
}

// requestNodeCertificate sends a new key's CSR and the token over a
// connection verified against root.
func requestNodeCertificate(ctx context.Context, addr string, root *RootCA, role Role, token JoinToken, opts []grpc.DialOption) (KeyPair, error) {
	conn, err := grpc.NewClient(addr, withTLS(opts, ClientTLSConfig(root, nil))...)
	if err != nil {
		return KeyPair{}, fmt.Errorf("ca: dial %s: %w", addr, err)
	}
	defer conn.Close()
	csrPEM, keyPEM, err := NewCSR()
	if err != nil {
		return KeyPair{}, err
	}
	resp, err := api.NewCAClient(conn).IssueNodeCertificate(ctx, &api.IssueNodeCertificateRequest{
		Csr: csrPEM, Role: roleToProto(role), Token: token.String(),
	})
	if err != nil {
		return KeyPair{}, fmt.Errorf("ca: request a %s certificate from %s: %w", role, addr, err)
	}
	kp := KeyPair{CertificatePEM: resp.GetCertificate(), KeyPEM: keyPEM}
	id, err := checkIssued(root, kp)
	if err != nil {
		return KeyPair{}, err
	}
	if id.Role != role || id.NodeID != resp.GetNodeId() {
		return KeyPair{}, fmt.Errorf("%w: asked for a %s certificate, got one for %s %s (node ID %q announced)",
			ErrInvalidCertificate, role, id.Role, id.NodeID, resp.GetNodeId())
	}
	return kp, nil
}

// RenewKeyPair asks a manager, through client, for a certificate for a new
// key with the identity want (the node's current one). client must use a
// connection made with ClientTLSConfig and the node's current certificate,
// which authenticates the request. The new certificate is verified against
// root and must name want. It returns the new pair; the caller persists it
// (SaveKeyPair) and then serves it (CertificateHolder.Set).
func RenewKeyPair(ctx context.Context, client api.CAClient, root *RootCA, want Identity) (KeyPair, error) {
	csrPEM, keyPEM, err := NewCSR()
	if err != nil {
		return KeyPair{}, err
	}
	resp, err := client.RenewNodeCertificate(ctx, &api.RenewNodeCertificateRequest{Csr: csrPEM})
	if err != nil {
		return KeyPair{}, fmt.Errorf("ca: renew the certificate of node %s: %w", want.NodeID, err)
	}
	kp := KeyPair{CertificatePEM: resp.GetCertificate(), KeyPEM: keyPEM}
	id, err := checkIssued(root, kp)
	if err != nil {
		return KeyPair{}, err
	}
	if id != want {
		return KeyPair{}, fmt.Errorf("%w: renewed certificate names %+v, want %+v", ErrInvalidCertificate, id, want)
	}
	return kp, nil
}

// checkIssued verifies a freshly issued pair: the certificate chains to
// root and is valid now, and the key is its own.
func checkIssued(root *RootCA, kp KeyPair) (Identity, error) {
	cert, err := kp.TLSCertificate()
	if err != nil {
		return Identity{}, err
	}
	return root.VerifyNodeCertificate(cert.Leaf, time.Now())
}

// withTLS returns opts followed by cfg as transport credentials, last so
// that they win, without writing into the caller's slice.
func withTLS(opts []grpc.DialOption, cfg *tls.Config) []grpc.DialOption {
	return append(slices.Clip(opts), grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
}
