package ca

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Access says who may call one gRPC method.
type Access struct {
	// Public lets anyone call, with or without a certificate; no Caller is
	// attached and the deny list is not consulted. Only for calls that
	// reveal nothing secret or carry their own credential (the CA's
	// bootstrap calls, health checks).
	Public bool
	// Roles lists the roles whose certificates may call.
	Roles []Role
}

// AllowRoles returns the Access of a method that the given roles may call.
func AllowRoles(roles ...Role) Access { return Access{Roles: roles} }

// AllowAnyone returns the Access of a public method.
func AllowAnyone() Access { return Access{Public: true} }

// Policy maps full gRPC method names ("/shoal.v1.CA/IssueNodeCertificate")
// to their Access. A method without an entry is refused to everyone, so a
// new method is closed until someone decides who may call it.
type Policy map[string]Access

// DenyList says which nodes were removed from the cluster. The Authorizer
// refuses their calls even while their certificates are valid.
//
// IsRemoved is called on every authorised call, from many goroutines at
// once: it must be safe for concurrent use, fast, and must not wait for
// Raft (read an in-memory set that the apply path keeps current).
type DenyList interface {
	IsRemoved(nodeID string) bool
}

// RevocationList says which certificates were revoked, by the node ID
// (subject CN) they name. Like DenyList, it is called on every authorised
// call and must be safe for concurrent use, fast, and never wait for Raft.
type RevocationList interface {
	IsRevoked(nodeID string) bool
}

// The ErrorInfo carried by the refusal of a removed node's call, so that the
// node can tell it apart from any other refusal and stop itself.
const (
	// ErrorDomain is the ErrorInfo domain of the errors this package puts on
	// the wire.
	ErrorDomain = "ca.shoal"
	// ReasonNodeRemoved is the ErrorInfo reason of a call refused because
	// its caller was removed from the cluster.
	ReasonNodeRemoved = "NODE_REMOVED"
	// ReasonCertificateRevoked is the ErrorInfo reason of a call refused
	// because its caller's certificate was revoked.
	ReasonCertificateRevoked = "CERTIFICATE_REVOKED"
)

// AuthorizerConfig configures an Authorizer.
type AuthorizerConfig struct {
	// Policy says who may call each method. Required. It is copied.
	Policy Policy
	// DenyList refuses removed nodes; nil refuses none.
	DenyList DenyList
	// Revoked refuses revoked certificates; nil refuses none.
	Revoked RevocationList
	// Logger receives one log line per refused call; nil discards them.
	Logger *slog.Logger
}

// Authorizer decides, call by call, whether the peer of a gRPC server may
// call a method, from the certificate it presented (verified by TLS against
// the cluster's root CA; see ServerTLSConfig), the method's Access, the deny
// list and, for forwarded calls, the identity the forwarding manager passed
// on. Refusals are UNAUTHENTICATED (no certificate, or a malformed
// forwarded identity) or PERMISSION_DENIED (wrong role, removed node,
// forwarding by a non-manager, method without a rule).
//
// An Authorizer is immutable and safe for concurrent use.
type Authorizer struct {
	policy   Policy
	denyList DenyList
	revoked  RevocationList
	logger   *slog.Logger
}

