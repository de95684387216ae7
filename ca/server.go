package ca

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/shoal-project/shoal/api"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Authority is the part of the replicated cluster state the CA service
// needs. The manager implements it on its store; this package never reads
// the store itself.
//
// Methods are called concurrently, once or twice per CA call. They may read
// the local store (a slightly stale token is refused or accepted a moment
// longer than the cluster intends, nothing worse), and they must return
// promptly when ctx is done.
type Authority interface {
	// RootCA returns the cluster's root CA with its private key.
	RootCA(ctx context.Context) (*RootCA, error)
	// JoinToken returns the cluster's current join token for role, as
	// JoinToken.String writes it, or "" when no node may join with that
	// role.
	JoinToken(ctx context.Context, role Role) (string, error)
}

// DefaultBackdate is how far before its issuance a certificate becomes
// valid, so that a node whose clock is behind the signing manager's can use
// it at once.
const DefaultBackdate = 5 * time.Minute

// maxTokenLength bounds a presented token before it is parsed; a real one
// has 85 characters.
const maxTokenLength = 128

// ServerConfig configures the CA service. Zero values take the defaults
// named in each field's comment; NewServer validates the result.
type ServerConfig struct {
	// Authority supplies the root CA and the join tokens. Required.
	Authority Authority
	// Clock dates certificates. Default the real clock.
	Clock clockwork.Clock
	// Logger receives one line per certificate issued or refused; nil
	// discards them.
	Logger *slog.Logger
	// CertificateValidity is the lifetime of the certificates the service
	// issues, from issuance. Default DefaultCertificateValidity (90 days);
	// at least one second.
	CertificateValidity time.Duration
	// Backdate is how long before issuance a certificate becomes valid.
	// Default DefaultBackdate (5 minutes), or a tenth of
	// CertificateValidity when that is less; at most a tenth of
	// CertificateValidity, because the Renewer counts the backdated part
	// as lifetime already spent.
	Backdate time.Duration
}

// Server implements api.CAServer. Register it on the remote listener's gRPC
// server together with the Authorizer's interceptors and a Policy that
// includes CAPolicy: RenewNodeCertificate relies on the Caller the
// Authorizer attaches. Safe for concurrent use.
type Server struct {
	api.UnimplementedCAServer
	cfg ServerConfig
}

// NewServer checks cfg, fills its defaults and returns the service. It
// fails with ErrInvalidConfig naming the bad field.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Authority == nil {
		return nil, fmt.Errorf("%w: ServerConfig.Authority is required", ErrInvalidConfig)
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.CertificateValidity == 0 {
		cfg.CertificateValidity = DefaultCertificateValidity
	}
	if cfg.Backdate == 0 {
		cfg.Backdate = min(DefaultBackdate, cfg.CertificateValidity/10)
	}
	if cfg.CertificateValidity < time.Second {
		return nil, fmt.Errorf("%w: ServerConfig.CertificateValidity %s is under 1s", ErrInvalidConfig, cfg.CertificateValidity)
	}
	if cfg.Backdate < 0 || cfg.Backdate > cfg.CertificateValidity/10 {
		return nil, fmt.Errorf("%w: ServerConfig.Backdate %s must be between 0 and a tenth of CertificateValidity %s",
			ErrInvalidConfig, cfg.Backdate, cfg.CertificateValidity)
	}
	return &Server{cfg: cfg}, nil
}

// CAPolicy returns the access rules of the CA service, for the
// Authorizer's Policy: the bootstrap calls are public (the join token is
// IssueNodeCertificate's credential) and renewal needs a node certificate
// of either role.
func CAPolicy() Policy {
	return Policy{
		api.CA_GetRootCACertificate_FullMethodName: AllowAnyone(),
		api.CA_IssueNodeCertificate_FullMethodName: AllowAnyone(),
		api.CA_RenewNodeCertificate_FullMethodName: AllowRoles(append([]Role{RoleManager}, ClientRoles...)...),
	}
}

// GetRootCACertificate returns the root CA certificate, without its key.
func (s *Server) GetRootCACertificate(ctx context.Context, _ *api.GetRootCACertificateRequest) (*api.GetRootCACertificateResponse, error) {
	root, err := s.rootCA(ctx)
	if err != nil {
		return nil, err
	}
	return &api.GetRootCACertificateResponse{Certificate: root.CertificatePEM()}, nil
}

