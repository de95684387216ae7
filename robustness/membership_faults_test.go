package robustness

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/client"
)

// The faults of membership: members that go and come back as new ones.

// liveOther returns a manager other than not (which may be nil) that runs
// and is not paused, at random; nil when there is none.
func (f *faultRun) liveOther(not *manager) *manager {
	var ms []*manager
	for _, m := range f.c.live() {
		if m != not {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return nil
	}
	return f.pick(ms)
}

// memberOf returns the member with node ID nodeID, or nil.
func memberOf(ms []*api.Member, nodeID string) *api.Member {
	for _, m := range ms {
		if m.GetNodeId() == nodeID {
			return m
		}
	}
	return nil
}

// waitMember waits until cond holds for the member with node ID nodeID as
// the leader reports it (nil when it is no member), and returns it.
func (f *faultRun) waitMember(nodeID string, timeout time.Duration, cond func(*api.Member) bool) (*api.Member, error) {
	deadline := time.Now().Add(timeout)
	for {
		ms, err := f.c.members(2 * time.Second)
		if err == nil {
			if m := memberOf(ms, nodeID); cond(m) {
				return m, nil
			}
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("node %s is %s after %v", nodeID, describeMember(memberOf(ms, nodeID)), timeout)
			}
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func describeMember(m *api.Member) string {
	if m == nil {
		return "no member"
	}
	s := fmt.Sprintf("a %s (Raft ID %x", m.GetSuffrage(), m.GetRaftId())
	if m.GetAutoPromote() {
		s += ", to be promoted"
	}
	return s + fmt.Sprintf(", lag %d, reachable %t)", m.GetLag(), m.GetReachable())
}

func isVoter(m *api.Member) bool   { return m != nil && m.GetSuffrage() == "voter" }
func isLearner(m *api.Member) bool { return m != nil && m.GetSuffrage() == "learner" }

// removeNode removes the member with node ID nodeID, through managers
// that run, until the leader no longer lists it (as any manager but
// target, the manager removed, reports it). A manager that has not applied
// the member's join yet answers "not found", one that applied its removal
// "removed already": the members say which is true.
func (f *faultRun) removeNode(nodeID string, target *manager, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		via := f.liveOther(nil)
		var err error
		if via == nil {
			err = errors.New("no manager runs")
		} else {
			err = f.c.admin(via, 10*time.Second, func(ctx context.Context, cl *client.Client) error {
				return cl.RemoveMember(ctx, nodeID, false)
			})
		}
		if ms, lerr := f.c.membersExcept(target, 5*time.Second); lerr == nil && memberOf(ms, nodeID) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("removing node %s: %v", nodeID, err)
		}
		if err != nil && via != nil {
			f.c.logf("removing node %s through %s: %v; again", nodeID, via.name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// joinAsLearner joins m with an empty state directory through via and
// checks that it joined as a learner and is promoted once caught up.
func (f *faultRun) joinAsLearner(m, via *manager) error {
	joined := m.logCount("joined the cluster as a learner")
	if err := f.c.join(m, via); err != nil {
		return err
	}
	rid, nodeID := m.identity()
	if m.logCount("joined the cluster as a learner") <= joined {
		f.c.problem("%s joined without saying it joined as a learner", m.name)
	}
	start := time.Now()
	if _, err := f.waitMember(nodeID, 45*time.Second, isVoter); err != nil {
		f.c.problem("%s (Raft ID %x) joined but was not promoted: %v", m.name, rid, err)
		return nil
	}
	f.note("%s joined as Raft ID %x and was promoted within %v", m.name, rid, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// memberReplace removes a member, wipes its directory and joins it again
// as a new manager, through any manager: it joins as a learner and must
// be promoted once it has caught up.
func memberReplace(f *faultRun) error {
	m := f.pick(f.c.managers)
	via := f.liveOther(m)
	if via == nil {
		return fmt.Errorf("no manager to remove %s through", m.name)
	}
	_, nodeID := m.identity()
	f.note("remove %s (node %s), wipe it, join it again through %s", m.name, nodeID, via.name)
	m.expectExit()
	if err := f.removeNode(nodeID, m, 30*time.Second); err != nil {
		return err
	}
	if !m.waitExited(15 * time.Second) {
		f.note("%s still runs 15s after its removal; killing it", m.name)
		_ = m.kill()
	}
	if err := removeAll(m.dir); err != nil {
		return err
	}
	return f.joinAsLearner(m, via)
}
