package membership

import "errors"

// Errors returned by this package and by the peers that enforce membership.
var (
	// ErrMemberRemoved means a Raft ID was removed from the cluster. A
	// removed ID is never reused, and its messages are refused.
	ErrMemberRemoved = errors.New("membership: member removed")
	// ErrUnknownMember means no member has the given Raft ID.
	ErrUnknownMember = errors.New("membership: unknown member")
	// ErrCannotRemove means removing the member would leave the cluster
	// without a quorum of reachable members.
	ErrCannotRemove = errors.New("membership: removal would leave the cluster without a quorum of reachable members")
	// ErrCannotDemote means demoting the voter would leave the voters
	// without a reachable quorum.
	ErrCannotDemote = errors.New("membership: demotion would leave the voters without a reachable quorum")
	// ErrNodeIsMember means a node ID is a member already, under a Raft ID
	// of its own: one node has one Raft ID for life.
	ErrNodeIsMember = errors.New("membership: node is a member already")
)
