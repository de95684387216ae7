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

// forwardedKey marks a call that a follower forwarded to the leader; such
// a call is never forwarded again.
const forwardedKey = "shoal-forwarded-by"

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
	id, st, err := s.n.Join(ctx, req.GetNodeId(), req.GetAddr())
	if errors.Is(err, ErrNotLeader) {
		return forward(ctx, s.n, func(ctx context.Context, conn *grpc.ClientConn) (*api.JoinResponse, error) {
			return api.NewRaftMembershipClient(conn).Join(ctx, req)
		})
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &api.JoinResponse{RaftId: id, Members: st.GetMembers(), Removed: st.GetRemoved()}, nil
}

func (s *membershipServer) Leave(ctx context.Context, req *api.LeaveRequest) (*api.LeaveResponse, error) {
	n := s.n
	if req.GetRaftId() == n.id && n.leadership.isRaftLeader() {
		// The leader leaves: hand over leadership, then let the new
		// leader remove it.
		if err := n.TransferLeadership(ctx, 0); err != nil {
			return nil, toStatus(err)
		}
	}
	err := n.RemoveMember(ctx, req.GetRaftId(), false)
	if errors.Is(err, ErrNotLeader) {
		return forward(ctx, n, func(ctx context.Context, conn *grpc.ClientConn) (*api.LeaveResponse, error) {
			return api.NewRaftMembershipClient(conn).Leave(ctx, req)
		})
	}
	if err != nil {
		return nil, toStatus(err)
	}
	return &api.LeaveResponse{}, nil
}

// forward sends a call to the leader, waiting up to an election timeout
// for one to be known. A call that was already forwarded is refused
// instead, so a call takes at most one hop.
func forward[T any](ctx context.Context, n *Node, call func(context.Context, *grpc.ClientConn) (T, error)) (T, error) {
	var zero T
	if md, ok := metadata.FromIncomingContext(ctx); ok && len(md.Get(forwardedKey)) > 0 {
		return zero, toStatus(n.notLeader())
	}
	wctx, cancel := context.WithTimeout(ctx, 2*n.cfg.electionTimeout())
	err := n.WaitForLeader(wctx)
	cancel()
	if err != nil {
		return zero, toStatus(err)
	}
	leader := n.Leader()
	if leader == n.id {
		return zero, status.Error(codes.Unavailable, "raft: this node just became leader; retry")
	}
	conn, err := n.transport.PeerConn(leader)
	if err != nil {
		return zero, status.Errorf(codes.Unavailable, "raft: no connection to the leader %x: %v", leader, err)
	}
	ctx = metadata.AppendToOutgoingContext(ctx, forwardedKey, fmt.Sprintf("%x", n.id))
	return call(ctx, conn)
}

// toStatus turns the node's errors into gRPC status errors with codes a
// client can act on.
func toStatus(err error) error {
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
		errors.Is(err, ErrConfChangeRefused):
		code = codes.FailedPrecondition
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
