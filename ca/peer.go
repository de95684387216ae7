package ca

import (
	"context"
	"fmt"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// IdentityFromContext returns the identity named by the certificate the
// peer of a gRPC server call presented and TLS verified. It fails with
// ErrNoCertificate when the connection is not TLS or the peer sent no
// certificate, and with ErrInvalidCertificate when the certificate does not
// name a node. It reads the direct peer: for the identity behind a
// forwarded call, use CallerFromContext.
func IdentityFromContext(ctx context.Context) (Identity, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, fmt.Errorf("%w: no peer in the context", ErrNoCertificate)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Identity{}, fmt.Errorf("%w: the connection is not TLS", ErrNoCertificate)
	}
	// VerifiedChains is filled only when crypto/tls verified the chain
	// against the server's ClientCAs; PeerCertificates alone proves nothing.
	if len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return Identity{}, ErrNoCertificate
	}
	return IdentityFromCertificate(info.State.VerifiedChains[0][0])
}

// Caller is the node on whose behalf a call runs, as the Authorizer decided
// it: the direct peer, or, for a call a manager forwarded, the node that
// made the original call.
type Caller struct {
	Identity
	// ForwardedBy is the node ID of the manager that forwarded the call, or
	// "" when the caller called directly.
	ForwardedBy string
}

type callerKey struct{}

// CallerFromContext returns the caller the Authorizer attached to a server
// call's context. It reports false for calls to public methods and for
// servers without the Authorizer's interceptors.
func CallerFromContext(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// Metadata keys that carry the identity of the original caller of a
// forwarded call. They are honoured only when the direct peer is a manager;
// from anyone else they are refused.
const (
	MetadataForwardedNodeID = "shoal-forwarded-node-id"
	MetadataForwardedRole   = "shoal-forwarded-role"
)

// ForwardingContext returns a context for a manager to forward the server
// call whose context is ctx to another manager: it keeps ctx's deadline and
// cancellation, and its outgoing metadata names ctx's Caller, so the
// receiving manager's Authorizer applies its policy to the original caller,
// not to the forwarding manager. A call that was itself forwarded keeps its
// original caller. It fails with ErrNoCertificate when ctx has no Caller (a
// public method, or a server without the Authorizer).
func ForwardingContext(ctx context.Context) (context.Context, error) {
	c, ok := CallerFromContext(ctx)
	if !ok {
		return nil, fmt.Errorf("%w: the call to forward has no authorised caller", ErrNoCertificate)
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(MetadataForwardedNodeID, c.NodeID)
	md.Set(MetadataForwardedRole, string(c.Role))
	return metadata.NewOutgoingContext(ctx, md), nil
}

// ForwardingContextFor returns a context for a manager to forward the server
// call whose context is ctx on behalf of the node nodeID with role, for a
// caller without a certificate (the local control socket): the forwarding
// manager itself.
func ForwardingContextFor(ctx context.Context, nodeID string, role Role) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	md.Set(MetadataForwardedNodeID, nodeID)
	md.Set(MetadataForwardedRole, string(role))
	return metadata.NewOutgoingContext(ctx, md)
}

// forwardedIdentity reads the forwarded caller from ctx's incoming metadata.
// present is false when neither key is there. The cluster is the direct
// peer's: a manager forwards only for its own cluster.
func forwardedIdentity(ctx context.Context, clusterID string) (id Identity, present bool, err error) {
	md, _ := metadata.FromIncomingContext(ctx)
	nodeIDs, roles := md.Get(MetadataForwardedNodeID), md.Get(MetadataForwardedRole)
	if len(nodeIDs) == 0 && len(roles) == 0 {
		return Identity{}, false, nil
	}
	if len(nodeIDs) != 1 || len(roles) != 1 {
		return Identity{}, true, fmt.Errorf("%w: a forwarded call needs one %s and one %s", ErrInvalidIdentity, MetadataForwardedNodeID, MetadataForwardedRole)
	}
	id = Identity{NodeID: nodeIDs[0], Role: Role(roles[0]), ClusterID: clusterID}
	if err := id.Validate(); err != nil {
		return Identity{}, true, err
	}
	return id, true, nil
}
