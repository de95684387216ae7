package membership

import (
	"fmt"
	"slices"
	"sync"

	"github.com/shoal-project/shoal/api"
)

// Member is one manager of the cluster as Raft knows it.
type Member struct {
	// RaftID is the member's Raft ID: non-zero, unique for all time.
	RaftID uint64
	// NodeID is the manager's stable identity, which outlives a Raft ID
	// when a manager is removed and joins again.
	NodeID string
	// Addr is where the member's peers reach its Raft service.
	Addr string
	// Learner is set while the member receives the log without voting: it
	// never counts toward a quorum.
	Learner bool
	// AutoPromote is set on a learner that the leader makes a voter once
	// it has caught up. A manager joins as such a learner unless it asked
	// to stay one; a demoted voter is a learner without it.
	AutoPromote bool
}

// Proto returns m as the wire type.
func (m Member) Proto() *api.RaftMember {
	return &api.RaftMember{RaftId: m.RaftID, NodeId: m.NodeID, Addr: m.Addr, Learner: m.Learner, AutoPromote: m.AutoPromote}
}

// FromProto converts the wire type.
func FromProto(p *api.RaftMember) Member {
	return Member{RaftID: p.GetRaftId(), NodeID: p.GetNodeId(), Addr: p.GetAddr(), Learner: p.GetLearner(),
		AutoPromote: p.GetAutoPromote()}
}

// Suffrage is "learner" or "voter".
func (m Member) Suffrage() string {
	if m.Learner {
		return "learner"
	}
	return "voter"
}

// Cluster is the set of current members and of removed Raft IDs, with the
// node IDs of the removed members. It is safe for concurrent use. The raft
// package is its only writer, from its apply goroutine; anyone may read.
type Cluster struct {
	mu           sync.RWMutex
	members      map[uint64]Member
	removed      map[uint64]struct{}
	removedNodes map[string]struct{}
}

// NewCluster returns an empty cluster.
func NewCluster() *Cluster {
	return &Cluster{members: map[uint64]Member{}, removed: map[uint64]struct{}{}, removedNodes: map[string]struct{}{}}
}

// Add adds m, or replaces the member with m's Raft ID (a learner promoted
// or a voter demoted). It fails with ErrMemberRemoved when that ID was
// removed before: an ID is never reused; and with ErrNodeIsMember when
// another Raft ID has m's node ID: one node has one Raft ID for life.
func (c *Cluster) Add(m Member) error {
	if m.RaftID == 0 {
		return fmt.Errorf("membership: Raft ID 0 is not a valid member ID")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.removed[m.RaftID]; ok {
		return fmt.Errorf("%w: Raft ID %x", ErrMemberRemoved, m.RaftID)
	}
	if m.NodeID != "" {
		for id, other := range c.members {
			if id != m.RaftID && other.NodeID == m.NodeID {
				return fmt.Errorf("%w: node %s has Raft ID %x, not %x", ErrNodeIsMember, m.NodeID, id, m.RaftID)
			}
		}
	}
	c.members[m.RaftID] = m
	return nil
}

// SetSuffrage makes the member with Raft ID id a learner or a voter, with
// autoPromote for a learner the leader is to promote.
func (c *Cluster) SetSuffrage(id uint64, learner, autoPromote bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.members[id]
	if !ok {
		return fmt.Errorf("%w: Raft ID %x", ErrUnknownMember, id)
	}
	m.Learner, m.AutoPromote = learner, learner && autoPromote
	c.members[id] = m
	return nil
}

// UpdateAddr changes the address of a current member.
func (c *Cluster) UpdateAddr(id uint64, addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.members[id]
	if !ok {
		return fmt.Errorf("%w: Raft ID %x", ErrUnknownMember, id)
	}
	m.Addr = addr
	c.members[id] = m
	return nil
}

// Remove removes a member for good; its ID joins the removed set even if it
// was not a member (a removal may be applied before the addition is known,
// when replaying).
func (c *Cluster) Remove(id uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m, ok := c.members[id]; ok && m.NodeID != "" {
		c.removedNodes[m.NodeID] = struct{}{}
	}
	delete(c.members, id)
	c.removed[id] = struct{}{}
}

// IsNodeRemoved reports whether the manager with node ID nodeID was a
// member that was removed.
func (c *Cluster) IsNodeRemoved(nodeID string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.removedNodes[nodeID]
	return ok
}

// Get returns the member with Raft ID id.
func (c *Cluster) Get(id uint64) (Member, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m, ok := c.members[id]
	return m, ok
}

// ByNodeID returns the current member with the given node ID.
func (c *Cluster) ByNodeID(nodeID string) (Member, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, m := range c.members {
		if m.NodeID == nodeID {
			return m, true
		}
	}
	return Member{}, false
}

// IsRemoved reports whether id was removed from the cluster.
func (c *Cluster) IsRemoved(id uint64) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.removed[id]
	return ok
}

// IsUsed reports whether id belongs to a current or a removed member, so a
// new member must not get it.
func (c *Cluster) IsUsed(id uint64) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, member := c.members[id]
	_, removed := c.removed[id]
	return member || removed
}

// Members returns the current members sorted by Raft ID.
func (c *Cluster) Members() []Member {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmpUint64(a.RaftID, b.RaftID) })
	return out
}

// Voters returns the current members that vote, sorted by Raft ID.
func (c *Cluster) Voters() []Member {
	var out []Member
	for _, m := range c.Members() {
		if !m.Learner {
			out = append(out, m)
		}
	}
	return out
}

// Removed returns the removed Raft IDs in ascending order.
func (c *Cluster) Removed() []uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]uint64, 0, len(c.removed))
	for id := range c.removed {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// State returns the whole membership in its wire form, for snapshots and
// join responses.
func (c *Cluster) State() *api.RaftMembershipState {
	st := &api.RaftMembershipState{Removed: c.Removed()}
	for _, m := range c.Members() {
		st.Members = append(st.Members, m.Proto())
	}
	c.mu.RLock()
	for id := range c.removedNodes {
		st.RemovedNodeIds = append(st.RemovedNodeIds, id)
	}
	c.mu.RUnlock()
	slices.Sort(st.RemovedNodeIds)
	return st
}

// Restore replaces the whole membership with st.
func (c *Cluster) Restore(st *api.RaftMembershipState) {
	members := make(map[uint64]Member, len(st.GetMembers()))
	for _, p := range st.GetMembers() {
		members[p.GetRaftId()] = FromProto(p)
	}
	removed := make(map[uint64]struct{}, len(st.GetRemoved()))
	for _, id := range st.GetRemoved() {
		removed[id] = struct{}{}
		delete(members, id)
	}
	removedNodes := make(map[string]struct{}, len(st.GetRemovedNodeIds()))
	for _, id := range st.GetRemovedNodeIds() {
		removedNodes[id] = struct{}{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = members
	c.removed = removed
	c.removedNodes = removedNodes
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
