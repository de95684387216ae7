package raft

import (
	"errors"
	"fmt"
)

// Errors returned by Node. Match them with errors.Is.
var (
	// ErrNotLeader means the call needs the leader and this node is not
	// it. The error is a *NotLeaderError that names the leader when known.
	ErrNotLeader = errors.New("raft: not the leader")
	// ErrNoLeader means the cluster has no leader right now (an election
	// is under way, or a quorum is unreachable).
	ErrNoLeader = errors.New("raft: no leader")
	// ErrLostLeadership means this node stopped being the leader while the
	// call waited for its entry. The entry may still be committed by the
	// next leader: the outcome is unknown.
	// A follower's proposal forwarded to a leader that stopped leading, or
	// that became unreachable, fails with an error that matches it too.
	ErrLostLeadership = errors.New("raft: leadership lost while waiting; the entry may still be committed")
	// ErrProposalTooLarge means a payload is larger than
	// Config.MaxProposalSize; nothing was proposed.
	ErrProposalTooLarge = errors.New("raft: proposal too large")
	// ErrProposalDropped means Raft dropped the proposal (a leadership
	// transfer is under way, or too many entries wait to be committed);
	// nothing was committed and the call may be retried.
	ErrProposalDropped = errors.New("raft: proposal dropped; retry")
	// ErrStopped means the node is stopped or stopping.
	ErrStopped = errors.New("raft: node stopped")
	// ErrNotStarted means the node has not been started yet.
	ErrNotStarted = errors.New("raft: node not started")
	// ErrMemberRemoved means this node was removed from the cluster; it
	// stops itself and must not rejoin with the same state.
	ErrMemberRemoved = errors.New("raft: this node was removed from the cluster")
	// ErrLeadershipTransfer means a leadership transfer did not complete.
	ErrLeadershipTransfer = errors.New("raft: leadership transfer failed")
	// ErrConfChangeRefused means a membership change was refused when
	// applied (for example the ID was removed before).
	ErrConfChangeRefused = errors.New("raft: membership change refused")
	// ErrCannotPromote means a learner cannot become a voter yet: it is
	// unreachable or too far behind the leader.
	ErrCannotPromote = errors.New("raft: learner cannot be promoted now")
	// ErrWrongNode means a call about a member came from another node.
	ErrWrongNode = errors.New("raft: the member belongs to another node")
)

// errUnchanged means a membership change would change nothing; it is never
// proposed, and the caller succeeds.
var errUnchanged = errors.New("raft: membership unchanged")

// NotLeaderError is returned when a call needs the leader. It wraps
// ErrNotLeader and, when known, names the leader so the caller can retry
// there.
type NotLeaderError struct {
	// LeaderID is the leader's Raft ID, 0 when unknown.
	LeaderID uint64
	// LeaderAddr is the leader's address, empty when unknown.
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderID == 0 {
		return ErrNotLeader.Error() + " (leader unknown)"
	}
	return fmt.Sprintf("%s (leader is %x at %s)", ErrNotLeader, e.LeaderID, e.LeaderAddr)
}

func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }

// forwardLostError is the error of a proposal this node forwarded to a
// leader that then stopped leading, or became unreachable, before the
// entry was applied here: the leader may have appended it, or never
// received it. It matches ErrLostLeadership.
type forwardLostError string

func (e forwardLostError) Error() string { return string(e) }
func (e forwardLostError) Unwrap() error { return ErrLostLeadership }

var (
	errLeaderChanged     = forwardLostError("raft: the leader a proposal was forwarded to stopped leading before it was applied here; the entry may still be committed")
	errLeaderUnreachable = forwardLostError("raft: the leader a proposal was forwarded to became unreachable before it was applied here; the entry may still be committed")
)
