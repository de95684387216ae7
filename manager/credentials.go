package manager

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/store"
)

// GetJoinToken returns the manager join token; with rotate, the leader
// replaces it first in the cluster object, and the old token stops working
// on every manager (the CA reads it after a linearizable read).
func (s *controlServer) GetJoinToken(ctx context.Context, req *api.GetJoinTokenRequest) (*api.GetJoinTokenResponse, error) {
	if !req.GetRotate() {
		token, err := (*authority)(s.m).JoinToken(ctx, ca.RoleManager)
		if err != nil {
			return nil, toStatus(err)
		}
		return &api.GetJoinTokenResponse{Token: token}, nil
	}
	return onLeader(ctx, s, func(ctx context.Context) (*api.GetJoinTokenResponse, error) {
		var token string
		_, err := s.m.store.Update(ctx, func(tx store.Tx) error {
			return changeClusterSpec(tx, func(spec *clusterSpec) (bool, error) {
				root, err := ca.ParseRootCA([]byte(spec.RootCA))
				if err != nil {
					return false, err
				}
				spec.ManagerToken = ca.NewJoinToken(root).String()
				token = spec.ManagerToken
				return true, nil
			})
		})
		if err != nil {
			return nil, err
		}
		s.m.log.Info("rotated the manager join token")
		return &api.GetJoinTokenResponse{Token: token}, nil
	}, func(ctx context.Context, c api.ControlClient) (*api.GetJoinTokenResponse, error) {
		return c.GetJoinToken(ctx, req)
	})
}

// clientRoles maps the roles a client certificate may be issued with to
// the role its certificate names.
var clientRoles = map[api.ClientRole]ca.Role{
	api.ClientRole_CLIENT_ROLE_UNSPECIFIED: ca.RoleClient,
	api.ClientRole_CLIENT_ROLE_READ_ONLY:   ca.RoleReader,
	api.ClientRole_CLIENT_ROLE_READ_WRITE:  ca.RoleClient,
	api.ClientRole_CLIENT_ROLE_ADMIN:       ca.RoleAdmin,
}

// IssueClientCertificate signs a client certificate for a CSR with the
// root CA from the replicated store, with the role asked for; any manager
// can.
func (s *controlServer) IssueClientCertificate(ctx context.Context, req *api.IssueClientCertificateRequest) (*api.IssueClientCertificateResponse, error) {
	if len(req.GetCsr()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "a certificate signing request is required")
	}
	role, ok := clientRoles[req.GetRole()]
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "client role %v does not exist: ask for read-only, read-write or admin", req.GetRole())
	}
	root, err := (*authority)(s.m).RootCA(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	nodeID := ca.NewID()
	now := time.Now()
	validity := s.m.cfg.CertificateValidity
	backdate := min(ca.DefaultBackdate, validity/10)
	cert, err := root.IssueNodeCertificate(req.GetCsr(), nodeID, role, now.Add(-backdate), now.Add(validity))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "signing the client certificate: %v", err)
	}
	s.m.log.Info("issued a client certificate", "client_id", nodeID, "role", string(role))
	return &api.IssueClientCertificateResponse{NodeId: nodeID, Certificate: cert, RootCa: root.CertificatePEM()}, nil
}
