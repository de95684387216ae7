package manager

import (
	"context"
	"errors"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/clusterrpc"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/membership"
)

func (s *controlServer) GetClusterInfo(ctx context.Context, _ *api.GetClusterInfoRequest) (*api.GetClusterInfoResponse, error) {
	st, err := s.m.node.Status()
	if err != nil {
		return nil, toStatus(err)
	}
	return s.m.localInfo(st), nil
}

func toMembers(st raft.Status) []*api.Member {
	now := time.Now()
	out := make([]*api.Member, 0, len(st.Members))
	for _, m := range st.Members {
		role := "follower"
		if m.Leader {
			role = "leader"
		}
		contact := int64(-1)
		switch {
		case m.RaftID == st.ID:
			contact = 0
		case !m.LastContact.IsZero():
			contact = max(now.Sub(m.LastContact).Milliseconds(), 0)
		}
		out = append(out, &api.Member{RaftId: m.RaftID, NodeId: m.NodeID, Addr: m.Addr, Role: role,
			Reachable: m.Reachable, MatchIndex: m.Match, Lag: m.Lag, Suffrage: m.Suffrage(),
			AutoPromote: m.AutoPromote, LastContactMs: contact})
	}
	return out
}

// ListMembers answers from the leader, which alone knows how far each
// member has replicated. When no leader is elected and answers within an
// election timeout (an election that takes longer, a leader that just
// died, a quorum lost), this manager answers with what it sees, so that an
// operator sees a cluster that lost its quorum instead of an error; the
// answer names who answered (AnsweredBy).
func (s *controlServer) ListMembers(ctx context.Context, req *api.ListMembersRequest) (*api.ListMembersResponse, error) {
	n := s.m.node
	local := func(context.Context) (*api.ListMembersResponse, error) {
		st, err := n.Status()
		if err != nil {
			return nil, err
		}
		return &api.ListMembersResponse{Members: toMembers(st), AnsweredBy: st.ID}, nil
	}
	lctx, cancel := context.WithTimeout(ctx, n.ElectionTimeout())
	defer cancel()
	resp, err := attempt(lctx, s, s.leaderHere, local, func(ctx context.Context, c api.ControlClient) (*api.ListMembersResponse, error) {
		return c.ListMembers(ctx, req)
	})
	if err != nil && ctx.Err() == nil && !clusterrpc.IsForwarded(ctx) {
		switch status.Code(err) {
		case codes.Unavailable, codes.DeadlineExceeded:
			resp, err = local(ctx)
			return resp, toStatus(err)
		}
	}
	return resp, err
}

// memberID finds the Raft ID of a member named by its Raft ID in hex or by
// its node ID.
func (s *controlServer) memberID(id string) (uint64, error) {
	cluster := s.m.node.Cluster()
	if m, ok := cluster.ByNodeID(id); ok {
		return m.RaftID, nil
	}
	raftID, err := strconv.ParseUint(id, 16, 64)
	if cluster.IsNodeRemoved(id) || (err == nil && cluster.IsRemoved(raftID)) {
		return 0, status.Errorf(codes.FailedPrecondition, "manager %s was removed from the cluster already", id)
	}
	if err == nil {
		if _, ok := cluster.Get(raftID); ok {
			return raftID, nil
		}
	}
	return 0, status.Errorf(codes.NotFound, "no manager has the node ID or Raft ID %q (see shoal node ls)", id)
}

