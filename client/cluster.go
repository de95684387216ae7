package client

import (
	"context"

	"github.com/shoal-project/shoal/api"
)

// ClusterInfo returns the cluster as the called manager sees it: its ID,
// the leader, the term and indexes, and how many managers are reachable.
func (c *Client) ClusterInfo(ctx context.Context) (*api.GetClusterInfoResponse, error) {
	var resp *api.GetClusterInfoResponse
	err := withRetry(ctx, always, func(ctx context.Context) (err error) {
		resp, err = c.control.GetClusterInfo(ctx, &api.GetClusterInfoRequest{}, callOptions(ctx)...)
		return err
	})
	return resp, err
}

// Members returns the managers as the leader sees them (with match
// indexes), or as the called manager sees them when there is no leader,
// and the Raft ID of the manager that answered.
func (c *Client) Members(ctx context.Context) ([]*api.Member, uint64, error) {
	var resp *api.ListMembersResponse
	err := withRetry(ctx, always, func(ctx context.Context) (err error) {
		resp, err = c.control.ListMembers(ctx, &api.ListMembersRequest{}, callOptions(ctx)...)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return resp.GetMembers(), resp.GetAnsweredBy(), nil
}

// RemoveMember removes the manager id names (its node ID, or its Raft ID
// in hex) from the cluster. It is refused (IsConflict) when the others
// would be left without a quorum of reachable managers, unless force.
func (c *Client) RemoveMember(ctx context.Context, id string, force bool) error {
	_, err := c.control.RemoveMember(ctx, &api.RemoveMemberRequest{Id: id, Force: force})
	return err
}

// PromoteMember makes the learner id names (node ID or Raft ID in hex) a
// voter. It is refused (IsConflict) while the learner is unreachable or
// behind the leader.
func (c *Client) PromoteMember(ctx context.Context, id string) error {
	_, err := c.control.PromoteMember(ctx, &api.PromoteMemberRequest{Id: id})
	return err
}

// DemoteMember makes the voter id names a learner, which keeps the log but
// no longer votes. It is refused (IsConflict) when the other voters would
// keep no reachable quorum; a leader hands over leadership first.
func (c *Client) DemoteMember(ctx context.Context, id string) error {
	_, err := c.control.DemoteMember(ctx, &api.DemoteMemberRequest{Id: id})
	return err
}

// TransferLeadership hands leadership to the manager to names (node ID or
// Raft ID in hex; empty: the most up-to-date reachable one) and returns
// the new leader's Raft ID.
func (c *Client) TransferLeadership(ctx context.Context, to string) (uint64, error) {
	may := always // a transfer to the member that leads already succeeds at once
	if to == "" {
		may = ifNotApplied // a repeat would move leadership once more
	}
	var resp *api.TransferLeadershipResponse
	err := withRetry(ctx, may, func(ctx context.Context) (err error) {
		resp, err = c.control.TransferLeadership(ctx, &api.TransferLeadershipRequest{To: to}, callOptions(ctx)...)
		return err
	})
	if err != nil {
		return 0, err
	}
	return resp.GetLeaderRaftId(), nil
}