// NewAuthorizer checks cfg and returns an Authorizer. It fails with
// ErrInvalidConfig when a rule names a malformed method, an unknown role,
// or is both public and limited to roles, or neither.
func NewAuthorizer(cfg AuthorizerConfig) (*Authorizer, error) {
	if len(cfg.Policy) == 0 {
		return nil, fmt.Errorf("%w: AuthorizerConfig.Policy is empty", ErrInvalidConfig)
	}
	policy := make(Policy, len(cfg.Policy))
	for method, access := range cfg.Policy {
		if !strings.HasPrefix(method, "/") || strings.Count(method, "/") != 2 || strings.HasSuffix(method, "/") {
			return nil, fmt.Errorf("%w: policy method %q is not /package.Service/Method", ErrInvalidConfig, method)
		}
		if access.Public == (len(access.Roles) > 0) {
			return nil, fmt.Errorf("%w: policy for %s must be public or list roles, not both or neither", ErrInvalidConfig, method)
		}
		for _, r := range access.Roles {
			if !r.Valid() {
				return nil, fmt.Errorf("%w: policy for %s names role %q", ErrInvalidConfig, method, r)
			}
		}
		policy[method] = Access{Public: access.Public, Roles: slices.Clone(access.Roles)}
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Authorizer{policy: policy, denyList: cfg.DenyList, revoked: cfg.Revoked, logger: logger}, nil
}

// Authorize decides whether the call with server context ctx may call
// fullMethod. It returns ctx with the Caller attached (unchanged for
// public methods), or a gRPC status error to return to the caller.
func (a *Authorizer) Authorize(ctx context.Context, fullMethod string) (context.Context, error) {
	access, ok := a.policy[fullMethod]
	if !ok {
		return nil, a.refuse(ctx, fullMethod, slog.LevelWarn, codes.PermissionDenied, "no access rule for the method", nil)
	}
	if access.Public {
		return ctx, nil
	}
	direct, err := IdentityFromContext(ctx)
	if err != nil {
		// Anyone can cause this one: debug level keeps scans out of the
		// logs.
		return nil, a.refuse(ctx, fullMethod, slog.LevelDebug, codes.Unauthenticated, err.Error(), nil)
	}
	if a.isRemoved(direct.NodeID) {
		return nil, a.refuseRemoved(ctx, fullMethod, direct.NodeID)
	}
	if a.isRevoked(direct.NodeID) {
		return nil, a.refuseRevoked(ctx, fullMethod, direct.NodeID)
	}
	caller := Caller{Identity: direct}
	fwd, forwarded, err := forwardedIdentity(ctx, direct.ClusterID)
	if forwarded {
		if direct.Role != RoleManager {
			// A certificate holder trying to pass as another node: worth
			// more attention than a mere refusal.
			return nil, a.refuse(ctx, fullMethod, slog.LevelWarn, codes.PermissionDenied,
				fmt.Sprintf("only managers may forward calls, not a %s", direct.Role), &direct)
		}
		if err != nil {
			return nil, a.refuse(ctx, fullMethod, slog.LevelWarn, codes.Unauthenticated, err.Error(), &direct)
		}
		if a.isRemoved(fwd.NodeID) {
			return nil, a.refuseRemoved(ctx, fullMethod, fwd.NodeID)
		}
		if a.isRevoked(fwd.NodeID) {
			return nil, a.refuseRevoked(ctx, fullMethod, fwd.NodeID)
		}
		caller = Caller{Identity: fwd, ForwardedBy: direct.NodeID}
	}
	if !slices.Contains(access.Roles, caller.Role) {
		return nil, a.refuse(ctx, fullMethod, slog.LevelInfo, codes.PermissionDenied,
			fmt.Sprintf("role %s may not call %s", caller.Role, fullMethod), &caller.Identity)
	}
	return context.WithValue(ctx, callerKey{}, caller), nil
}

func (a *Authorizer) isRemoved(nodeID string) bool {
	return a.denyList != nil && a.denyList.IsRemoved(nodeID)
}

func (a *Authorizer) isRevoked(nodeID string) bool {
	return a.revoked != nil && a.revoked.IsRevoked(nodeID)
}

// refuseRevoked refuses the call of a revoked certificate; the ErrorInfo
// tells it apart from a wrong role.
func (a *Authorizer) refuseRevoked(ctx context.Context, method, nodeID string) error {
	a.logger.Info("refused a call with a revoked certificate", "method", method, "node_id", nodeID, "peer", peerAddr(ctx))
	st, err := status.New(codes.PermissionDenied, "ca: this certificate was revoked").
		WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: ReasonCertificateRevoked, Metadata: map[string]string{"node_id": nodeID}})
	if err != nil {
		panic("ca: build certificate-revoked status: " + err.Error())
	}
	return st.Err()
}

// refuse logs a refusal at level and returns its status.
func (a *Authorizer) refuse(ctx context.Context, method string, level slog.Level, code codes.Code, msg string, id *Identity) error {
	attrs := []any{"method", method, "code", code.String(), "reason", msg, "peer", peerAddr(ctx)}
	if id != nil {
		attrs = append(attrs, "node_id", id.NodeID, "role", string(id.Role))
	}
	a.logger.Log(ctx, level, "refused a call", attrs...)
	return status.Error(code, "ca: "+strings.TrimPrefix(msg, "ca: "))
}

func (a *Authorizer) refuseRemoved(ctx context.Context, method, nodeID string) error {
	a.logger.Info("refused a call from a removed node", "method", method, "node_id", nodeID, "peer", peerAddr(ctx))
	st, err := status.New(codes.PermissionDenied, ErrNodeRemoved.Error()).
		WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: ReasonNodeRemoved, Metadata: map[string]string{"node_id": nodeID}})
	if err != nil {
		// Only a code of OK or an unmarshalable detail fails; neither can
		// happen here.
		panic("ca: build node-removed status: " + err.Error())
	}
	return st.Err()
}

// IsNodeRemoved reports whether err, returned by a call to a manager, means
// the manager refused the call because the caller was removed from the
// cluster. It also reports true for errors wrapping ErrNodeRemoved.
func IsNodeRemoved(err error) bool {
	if errors.Is(err, ErrNodeRemoved) {
		return true
	}
	_, ok := RemovedNode(err)
	return ok
}

// RemovedNode returns the node ID that a node-removed refusal names: the
// caller's, or, for a forwarded call, the forwarding manager's or the
// original caller's, whichever was removed.
func RemovedNode(err error) (nodeID string, ok bool) {
	st, isStatus := status.FromError(err)
	if !isStatus || st.Code() != codes.PermissionDenied {
		return "", false
	}
	for _, d := range st.Details() {
		if info, isInfo := d.(*errdetails.ErrorInfo); isInfo && info.GetDomain() == ErrorDomain && info.GetReason() == ReasonNodeRemoved {
			return info.GetMetadata()["node_id"], true
		}
	}
	return "", false
}

// UnaryServerInterceptor returns the interceptor that authorises unary calls;
// install it with grpc.ChainUnaryInterceptor on every server whose
// listener uses ServerTLSConfig.
func (a *Authorizer) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.Authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor returns the interceptor that authorises streams,
// before the handler reads the first message.
func (a *Authorizer) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.Authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &authorizedStream{ServerStream: ss, ctx: ctx})
	}
}

// authorizedStream gives a stream's handler the context with the Caller.
type authorizedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *authorizedStream) Context() context.Context { return s.ctx }

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}
