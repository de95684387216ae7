package clusterrpc

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/membership"
)

// ToStatus turns the node's errors into gRPC status errors with codes a
// client can act on. A status error is returned as is.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	if nothingDone(err) {
		return api.NotApplied(status.New(codes.Unavailable, err.Error())).Err()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrNoLeader), errors.Is(err, raft.ErrStopped),
		errors.Is(err, raft.ErrNotStarted), errors.Is(err, raft.ErrLostLeadership), errors.Is(err, raft.ErrProposalDropped),
		errors.Is(err, raft.ErrLeadershipTransfer):
		code = codes.Unavailable
	case errors.Is(err, membership.ErrUnknownMember):
		code = codes.NotFound
	case errors.Is(err, membership.ErrCannotRemove), errors.Is(err, membership.ErrMemberRemoved),
		errors.Is(err, membership.ErrCannotDemote), errors.Is(err, raft.ErrCannotPromote),
		errors.Is(err, raft.ErrConfChangeRefused):
		code = codes.FailedPrecondition
	case errors.Is(err, membership.ErrNodeIsMember):
		code = codes.AlreadyExists
	case errors.Is(err, raft.ErrWrongNode):
		code = codes.PermissionDenied
	case errors.Is(err, raft.ErrProposalTooLarge):
		code = codes.InvalidArgument
	}
	return status.Error(code, err.Error())
}

// nothingDone reports the node's errors after which a call certainly
// changed nothing: no leader, not the leader, a dropped proposal, a node
// that is not running. ErrLostLeadership is not one: its entry may commit.
func nothingDone(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrNoLeader) || errors.Is(err, raft.ErrStopped) ||
		errors.Is(err, raft.ErrNotStarted) || errors.Is(err, raft.ErrProposalDropped)
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
