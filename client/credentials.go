package client

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
)

// JoinToken returns the token a new manager joins the cluster with; with
// rotate, a new token replaces it first and the old one stops working.
// Managers and the local administrator only.
func (c *Client) JoinToken(ctx context.Context, rotate bool) (string, error) {
	may := always // reading the token, also while the first leader has not created it yet
	if rotate {
		may = ifNotApplied // a repeat would rotate it once more
	}
	var resp *api.GetJoinTokenResponse
	err := withRetry(ctx, may, func(ctx context.Context) (err error) {
		resp, err = c.control.GetJoinToken(ctx, &api.GetJoinTokenRequest{Rotate: rotate}, callOptions(ctx)...)
		return err
	})
	if err != nil {
		return "", err
	}
	return resp.GetToken(), nil
}

// ClientCertificate is a client certificate with its key and the cluster's
// root CA certificate, all PEM.
type ClientCertificate struct {
	NodeID         string
	CertificatePEM []byte
	KeyPEM         []byte
	RootCAPEM      []byte
}

// IssueClientCertificate makes a key here and has the cluster sign a
// read-write client certificate for it, for remote use of the Control API.
// Managers, admin certificates and the local administrator only.
func (c *Client) IssueClientCertificate(ctx context.Context) (ClientCertificate, error) {
	return c.IssueClientCertificateWithRole(ctx, api.ClientRole_CLIENT_ROLE_READ_WRITE)
}

// IssueClientCertificateWithRole is IssueClientCertificate for a
// certificate of the given role: read-only (read and watch), read-write
// (also write objects) or admin (also membership, join tokens,
// certificates).
func (c *Client) IssueClientCertificateWithRole(ctx context.Context, role api.ClientRole) (ClientCertificate, error) {
	csr, key, err := ca.NewCSR()
	if err != nil {
		return ClientCertificate{}, err
	}
	resp, err := c.control.IssueClientCertificate(ctx, &api.IssueClientCertificateRequest{Csr: csr, Role: role})
	if err != nil {
		return ClientCertificate{}, err
	}
	return ClientCertificate{NodeID: resp.GetNodeId(), CertificatePEM: resp.GetCertificate(), KeyPEM: key, RootCAPEM: resp.GetRootCa()}, nil
}

// RevokeCertificate puts the client certificate with client ID id on the
// cluster's deny list: every manager then refuses its calls and its
// renewal. It reports whether id was revoked already. Managers, admin
// certificates and the local administrator only.
func (c *Client) RevokeCertificate(ctx context.Context, id string) (already bool, err error) {
	var resp *api.RevokeCertificateResponse
	err = withRetry(ctx, always, func(ctx context.Context) (err error) {
		resp, err = c.control.RevokeCertificate(ctx, &api.RevokeCertificateRequest{Id: id}, callOptions(ctx)...)
		return err
	})
	return resp.GetAlready(), err
}

// LoadTLS returns the TLS configuration for reaching managers with the
// client certificate and key in certFile and keyFile, trusting the root CA
// in caFile: TLS 1.3, and the server must present a manager certificate of
// that cluster.
func LoadTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	rootPEM, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("client: reading the cluster's root CA: %w", err)
	}
	root, err := ca.ParseRootCA(rootPEM)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", caFile, err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("client: loading the client certificate: %w", err)
	}
	holder, err := ca.NewCertificateHolder(&cert)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", certFile, err)
	}
	return ca.ClientTLSConfig(root.WithoutKey(), holder), nil
}

// UnlockKey returns the manager's unlock key when it runs with autolock
// ("" otherwise); with rotate, a new unlock key (and data key) replaces
// it. Its local administrator only: the control socket.
func (c *Client) UnlockKey(ctx context.Context, rotate bool) (string, error) {
	resp, err := c.control.GetUnlockKey(ctx, &api.GetUnlockKeyRequest{Rotate: rotate})
	if err != nil {
		return "", err
	}
	return resp.GetUnlockKey(), nil
}

// RotateDataKey makes a new key encrypt the manager's Raft data; it
// returns the new key's ID and those of the older keys still kept. Its
// local administrator only.
func (c *Client) RotateDataKey(ctx context.Context) (uint32, []uint32, error) {
	resp, err := c.control.RotateDataKey(ctx, &api.RotateDataKeyRequest{})
	if err != nil {
		return 0, nil, err
	}
	return resp.GetKeyId(), resp.GetOlderKeyIds(), nil
}
