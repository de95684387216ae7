package robustness

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/client"
)

// The faults of membership: members that go and come back as new ones,
// joins that race, demotions and promotions.

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

func isVoter(m *api.Member) bool { return m != nil && m.GetSuffrage() == "voter" }

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

// concurrentJoin gets a manager certificate for a new node and calls Join
// for it on two or three managers at once, as a joiner that retries
// through another manager would: the node must get one Raft ID, on every
// member. The learner that never starts is then removed.
func concurrentJoin(f *faultRun) error {
	live := f.c.live()
	if len(live) < 2 {
		return errors.New("fewer than two managers run")
	}
	f.rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	vias := live[:2]
	var token string
	err := f.c.admin(vias[0], 10*time.Second, func(ctx context.Context, cl *client.Client) error {
		var err error
		token, err = cl.JoinToken(ctx, false)
		return err
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	creds, err := ca.Join(ctx, vias[0].listen, ca.RoleManager, token)
	if err != nil {
		return fmt.Errorf("a certificate from %s: %w", vias[0].name, err)
	}
	cert, err := creds.KeyPair.TLSCertificate()
	if err != nil {
		return err
	}
	holder, err := ca.NewCertificateHolder(cert)
	if err != nil {
		return err
	}
	nodeID := holder.Identity().NodeID
	tlsConfig := ca.ClientTLSConfig(creds.RootCA, holder)
	calls := 2 + f.rng.IntN(2)
	type result struct {
		via    string
		raftID uint64
		err    error
	}
	results := make([]result, calls)
	delays := make([]time.Duration, calls)
	var names []string
	for i := range delays {
		delays[i] = time.Duration(f.rng.IntN(20)) * time.Millisecond
		names = append(names, fmt.Sprintf("%s+%v", vias[i%2].name, delays[i]))
	}
	f.note("node %s joins %d times at once, through %v", nodeID, calls, names)
	var wg sync.WaitGroup
	for i := range calls {
		m := vias[i%2]
		conn, err := grpc.NewClient(m.listen, grpc.WithTransportCredentials(credentials.NewTLS(tlsConfig)))
		if err != nil {
			return err
		}
		defer conn.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(delays[i])
			resp, err := api.NewRaftMembershipClient(conn).Join(ctx, &api.JoinRequest{NodeId: nodeID, Addr: "ghost.peer.invalid:" + peerPort})
			results[i] = result{via: m.name, raftID: resp.GetRaftId(), err: err}
		}()
	}
	wg.Wait()
	ids := map[uint64]bool{}
	var outcomes []string
	for _, r := range results {
		if r.err == nil {
			ids[r.raftID] = true
			outcomes = append(outcomes, fmt.Sprintf("%s: Raft ID %x", r.via, r.raftID))
			continue
		}
		outcomes = append(outcomes, fmt.Sprintf("%s: %v", r.via, status.Code(r.err)))
		switch status.Code(r.err) {
		case codes.AlreadyExists, codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.FailedPrecondition:
		default:
			f.c.problem("a concurrent join of node %s through %s failed as %v", nodeID, r.via, r.err)
		}
	}
	f.note("joins of node %s: %s", nodeID, strings.Join(outcomes, "; "))
	if len(ids) > 1 {
		f.c.problem("node %s was given %d Raft IDs by concurrent joins: %s", nodeID, len(ids), strings.Join(outcomes, "; "))
	}
	// Every member must come to list the node once, under the Raft ID
	// its join was given.
	ms, err := f.c.members(10 * time.Second)
	if err != nil {
		return err
	}
	n := 0
	for _, m := range ms {
		if m.GetNodeId() == nodeID {
			n++
			if len(ids) > 0 && !ids[m.GetRaftId()] {
				f.c.problem("node %s is a member as Raft ID %x, which no join returned (%s)", nodeID, m.GetRaftId(), strings.Join(outcomes, "; "))
			}
		}
	}
	switch {
	case n > 1:
		f.c.problem("node %s is %d members after concurrent joins", nodeID, n)
	case n == 0 && len(ids) > 0:
		f.c.problem("node %s was given Raft ID %v but is no member", nodeID, ids)
	}
	want := len(f.c.managers) + n
	for _, m := range f.c.live() {
		deadline := time.Now().Add(10 * time.Second)
		var got int
		for time.Now().Before(deadline) {
			if v, err := m.info(time.Second); err == nil {
				if got = v.members; got == want {
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got != want {
			f.c.problem("%s counts %d members after the concurrent joins of node %s, not %d", m.name, got, nodeID, want)
		}
	}
	if n == 0 {
		return nil
	}
	return f.removeNode(nodeID, nil, 30*time.Second)
}

// demotePromote demotes a voter (the leader, which must hand over first,
// or a follower) under traffic, keeps it a learner for a while, and
// promotes it back.
func demotePromote(leader bool) func(*faultRun) error {
	return func(f *faultRun) error {
		m, err := f.leaderOrFollower(leader)
		if err != nil {
			return err
		}
		rid, nodeID := m.identity()
		via := f.pick(f.c.live())
		d := f.hold(time.Second, 3*time.Second)
		f.note("demote %s (%s, Raft ID %x) through %s, promote it back after %v", m.name, role(leader), rid, via.name, d.Round(time.Millisecond))
		if err := f.changeSuffrage(via, nodeID, false); err != nil {
			return err
		}
		mb, err := f.waitMember(nodeID, 10*time.Second, isLearner)
		if err != nil {
			f.c.problem("%s was demoted, but: %v", m.name, err)
		} else if mb.GetAutoPromote() {
			f.c.problem("%s was demoted and is to be promoted again by itself: %s", m.name, describeMember(mb))
		}
		if leader {
			if l, err := f.c.leader(10 * time.Second); err != nil {
				return err
			} else if l == m {
				f.c.problem("%s was demoted and still leads", m.name)
			} else {
				f.note("%s handed leadership to %s", m.name, l.name)
			}
		}
		time.Sleep(d)
		if mb, err := f.c.members(5 * time.Second); err == nil && !isLearner(memberOf(mb, nodeID)) {
			f.c.problem("%s, demoted, is %s before it was promoted back", m.name, describeMember(memberOf(mb, nodeID)))
		}
		if err := f.changeSuffrage(f.pick(f.c.live()), nodeID, true); err != nil {
			return err
		}
		if _, err := f.waitMember(nodeID, 10*time.Second, isVoter); err != nil {
			f.c.problem("%s was promoted back, but: %v", m.name, err)
		}
		return nil
	}
}

// changeSuffrage promotes or demotes the member nodeID through via,
// trying again while it is refused for now (a learner behind, a quorum
// not confirmed yet, an election): up to 20s.
func (f *faultRun) changeSuffrage(via *manager, nodeID string, promote bool) error {
	what := "demoting"
	if promote {
		what = "promoting"
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f.c.admin(via, 10*time.Second, func(ctx context.Context, cl *client.Client) error {
			if promote {
				return cl.PromoteMember(ctx, nodeID)
			}
			return cl.DemoteMember(ctx, nodeID)
		})
		if err == nil {
			return nil
		}
		switch status.Code(err) {
		case codes.FailedPrecondition, codes.Unavailable, codes.DeadlineExceeded:
		default:
			return fmt.Errorf("%s node %s through %s: %w", what, nodeID, via.name, err)
		}
		if time.Now().After(deadline) {
			f.c.problem("%s node %s through %s: still refused after 20s: %v", what, nodeID, via.name, err)
			return nil
		}
		f.c.logf("%s node %s through %s: %v; again", what, nodeID, via.name, err)
		time.Sleep(300 * time.Millisecond)
		if !via.running() || via.isPaused() {
			via = f.pick(f.c.live())
		}
	}
}
