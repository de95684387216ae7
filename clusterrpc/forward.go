package clusterrpc

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/raft"
)

// IsForwarded reports whether the incoming call in ctx was forwarded by
// another manager: it names its original caller.
func IsForwarded(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && (len(md.Get(ca.MetadataForwardedNodeID)) > 0 || len(md.Get(ca.MetadataForwardedRole)) > 0)
}

// WithoutForwardMark returns ctx without the mark of a forwarded call, so
// that it may be forwarded once more: for the hop after a leader handed
// over leadership to serve a call about itself, which is no loop.
func WithoutForwardMark(ctx context.Context) context.Context {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return ctx
	}
	md = md.Copy()
	delete(md, ca.MetadataForwardedNodeID)
	delete(md, ca.MetadataForwardedRole)
	return metadata.NewIncomingContext(ctx, md)
}

// LeaderConn returns a connection to the leader, waiting up to two
// election timeouts (or ctx) for one to be elected, and the outgoing
// context to use on it, which marks the call as forwarded on behalf of its
// caller. It fails with raft.ErrNoLeader when there is none, and with a
// *raft.NotLeaderError when ctx's call was itself forwarded, or when n
// leads (the caller should serve the call instead).
func LeaderConn(ctx context.Context, n *raft.Node) (context.Context, *grpc.ClientConn, error) {
	if IsForwarded(ctx) {
		return nil, nil, n.NotLeader()
	}
	wctx, cancel := context.WithTimeout(ctx, 2*n.ElectionTimeout())
	err := n.WaitForLeader(wctx)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	leader := n.Leader()
	if leader == n.ID() {
		return nil, nil, n.NotLeader()
	}
	conn, err := n.PeerConn(leader)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: no connection to the leader %x: %w", raft.ErrNoLeader, leader, err)
	}
	fctx, err := forwardingContext(ctx, n.NodeID())
	if err != nil {
		return nil, nil, err
	}
	return fctx, conn, nil
}

// forwardingContext marks ctx's call as forwarded on behalf of its caller,
// or, for a caller without a certificate (the control socket), of this
// manager.
func forwardingContext(ctx context.Context, self string) (context.Context, error) {
	if _, ok := ca.CallerFromContext(ctx); ok {
		return ca.ForwardingContext(ctx)
	}
	return ca.ForwardingContextFor(ctx, self, ca.RoleManager), nil
}

// forward sends a call to the leader (see LeaderConn).
func forward[T any](ctx context.Context, n *raft.Node, call func(context.Context, *grpc.ClientConn) (T, error)) (T, error) {
	var zero T
	fctx, conn, err := LeaderConn(ctx, n)
	if err != nil {
		return zero, ToStatus(err)
	}
	return call(fctx, conn)
}
