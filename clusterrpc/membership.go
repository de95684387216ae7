package clusterrpc

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/raft"
)

// NewMembershipServer returns the RaftMembership service of node n. A
// follower forwards each call to the leader, once. With checkCaller, a
// manager may join or change its address only as the node its certificate
// names (for a forwarded call, the original caller's, which the
// Authorizer checked); without it (tests on insecure connections) any
// caller may.
func NewMembershipServer(n *raft.Node, checkCaller bool) api.RaftMembershipServer {
	return &membershipServer{n: n, checkCaller: checkCaller}
}

type membershipServer struct {
	api.UnimplementedRaftMembershipServer
	n           *raft.Node
	checkCaller bool
}

// callerIs refuses a call about nodeID from another node.
func (s *membershipServer) callerIs(ctx context.Context, nodeID, what string) error {
	if !s.checkCaller {
		return nil
	}
	if c, ok := ca.CallerFromContext(ctx); !ok || c.NodeID != nodeID {
		return status.Errorf(codes.PermissionDenied, "a manager may %s only as the node its certificate names", what)
	}
	return nil
}

func (s *membershipServer) Join(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
	if err := s.callerIs(ctx, req.GetNodeId(), "join"); err != nil {
		return nil, err
	}
	id, st, err := s.n.Join(ctx, req.GetNodeId(), req.GetAddr(), req.GetLearner())
	if errors.Is(err, raft.ErrNotLeader) {
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
	if err := s.callerIs(ctx, req.GetNodeId(), "change its address"); err != nil {
		return nil, err
	}
	err := s.n.UpdateAddress(ctx, req.GetRaftId(), req.GetNodeId(), req.GetAddr())
	if errors.Is(err, raft.ErrNotLeader) {
		return forward(ctx, s.n, func(ctx context.Context, conn *grpc.ClientConn) (*api.UpdateAddressResponse, error) {
			return api.NewRaftMembershipClient(conn).UpdateAddress(ctx, req)
		})
	}
	if err != nil {
		return nil, ToStatus(err)
	}
	return &api.UpdateAddressResponse{}, nil
}