func (s *controlServer) RemoveMember(ctx context.Context, req *api.RemoveMemberRequest) (*api.RemoveMemberResponse, error) {
	id, err := s.memberID(req.GetId())
	if err != nil {
		return nil, err
	}
	n := s.m.node
	if id == n.ID() && n.Leader() == id {
		// The leader is to go: hand over first, then the new leader
		// removes it. This hop may follow the one that brought the call
		// here: a handover is not a loop. A removal that would be refused
		// is refused before anything moves.
		if !req.GetForce() {
			if err := n.CheckRemove(ctx, id); errors.Is(err, membership.ErrCannotRemove) {
				return nil, cannotRemove(req.GetId())
			}
		}
		if err := n.TransferLeadership(ctx, 0); err != nil {
			return nil, toStatus(err)
		}
		ctx = clusterrpc.WithoutForwardMark(ctx)
	}
	resp, err := onLeader(ctx, s, func(ctx context.Context) (*api.RemoveMemberResponse, error) {
		err := n.RemoveMember(ctx, id, req.GetForce())
		if errors.Is(err, membership.ErrCannotRemove) {
			return nil, cannotRemove(req.GetId())
		}
		return &api.RemoveMemberResponse{}, err
	}, func(ctx context.Context, c api.ControlClient) (*api.RemoveMemberResponse, error) {
		return c.RemoveMember(ctx, req)
	})
	if err != nil && (n.Cluster().IsRemoved(id) || (id == n.ID() && n.Removed())) {
		// The removal was applied, and cut its own call short: the
		// connection to the removed manager closes as it goes.
		return &api.RemoveMemberResponse{}, nil
	}
	return resp, err
}

func cannotRemove(id string) error {
	return status.Errorf(codes.FailedPrecondition,
		"removing %s would leave the other voters without a quorum of reachable members; bring members back first, or use --force", id)
}

func cannotDemote(id string) error {
	return status.Errorf(codes.FailedPrecondition,
		"demoting %s would leave the other voters without a reachable quorum (a cluster needs at least one voter); bring members back first", id)
}

func (s *controlServer) PromoteMember(ctx context.Context, req *api.PromoteMemberRequest) (*api.PromoteMemberResponse, error) {
	id, err := s.memberID(req.GetId())
	if err != nil {
		return nil, err
	}
	return onLeader(ctx, s, func(ctx context.Context) (*api.PromoteMemberResponse, error) {
		return &api.PromoteMemberResponse{}, s.m.node.Promote(ctx, id)
	}, func(ctx context.Context, c api.ControlClient) (*api.PromoteMemberResponse, error) {
		return c.PromoteMember(ctx, req)
	})
}

func (s *controlServer) DemoteMember(ctx context.Context, req *api.DemoteMemberRequest) (*api.DemoteMemberResponse, error) {
	id, err := s.memberID(req.GetId())
	if err != nil {
		return nil, err
	}
	n := s.m.node
	if id == n.ID() && n.Leader() == id {
		// The leader is to be demoted: hand over first, then the new
		// leader demotes it (a handover is not a forwarding loop). A
		// demotion that would be refused is refused before anything moves.
		if err := n.CheckDemote(ctx, id); errors.Is(err, membership.ErrCannotDemote) {
			return nil, cannotDemote(req.GetId())
		}
		if err := n.TransferLeadership(ctx, 0); err != nil {
			return nil, toStatus(err)
		}
		ctx = clusterrpc.WithoutForwardMark(ctx)
	}
	return onLeader(ctx, s, func(ctx context.Context) (*api.DemoteMemberResponse, error) {
		err := n.Demote(ctx, id)
		if errors.Is(err, membership.ErrCannotDemote) {
			return nil, cannotDemote(req.GetId())
		}
		return &api.DemoteMemberResponse{}, err
	}, func(ctx context.Context, c api.ControlClient) (*api.DemoteMemberResponse, error) {
		return c.DemoteMember(ctx, req)
	})
}

func (s *controlServer) TransferLeadership(ctx context.Context, req *api.TransferLeadershipRequest) (*api.TransferLeadershipResponse, error) {
	var to uint64
	if req.GetTo() != "" {
		var err error
		if to, err = s.memberID(req.GetTo()); err != nil {
			return nil, err
		}
	}
	return onLeader(ctx, s, func(ctx context.Context) (*api.TransferLeadershipResponse, error) {
		if err := s.m.node.TransferLeadership(ctx, to); err != nil {
			return nil, err
		}
		return &api.TransferLeadershipResponse{LeaderRaftId: s.m.node.Leader()}, nil
	}, func(ctx context.Context, c api.ControlClient) (*api.TransferLeadershipResponse, error) {
		return c.TransferLeadership(ctx, req)
	})
}
