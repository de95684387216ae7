package raft

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft/membership"
	"github.com/shoal-project/shoal/raft/transport"
)

// ProcessRaftMessage steps a message from a peer into the node. It
// implements transport.Handler. A message from a removed member is refused
// with membership.ErrMemberRemoved, which tells the sender to stop.
func (n *Node) ProcessRaftMessage(ctx context.Context, m *raftpb.Message) error {
	if !n.started.Load() {
		return ErrNotStarted
	}
	if n.cluster.IsRemoved(m.GetFrom()) {
		return fmt.Errorf("%w: Raft ID %x", membership.ErrMemberRemoved, m.GetFrom())
	}
	if m.GetTo() != n.id {
		return fmt.Errorf("raft: message for %x reached %x", m.GetTo(), n.id)
	}
	n.heardFrom(m.GetFrom())
	if err := n.raftNode.Step(ctx, m); err != nil {
		if errors.Is(err, raft.ErrStopped) {
			return ErrStopped
		}
		return err
	}
	return nil
}

// NewRaftServer returns the gRPC Raft service of this node, to register on
// the manager's listener.
func (n *Node) NewRaftServer() api.RaftServer {
	return transport.NewServer(n, transport.ServerConfig{})
}

// NewMembershipServer returns the gRPC RaftMembership service of this
// node. A follower forwards each call to the leader, once.
func (n *Node) NewMembershipServer() api.RaftMembershipServer {
	return &membershipServer{n: n}
}

type membershipServer struct {
	api.UnimplementedRaftMembershipServer
	n *Node
}

func (s *membershipServer) Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	id, st, err := s.n.Join(ctx, req.GetNodeId(), req.GetAddr(), req.GetLearner())
	if errors.Is(err, ErrNotLeader) {
		return forward(ctx, s.n, func(ctx context.Context, conn *grpc.ClientConn) (*api.JoinResponse, error) {
			return api.NewRaftMembershipClient(conn).Join(ctx, req)
		})
	}
	if err != nil {
		return nil, ToStatus(err)
	}
	return &api.JoinResponse{RaftId: id, Members: st.GetMembers(), Removed: st.GetRemoved()}, nil
}

func (s *membershipServer) UpdateAddress(ctx context.Context, req *api.UpdateAddressRequest) (*api.UpdateAddressResponse, error) {
	err := s.n.UpdateAddress(ctx, req.GetRaftId(), req.GetNodeId(), req.GetAddr())
	if errors.Is(err, ErrNotLeader) {
		return forward(ctx, s.n, func(ctx context.Context, conn *grpc.ClientConn) (*api.UpdateAddressResponse, error) {
			return api.NewRaftMembershipClient(conn).UpdateAddress(ctx, req)
		})
	}
	if err != nil && !errors.Is(err, errUnchanged) {
		return nil, ToStatus(err)
	}
	return &api.UpdateAddressResponse{}, nil
}

// ForwardedKey is the gRPC metadata key that marks a call a follower
// forwarded to the leader; its value is the forwarding node's Raft ID. A
// call that carries it is never forwarded again, so a call takes at most
// one hop.
const ForwardedKey = "shoal-forwarded-by"

// IsForwarded reports whether the incoming call in ctx was forwarded by a
// follower.
func IsForwarded(ctx context.Context) bool {
	md, ok := metadata.FromIncomingContext(ctx)
	return ok && len(md.Get(ForwardedKey)) > 0
}

// LeaderConn returns a connection to the leader, waiting up to two
// election timeouts (or ctx) for one to be elected, and the outgoing
// context to use on it, which marks the call as forwarded. It fails with
// ErrNoLeader when there is none, and with a *NotLeaderError when ctx's
// call was itself forwarded, or when this node leads (the caller should
// serve the call instead).
func (n *Node) LeaderConn(ctx context.Context) (context.Context, *grpc.ClientConn, error) {
	if err := n.checkRunning(); err != nil {
		return nil, nil, err
	}
	if IsForwarded(ctx) {
		return nil, nil, n.notLeader()
	}
	wctx, cancel := context.WithTimeout(ctx, 2*n.cfg.electionTimeout())
	err := n.WaitForLeader(wctx)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	leader := n.Leader()
	if leader == n.id {
		return nil, nil, n.notLeader()
	}
	conn, err := n.transport.PeerConn(leader)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: no connection to the leader %x: %w", ErrNoLeader, leader, err)
	}
	return metadata.AppendToOutgoingContext(ctx, ForwardedKey, fmt.Sprintf("%x", n.id)), conn, nil
}

// forward sends a call to the leader (see LeaderConn).
func forward[T any](ctx context.Context, n *Node, call func(context.Context, *grpc.ClientConn) (T, error)) (T, error) {
	var zero T
	fctx, conn, err := n.LeaderConn(ctx)
	if err != nil {
		return zero, ToStatus(err)
	}
	return call(fctx, conn)
}

// ToStatus turns the node's errors into gRPC status errors with codes a
// client can act on.
func ToStatus(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNoLeader), errors.Is(err, ErrStopped),
		errors.Is(err, ErrNotStarted), errors.Is(err, ErrLostLeadership), errors.Is(err, ErrProposalDropped),
		errors.Is(err, ErrLeadershipTransfer):
		code = codes.Unavailable
	case errors.Is(err, membership.ErrUnknownMember):
		code = codes.NotFound
	case errors.Is(err, membership.ErrCannotRemove), errors.Is(err, membership.ErrMemberRemoved),
		errors.Is(err, membership.ErrCannotDemote), errors.Is(err, ErrCannotPromote),
		errors.Is(err, ErrConfChangeRefused):
		code = codes.FailedPrecondition
	case errors.Is(err, membership.ErrNodeIsMember):
		code = codes.AlreadyExists
	case errors.Is(err, ErrWrongNode):
		code = codes.PermissionDenied
	case errors.Is(err, ErrProposalTooLarge):
		code = codes.InvalidArgument
	}
	return status.Error(code, err.Error())
}

// errorFromStatus returns the message of a gRPC status error with its code,
// without gRPC's framing.
func errorFromStatus(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	return fmt.Errorf("%s (%s)", st.Message(), st.Code())
}
