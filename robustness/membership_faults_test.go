package robustness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/client"
	"github.com/shoal-project/shoal/internal/crashpoint"
	"github.com/shoal-project/shoal/robustness/proxy"
)

// The faults of membership: managers that lose their Raft state, joins
// that fail half-way or race, learners that fall behind, demotions and
// promotions. The faults that join a manager of their own use the
// cluster's spare manager, and remove it again before they end: the run's
// checks count the managers of the run only.

// wipedStateMustBeRefused makes the wipe-raft-state fault strict: a
// manager that finds its certificates but no Raft state, started as
// before without --join, must refuse to start (naming 'shoal node rm').
// While it is false, a manager that stops in another way, or keeps
// running without answering calls or acknowledging entries, passes too.
const wipedStateMustBeRefused = true

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

// nodeIDOf returns the node ID of the certificate in a state directory:
// in certificates/, or, for a first start that has no WAL yet (or crashed
// before it bound its identity to the WAL), in certificates.pending/.
func nodeIDOf(dir string) (string, error) {
	id, err := ca.ReadIdentity(ca.CertificatesPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		id, err = ca.ReadIdentity(ca.CertificatesPath(dir) + ".pending")
	}
	return id.NodeID, err
}

// waitLog waits until m's log holds more than n lines with s.
func (m *manager) waitLog(s string, n int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if m.logCount(s) > n {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// logSince returns m's log after its first offset bytes.
func (m *manager) logSince(offset int64) string {
	b, _ := os.ReadFile(m.log)
	if int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}

func (m *manager) logSize() int64 {
	st, err := os.Stat(m.log)
	if err != nil {
		return 0
	}
	return st.Size()
}

// removeSpare removes the spare manager with node ID nodeID from the
// cluster, waits for it to stop, and wipes its directory.
func (f *faultRun) removeSpare(s *manager, nodeID string) error {
	s.expectExit()
	if err := f.removeNode(nodeID, s, 30*time.Second); err != nil {
		return err
	}
	if s.running() && !s.waitExited(15*time.Second) {
		f.note("%s still runs 15s after its removal; killing it", s.name)
		_ = s.kill()
	}
	return removeAll(s.dir)
}

// wipeRaftState kills a manager, deletes its Raft state but not its
// certificates or keys, and starts it again, without --join as it was
// started before or with the --join flags an operator may give again. It
// must not take part in the cluster under its old Raft ID: its votes and
// acknowledgements are forgotten. It is then recovered as it should be:
// removed, its state directory wiped, joined again as a new member.
func wipeRaftState(f *faultRun) error {
	m, err := f.leaderOrFollower(f.rng.IntN(3) == 0)
	if err != nil {
		return err
	}
	via := f.liveOther(m)
	if via == nil {
		return fmt.Errorf("no manager besides %s runs", m.name)
	}
	oldID, nodeID := m.identity()
	withJoin := f.rng.IntN(2) == 0
	how := "as before"
	if withJoin {
		how = "with --join " + via.name
	}
	f.note("kill %s (Raft ID %x), wipe its raft/ but keep its certificates, start it %s", m.name, oldID, how)
	if err := m.kill(); err != nil {
		return err
	}
	if err := removeAll(filepath.Join(m.dir, "raft")); err != nil {
		return err
	}
	// What the leader has from the old member, to tell whether anything
	// acknowledges entries under its Raft ID once it runs again.
	time.Sleep(200 * time.Millisecond)
	matchBefore := uint64(0)
	if ms, err := f.c.membersExcept(m, 10*time.Second); err == nil {
		matchBefore = memberOf(ms, nodeID).GetMatchIndex()
	}
	var flags []string
	if withJoin {
		if flags, err = f.c.joinFlags(via); err != nil {
			return err
		}
	}
	offset := m.logSize()
	if err := m.startMayExit(flags); err != nil {
		return err
	}
	mustRefuse := wipedStateMustBeRefused || withJoin
	deadline := time.Now().Add(8 * time.Second)
	served := false
	for time.Now().Before(deadline) && m.running() {
		// Asked without the health check a client makes first: a client
		// connected before keeps calling whatever the health says.
		if v, err := m.probeInfo(time.Second); err == nil && v.GetManager().GetRaftId() != 0 {
			served = true
			if id := v.GetManager().GetRaftId(); id == oldID {
				f.c.problem("%s, started without its Raft state, answers calls under its old Raft ID %x", m.name, oldID)
			} else {
				f.c.problem("%s, started without its Raft state, answers calls as Raft ID %x, in a cluster of %d member(s) led by %x, store at version %d: not the cluster it was in",
					m.name, id, v.GetMembers(), v.GetLeaderRaftId(), v.GetStoreVersion())
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if ms, err := f.c.membersExcept(m, 10*time.Second); err == nil {
		if old := memberOf(ms, nodeID); old.GetRaftId() == oldID && old.GetMatchIndex() > matchBefore {
			f.c.problem("%s, started without its Raft state, acknowledged entries under its old Raft ID %x (match %d, was %d)",
				m.name, oldID, old.GetMatchIndex(), matchBefore)
		}
	}
	log := m.logSince(offset)
	refused := !m.running()
	switch {
	case refused && strings.Contains(log, "shoal node rm"):
		f.note("%s refused to start without its Raft state", m.name)
	case refused:
		if mustRefuse {
			f.c.problem("%s stopped without its Raft state, but its message does not name 'shoal node rm':\n%s", m.name, m.logTail(5))
		}
		f.note("%s stopped without its Raft state: %s", m.name, lastLine(log))
	case mustRefuse:
		f.c.problem("%s, started %s with certificates but no Raft state, did not refuse to start within 8s", m.name, how)
	case !served:
		f.note("%s kept running without answering calls for 8s; killing it", m.name)
	default:
		f.note("%s answered calls without its Raft state; killing it", m.name)
	}
	if m.running() {
		if err := m.kill(); err != nil {
			return err
		}
	}
	f.note("recover %s: remove node %s, wipe its state directory, join it again through %s", m.name, nodeID, via.name)
	if err := f.removeNode(nodeID, m, 30*time.Second); err != nil {
		return err
	}
	if err := removeAll(m.dir); err != nil {
		return err
	}
	return f.joinAsLearner(m, via)
}

// probeInfo asks m's control socket for the cluster information directly,
// without the client's health check.
func (m *manager) probeInfo(timeout time.Duration) (*api.GetClusterInfoResponse, error) {
	path, err := filepath.Abs(m.socket())
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return api.NewControlClient(conn).GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
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

// spareToJoin returns the cluster's spare manager, a running manager to
// join through, and the flags that join through it.
func (f *faultRun) spareToJoin() (spare, via *manager, flags []string, err error) {
	if spare, err = f.c.spareManager(); err != nil {
		return nil, nil, nil, err
	}
	if via = f.liveOther(nil); via == nil {
		return nil, nil, nil, errors.New("no manager runs")
	}
	flags, err = f.c.joinFlags(via)
	return spare, via, flags, err
}

// joinCrash makes the spare manager join and crash at point: after the
// leader answered its join (a learner it never starts), or right after
// its WAL exists. The learner must not count toward the quorum: with as
// many voters down as the cluster tolerates, a write still commits. A
// joiner that crashed before its WAL existed has no identity bound to Raft
// state: started again as before, it joins as a new node, and the learner
// the crash left is removed with node rm. One that crashed after must
// catch up when started again, and be promoted.
func joinCrash(point string) func(*faultRun) error {
	return func(f *faultRun) error {
		s, via, flags, err := f.spareToJoin()
		if err != nil {
			return err
		}
		f.note("%s joins through %s with %s armed", s.name, via.name, point)
		if err := s.start(flags, point); err != nil {
			return err
		}
		s.mu.Lock()
		crashed := s.crashed
		s.mu.Unlock()
		select {
		case <-crashed:
		case <-time.After(30 * time.Second):
			f.c.problem("%s did not reach %s within 30s of starting to join", s.name, point)
			_ = s.kill()
		}
		nodeID, err := nodeIDOf(s.dir)
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		ghost, err := f.waitMember(nodeID, 10*time.Second, func(m *api.Member) bool { return m != nil })
		if err != nil {
			f.c.problem("%s crashed at %s after its join was answered, but is no member: %v", s.name, point, err)
			return removeAll(s.dir)
		}
		if !isLearner(ghost) {
			f.c.problem("%s crashed at %s and is %s, not a learner", s.name, point, describeMember(ghost))
		}
		f.note("%s crashed at %s; it is %s", s.name, point, describeMember(ghost))
		if err := f.writeWithVotersDown(); err != nil {
			return err
		}
		switch point {
		case crashpoint.JoinAnswered:
			// No WAL: started again as before, it discards what the
			// crashed start wrote and joins as a new node. The learner
			// the crash left never answers; it is removed by hand.
			if err := s.start(flags, ""); err != nil {
				return err
			}
			var again string
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				if id, err := nodeIDOf(s.dir); err == nil && id != nodeID {
					again = id
					break
				}
				if time.Now().After(deadline) {
					f.c.problem("%s, started again after crashing before its WAL existed, has no new node ID after 30s", s.name)
					_ = s.kill()
					if err := f.removeNode(nodeID, nil, 30*time.Second); err != nil {
						return err
					}
					return removeAll(s.dir)
				}
			}
			if _, err := f.waitMember(again, 45*time.Second, isVoter); err != nil {
				f.c.problem("%s, started again as node %s, was not promoted: %v", s.name, again, err)
			}
			f.note("remove node %s (the learner that never started)", nodeID)
			if err := f.removeNode(nodeID, nil, 30*time.Second); err != nil {
				return err
			}
			return f.removeSpare(s, again)
		default:
			if f.rng.IntN(2) == 0 {
				flags = nil // --join is ignored once the WAL exists
			}
			if err := s.start(flags, ""); err != nil {
				return err
			}
			start := time.Now()
			if _, err := f.waitMember(nodeID, 45*time.Second, isVoter); err != nil {
				f.c.problem("%s, restarted after crashing at %s, was not promoted: %v", s.name, point, err)
			} else {
				f.note("%s, restarted, caught up and was promoted within %v", s.name, time.Since(start).Round(100*time.Millisecond))
			}
			return f.removeSpare(s, nodeID)
		}
	}
}

// writeWithVotersDown pauses as many voters as the cluster tolerates to
// lose, never the leader, and checks that a write still commits: the
// learners, whatever state they are in, count toward no quorum.
func (f *faultRun) writeWithVotersDown() error {
	l, err := f.c.leader(10 * time.Second)
	if err != nil {
		return err
	}
	ms, err := f.c.members(5 * time.Second)
	if err != nil {
		return err
	}
	voters := 0
	for _, m := range ms {
		if isVoter(m) {
			voters++
		}
	}
	followers := f.c.others(l)
	f.rng.Shuffle(len(followers), func(i, j int) { followers[i], followers[j] = followers[j], followers[i] })
	paused := followers[:min((voters-1)/2, len(followers))]
	var names []string
	for _, m := range paused {
		if err := m.pause(); err != nil {
			return err
		}
		names = append(names, m.name)
	}
	defer func() {
		for _, m := range paused {
			_ = m.resume()
		}
	}()
	start := time.Now()
	var werr error
	for time.Since(start) < 15*time.Second {
		werr = f.c.admin(l, 5*time.Second, func(ctx context.Context, cl *client.Client) error {
			_, err := cl.Create(ctx, &api.Object{Kind: "probe", Name: fmt.Sprintf("p%d", time.Now().UnixNano())})
			return err
		})
		if werr == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if werr != nil {
		f.c.problem("with %v paused (%d voters) and the learner down, no write committed through the leader %s within 15s: %v",
			names, voters, l.name, werr)
	} else {
		f.note("with %v of %d voters paused and the learner down, a write committed in %v", names, voters,
			time.Since(start).Round(time.Millisecond))
	}
	return nil
}

// learnerCatchUp makes the spare manager join and, while it catches up
// from the leader, cuts it off (until the leader has taken snapshots past
// it), kills it meanwhile, crashes it while it saves the snapshot it
// receives, or kills it right after it joined. It must be promoted only
// once it has caught up, never while cut off.
func learnerCatchUp(f *faultRun) error {
	s, via, flags, err := f.spareToJoin()
	if err != nil {
		return err
	}
	modes := []string{"cut", "kill-while-cut", crashpoint.SnapshotReceivedBefore, crashpoint.SnapshotReceivedAfter,
		crashpoint.SnapshotStateReceived, "kill-at-once"}
	mode := modes[f.rng.IntN(len(modes))]
	cut := mode == "cut" || mode == "kill-while-cut"
	armed := ""
	if strings.HasPrefix(mode, "snapshot-") {
		armed = mode
	}
	f.note("%s joins through %s as a learner; then: %s", s.name, via.name, mode)
	if cut {
		// The members cannot reach it: it is a member that gets nothing.
		for _, o := range f.c.managers {
			f.c.net.SetLink(o.name, s.host, proxy.Fault{Drop: 1})
		}
	}
	joined := s.logCount("joined the cluster as a learner")
	restores := s.logCount("restored snapshot")
	if err := s.start(flags, armed); err != nil {
		return err
	}
	if !s.waitLog("joined the cluster as a learner", joined, 30*time.Second) {
		f.c.net.HealAll()
		return fmt.Errorf("%s did not join within 30s", s.name)
	}
	nodeID, err := nodeIDOf(s.dir)
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	switch {
	case cut:
		l, err := f.c.leader(10 * time.Second)
		if err != nil {
			return err
		}
		lv, err := l.info(2 * time.Second)
		if err != nil {
			return err
		}
		killAfter := f.hold(0, 3*time.Second)
		killed := false
		start := time.Now()
		for time.Since(start) < 15*time.Second {
			if mode == "kill-while-cut" && !killed && time.Since(start) > killAfter {
				if err := s.kill(); err != nil {
					return err
				}
				killed = true
			}
			if ms, err := f.c.members(2 * time.Second); err == nil {
				if m := memberOf(ms, nodeID); !isLearner(m) {
					f.c.problem("%s, cut off since it joined, is %s", s.name, describeMember(m))
				}
			}
			if v, err := l.info(time.Second); err == nil && v.commit > lv.commit+2*snapshotInterval {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		f.c.net.HealAll()
		f.note("%s was cut off for %v while the leader went on (killed: %t)", s.name, time.Since(start).Round(100*time.Millisecond), killed)
		if killed {
			time.Sleep(f.hold(100*time.Millisecond, time.Second))
			if err := s.start(nil, ""); err != nil {
				return err
			}
		}
	case armed != "":
		s.mu.Lock()
		crashed := s.crashed
		s.mu.Unlock()
		select {
		case <-crashed:
			f.note("%s crashed at %s", s.name, armed)
		case <-time.After(15 * time.Second):
			f.note("%s did not reach %s within 15s; killed instead", s.name, armed)
			if err := s.kill(); err != nil {
				return err
			}
		}
		if err := s.start(nil, ""); err != nil {
			return err
		}
	default:
		time.Sleep(f.hold(0, 500*time.Millisecond))
		if err := s.kill(); err != nil {
			return err
		}
		time.Sleep(f.hold(100*time.Millisecond, time.Second))
		if err := s.start(nil, ""); err != nil {
			return err
		}
	}
	start := time.Now()
	if _, err := f.waitMember(nodeID, 45*time.Second, isVoter); err != nil {
		f.c.problem("the learner %s was not promoted: %v", s.name, err)
	} else {
		f.note("%s caught up (%d snapshots restored) and was promoted within %v", s.name,
			s.logCount("restored snapshot")-restores, time.Since(start).Round(100*time.Millisecond))
	}
	return f.removeSpare(s, nodeID)
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