// IssueNodeCertificate checks the join token for the requested role and
// signs the CSR for a new node ID, which the CA draws with NewID.
func (s *Server) IssueNodeCertificate(ctx context.Context, req *api.IssueNodeCertificateRequest) (*api.IssueNodeCertificateResponse, error) {
	role, ok := roleFromProto(req.GetRole())
	if !ok {
		return nil, status.Errorf(codes.InvalidArgument, "ca: role %s cannot be issued", req.GetRole())
	}
	if len(req.GetToken()) > maxTokenLength {
		return nil, status.Errorf(codes.InvalidArgument, "%v: longer than %d characters", ErrMalformedToken, maxTokenLength)
	}
	root, err := s.rootCA(ctx)
	if err != nil {
		return nil, err
	}
	current, err := s.cfg.Authority.JoinToken(ctx, role)
	if err != nil {
		return nil, s.authorityError(ctx, "read the join token", err)
	}
	if err := ValidateJoinToken(root, current, req.GetToken()); err != nil {
		code := tokenErrorCode(err)
		if code == codes.Internal {
			s.cfg.Logger.Error("could not check a join token", "role", string(role), "err", err)
			return nil, status.Error(code, "ca: could not check the join token")
		}
		s.cfg.Logger.Info("refused a certificate: join token", "role", string(role), "peer", peerAddr(ctx), "err", err)
		return nil, status.Error(code, err.Error())
	}
	nodeID := NewID()
	certPEM, err := s.issue(ctx, root, req.GetCsr(), nodeID, role)
	if err != nil {
		return nil, err
	}
	return &api.IssueNodeCertificateResponse{NodeId: nodeID, Certificate: certPEM}, nil
}

// RenewNodeCertificate signs the CSR for the caller's identity, as the
// Authorizer established it.
func (s *Server) RenewNodeCertificate(ctx context.Context, req *api.RenewNodeCertificateRequest) (*api.RenewNodeCertificateResponse, error) {
	// Without the Authorizer the deny list was not consulted: refuse
	// rather than renew for a node that may have been removed.
	caller, ok := CallerFromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "ca: renewal needs a caller authorised by the Authorizer")
	}
	root, err := s.rootCA(ctx)
	if err != nil {
		return nil, err
	}
	if caller.ClusterID != root.ClusterID() {
		return nil, status.Errorf(codes.PermissionDenied, "ca: node %s belongs to cluster %s, not %s", caller.NodeID, caller.ClusterID, root.ClusterID())
	}
	certPEM, err := s.issue(ctx, root, req.GetCsr(), caller.NodeID, caller.Role)
	if err != nil {
		return nil, err
	}
	return &api.RenewNodeCertificateResponse{Certificate: certPEM}, nil
}

func (s *Server) issue(ctx context.Context, root *RootCA, csrPEM []byte, nodeID string, role Role) ([]byte, error) {
	now := s.cfg.Clock.Now()
	notAfter := now.Add(s.cfg.CertificateValidity)
	certPEM, err := root.IssueNodeCertificate(csrPEM, nodeID, role, now.Add(-s.cfg.Backdate), notAfter)
	switch {
	case errors.Is(err, ErrInvalidCSR):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case err != nil:
		s.cfg.Logger.Error("could not issue a certificate", "node_id", nodeID, "role", string(role), "err", err)
		return nil, status.Errorf(codes.Internal, "ca: could not issue the certificate")
	}
	s.cfg.Logger.Info("issued a certificate", "node_id", nodeID, "role", string(role), "peer", peerAddr(ctx), "not_after", notAfter)
	return certPEM, nil
}

func (s *Server) rootCA(ctx context.Context) (*RootCA, error) {
	root, err := s.cfg.Authority.RootCA(ctx)
	if err != nil {
		return nil, s.authorityError(ctx, "read the root CA", err)
	}
	return root, nil
}

// authorityError turns a failure of the Authority into a status: the
// caller's own cancellation as such, anything else as UNAVAILABLE (the
// manager may not have the cluster state yet), without its detail.
func (s *Server) authorityError(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	s.cfg.Logger.Warn("the CA could not "+what, "err", err)
	return status.Errorf(codes.Unavailable, "ca: could not %s", what)
}

// tokenErrorCode maps the errors of ValidateJoinToken to status codes.
func tokenErrorCode(err error) codes.Code {
	switch {
	case errors.Is(err, ErrMalformedToken):
		return codes.InvalidArgument
	case errors.Is(err, ErrJoinDisabled):
		return codes.PermissionDenied
	case errors.Is(err, ErrRootCAMismatch), errors.Is(err, ErrInvalidToken):
		return codes.Unauthenticated
	default:
		return codes.Internal
	}
}

func roleFromProto(r api.CertificateRole) (Role, bool) {
	switch r {
	case api.CertificateRole_CERTIFICATE_ROLE_MANAGER:
		return RoleManager, true
	case api.CertificateRole_CERTIFICATE_ROLE_CLIENT:
		return RoleClient, true
	default:
		return "", false
	}
}

func roleToProto(r Role) api.CertificateRole {
	switch r {
	case RoleManager:
		return api.CertificateRole_CERTIFICATE_ROLE_MANAGER
	case RoleClient:
		return api.CertificateRole_CERTIFICATE_ROLE_CLIENT
	default:
		return api.CertificateRole_CERTIFICATE_ROLE_UNSPECIFIED
	}
}
