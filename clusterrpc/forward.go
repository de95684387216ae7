package clusterrpc

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
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

// LeaderConn returns a connection to the leader, ready to carry a call,
// and the outgoing context to use on it, which marks the call as
// forwarded on behalf of its caller. It waits, as long as ctx allows, for a
// leader to be elected and for its connection to be up: a leader that
// cannot be reached (it crashed, and the others have not noticed yet) is
// waited out until another one is elected. So a call is never sent to a
// dead leader's address, and the wait is the caller's deadline, nothing
// shorter. It fails with raft.ErrNoLeader when ctx ends first, and with a
// *raft.NotLeaderError when ctx's call was itself forwarded, or when n
// leads (the caller should serve the call instead).
func LeaderConn(ctx context.Context, n *raft.Node) (context.Context, *grpc.ClientConn, error) {
	if IsForwarded(ctx) {
		return nil, nil, n.NotLeader()
	}
	for {
		if err := n.WaitForLeader(ctx); err != nil {
			return nil, nil, err
		}
		leader := n.Leader()
		if leader == n.ID() {
			return nil, nil, n.NotLeader()
		}
		conn, err := n.PeerConn(leader)
		if err == nil && waitReady(ctx, n, leader, conn) {
			fctx, err := forwardingContext(ctx, n.NodeID())
			if err != nil {
				return nil, nil, err
			}
			return fctx, conn, nil
		}
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("%w: the leader %x could not be reached: %w", raft.ErrNoLeader, leader, ctx.Err())
		}
		if err != nil {
			// No connection to that member yet (it is new, or going):
			// the leadership or the membership changes soon.
			if b := (Backoff{Max: leaderPoll(n), next: leaderPoll(n)}); !b.Wait(ctx) {
				return nil, nil, fmt.Errorf("%w: no connection to the leader %x: %w", raft.ErrNoLeader, leader, err)
			}
		}
	}
}

// waitReady waits until conn, to the leader, is ready, and reports whether
// it is; it gives up when leadership moves away from leader or ctx ends.
func waitReady(ctx context.Context, n *raft.Node, leader uint64, conn *grpc.ClientConn) bool {
	conn.Connect()
	for {
		st := conn.GetState()
		if st == connectivity.Ready {
			return true
		}
		if n.Leader() != leader || ctx.Err() != nil {
			return false
		}
		// Wake on a change of the connection, and now and then to look
		// at the leadership, which has no channel of its own here.
		wctx, cancel := context.WithTimeout(ctx, leaderPoll(n))
		conn.WaitForStateChange(wctx, st)
		cancel()
	}
}

// leaderPoll is how often a forwarding manager looks again at who leads
// while it waits: often enough to follow an election closely.
func leaderPoll(n *raft.Node) time.Duration {
	return max(n.ElectionTimeout()/10, time.Millisecond)
}

// Backoff spaces the attempts of a call that changed nothing: from a
// millisecond up, doubling, to Max, so that the first attempts follow an
// election closely and the later ones do not spin.
type Backoff struct {
	Max  time.Duration
	next time.Duration
}

// Wait waits out the next delay, and reports false, at once, when ctx ends
// first.
func (b *Backoff) Wait(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	b.next = min(max(2*b.next, time.Millisecond), max(b.Max, time.Millisecond))
	t := time.NewTimer(b.next)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
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
