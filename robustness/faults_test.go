package robustness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/shoal-project/shoal/client"
	"github.com/shoal-project/shoal/internal/crashpoint"
	"github.com/shoal-project/shoal/robustness/proxy"
)

// A fault injects one failure, holds it, and heals it, logging each step.
// It returns an error only when the harness itself could not do its part
// (a manager that would not restart); what the cluster does meanwhile is
// for the checks to judge.
type fault struct {
	name string
	run  func(f *faultRun) error
}

// faultRun is what a fault works with.
type faultRun struct {
	c   *cluster
	rng *rand.Rand
	// note records what was done, for the run's report.
	note func(format string, args ...any)
}

// hold returns a random duration in [lo, hi).
func (f *faultRun) hold(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(f.rng.Int64N(int64(hi-lo)))
}

func (f *faultRun) pick(ms []*manager) *manager { return ms[f.rng.IntN(len(ms))] }

// leaderAndFollower returns the leader and one follower at random.
func (f *faultRun) leaderAndFollower() (*manager, *manager, error) {
	l, err := f.c.leader(10 * time.Second)
	if err != nil {
		return nil, nil, err
	}
	return l, f.pick(f.c.others(l)), nil
}

// faults is the catalogue.
var faults = map[string]fault{
	"kill-leader":               {"kill-leader", killFault(true)},
	"kill-follower":             {"kill-follower", killFault(false)},
	"pause-leader":              {"pause-leader", pauseFault(true)},
	"pause-follower":            {"pause-follower", pauseFault(false)},
	"partition-leader":          {"partition-leader", partitionLeader},
	"partition-random":          {"partition-random", partitionRandom},
	"one-way-from-leader":       {"one-way-from-leader", oneWay(true)},
	"one-way-to-leader":         {"one-way-to-leader", oneWay(false)},
	"drop-connections":          {"drop-connections", dropConnections},
	"delay":                     {"delay", delayLinks},
	"snapshot-catch-up":         {"snapshot-catch-up", snapshotCatchUp},
	"member-replace":            {"member-replace", memberReplace},
	"crash-point":               {"crash-point", crashPointFault(false)},
	"crash-point-leader":        {"crash-point-leader", crashPointFault(true)},
	"crash-point-snapshot-recv": {"crash-point-snapshot-recv", crashPointSnapshotReceived},
	"wipe-raft-state":           {"wipe-raft-state", wipeRaftState},
	"join-crash-answered":       {"join-crash-answered", joinCrash(crashpoint.JoinAnswered)},
	"join-crash-wal-created":    {"join-crash-wal-created", joinCrash(crashpoint.JoinWALCreated)},
	"concurrent-join":           {"concurrent-join", concurrentJoin},
	"learner-catch-up":          {"learner-catch-up", learnerCatchUp},
	"demote-follower":           {"demote-follower", demotePromote(false)},
	"demote-leader":             {"demote-leader", demotePromote(true)},
}

// faultNames lists the catalogue in a stable order.
var faultNames = []string{
	"kill-leader", "kill-follower", "pause-leader", "pause-follower",
	"partition-leader", "partition-random", "one-way-from-leader", "one-way-to-leader",
	"drop-connections", "delay", "snapshot-catch-up", "member-replace",
	"crash-point", "crash-point-leader", "crash-point-snapshot-recv",
	"wipe-raft-state", "join-crash-answered", "join-crash-wal-created", "concurrent-join",
	"learner-catch-up", "demote-follower", "demote-leader",
}

// restart starts m again from its directory and waits until it serves.
func (f *faultRun) restart(m *manager, crash string) error {
	if err := m.start(nil, crash); err != nil {
		return err
	}
	if crash != "" {
		return nil // it may crash before it serves
	}
	return m.waitServing(45 * time.Second)
}

func role(leader bool) string {
	if leader {
		return "leader"
	}
	return "follower"
}

// leaderOrFollower returns the leader, or one of its followers.
func (f *faultRun) leaderOrFollower(leader bool) (*manager, error) {
	l, fo, err := f.leaderAndFollower()
	if leader {
		return l, err
	}
	return fo, err
}

func killFault(leader bool) func(*faultRun) error {
	return func(f *faultRun) error {
		m, err := f.leaderOrFollower(leader)
		if err != nil {
			return err
		}
		d := f.hold(300*time.Millisecond, 3*time.Second)
		f.note("SIGKILL %s (%s), restart after %v", m.name, role(leader), d.Round(time.Millisecond))
		if err := m.kill(); err != nil {
			return err
		}
		time.Sleep(d)
		return f.restart(m, "")
	}
}

func pauseFault(leader bool) func(*faultRun) error {
	return func(f *faultRun) error {
		m, err := f.leaderOrFollower(leader)
		if err != nil {
			return err
		}
		d := f.hold(time.Second, 4*time.Second)
		f.note("SIGSTOP %s (%s) for %v", m.name, role(leader), d.Round(time.Millisecond))
		if err := m.pause(); err != nil {
			return err
		}
		time.Sleep(d)
		return m.resume()
	}
}

func partitionLeader(f *faultRun) error {
	l, err := f.c.leader(10 * time.Second)
	if err != nil {
		return err
	}
	d := f.hold(time.Second, 4*time.Second)
	f.note("isolate leader %s for %v", l.name, d.Round(time.Millisecond))
	f.c.isolate(l)
	time.Sleep(d)
	f.c.net.HealAll()
	return nil
}

// partitionRandom splits the managers in two at random, both ways.
func partitionRandom(f *faultRun) error {
	ms := append([]*manager(nil), f.c.managers...)
	f.rng.Shuffle(len(ms), func(i, j int) { ms[i], ms[j] = ms[j], ms[i] })
	cut := 1 + f.rng.IntN(len(ms)/2) // the minority side
	side := map[*manager]bool{}
	var names []string
	for _, m := range ms[:cut] {
		side[m] = true
		names = append(names, m.name)
	}
	d := f.hold(time.Second, 4*time.Second)
	f.note("partition %v from the others for %v", names, d.Round(time.Millisecond))
	for _, a := range ms {
		for _, b := range ms {
			if side[a] != side[b] {
				f.c.net.SetLink(a.name, b.host, proxy.Fault{Blackhole: true})
			}
		}
	}
	time.Sleep(d)
	f.c.net.HealAll()
	return nil
}

// oneWay blackholes the links from the leader to the others (fromLeader)
// or from the others to the leader, not the reverse.
func oneWay(fromLeader bool) func(*faultRun) error {
	return func(f *faultRun) error {
		l, err := f.c.leader(10 * time.Second)
		if err != nil {
			return err
		}
		d := f.hold(time.Second, 4*time.Second)
		dir := "from"
		if !fromLeader {
			dir = "to"
		}
		f.note("blackhole every link %s leader %s, one way, for %v", dir, l.name, d.Round(time.Millisecond))
		for _, o := range f.c.others(l) {
			if fromLeader {
				f.c.net.SetLink(l.name, o.host, proxy.Fault{Blackhole: true})
			} else {
				f.c.net.SetLink(o.name, l.host, proxy.Fault{Blackhole: true})
			}
		}
		time.Sleep(d)
		f.c.net.HealAll()
		return nil
	}
}

func dropConnections(f *faultRun) error {
	p := 0.3 + 0.7*f.rng.Float64()
	d := f.hold(2*time.Second, 5*time.Second)
	var links []string
	for _, a := range f.c.managers {
		for _, b := range f.c.others(a) {
			if f.rng.IntN(2) == 0 {
				f.c.net.SetLink(a.name, b.host, proxy.Fault{Drop: p})
				links = append(links, a.name+"->"+b.name)
			}
		}
	}
	f.note("drop %.0f%% of connections on %v for %v", p*100, links, d.Round(time.Millisecond))
	time.Sleep(d)
	f.c.net.HealAll()
	return nil
}

func delayLinks(f *faultRun) error {
	delay := time.Duration(10+f.rng.IntN(90)) * time.Millisecond
	jitter := time.Duration(f.rng.IntN(60)) * time.Millisecond
	d := f.hold(2*time.Second, 5*time.Second)
	all := f.rng.IntN(2) == 0
	var links []string
	for _, a := range f.c.managers {
		for _, b := range f.c.others(a) {
			if all || f.rng.IntN(2) == 0 {
				f.c.net.SetLink(a.name, b.host, proxy.Fault{Delay: delay, Jitter: jitter})
				links = append(links, a.name+"->"+b.name)
			}
		}
	}
	f.note("delay %v with jitter %v on %v for %v", delay, jitter, links, d.Round(time.Millisecond))
	time.Sleep(d)
	f.c.net.HealAll()
	return nil
}

// cutOffUntilCompacted cuts follower m off until the leader has taken a
// snapshot past what m has and dropped the entries m would need, so that
// m must catch up by snapshot. It returns whether that point was reached.
//
// Its connections are cut and new ones refused, rather than blackholed: a
// blackhole delivers the held bytes when it lifts, and those hold the
// leader's appends of the very entries it has compacted since, which would
// spare m the snapshot.
func (f *faultRun) cutOffUntilCompacted(m *manager, limit time.Duration) (bool, error) {
	l, err := f.c.leader(10 * time.Second)
	if err != nil {
		return false, err
	}
	for _, o := range f.c.others(m) {
		f.c.net.SetLink(m.name, o.host, proxy.Fault{Drop: 1})
		f.c.net.SetLink(o.name, m.host, proxy.Fault{Drop: 1})
	}
	start := time.Now()
	lv, err := l.info(2 * time.Second)
	if err != nil {
		return false, nil
	}
	base := lv.commit
	for time.Since(start) < limit {
		time.Sleep(100 * time.Millisecond)
		v, err := l.info(time.Second)
		if err != nil {
			continue
		}
		// A snapshot is taken every snapshotInterval entries and keeps
		// keepEntries before it: two intervals on, one snapshot is at
		// least keepEntries past what m has, and m's next entry is gone.
		if v.commit > base+2*snapshotInterval {
			return true, nil
		}
	}
	return false, nil
}

func snapshotCatchUp(f *faultRun) error {
	_, m, err := f.leaderAndFollower()
	if err != nil {
		return err
	}
	before := m.logCount("restored snapshot")
	reached, err := f.cutOffUntilCompacted(m, 15*time.Second)
	if err != nil {
		return err
	}
	f.c.net.HealAll()
	f.note("isolate follower %s until the leader compacted its log past it (reached: %t)", m.name, reached)
	if !reached {
		return nil
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if m.logCount("restored snapshot") > before {
			f.note("%s caught up by snapshot", m.name)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.note("%s did not log a snapshot restore within 15s of healing", m.name)
	return nil
}

// crashPointFault arms a crash point in one manager (restarting it to do
// so), makes it the leader if asked, and waits for it to crash there; it
// then restarts it unarmed.
func crashPointFault(leader bool) func(*faultRun) error {
	return func(f *faultRun) error {
		points := []string{crashpoint.WALSaveBefore, crashpoint.WALSaveAfter, crashpoint.ApplyBefore, crashpoint.ApplyAfter,
			crashpoint.SnapshotSaveBefore, crashpoint.SnapshotSaveAfter, crashpoint.SnapshotFileWritten,
			crashpoint.SnapshotStateInstalled}
		point := points[f.rng.IntN(len(points))]
		n := 1 + f.rng.IntN(60)
		if strings.HasPrefix(point, "snapshot-") {
			n = 1 + f.rng.IntN(2)
		}
		_, m, err := f.leaderAndFollower()
		if err != nil {
			return err
		}
		armed := fmt.Sprintf("%s:%d", point, n)
		then := ""
		if leader {
			then = ", then make it leader"
		}
		f.note("arm %s in %s (restarting it)%s", armed, m.name, then)
		if err := m.kill(); err != nil {
			return err
		}
		if err := m.start(nil, armed); err != nil {
			return err
		}
		if leader {
			if err := m.waitServing(30 * time.Second); err == nil {
				rid, _ := m.identity()
				err := f.c.admin(m, 10*time.Second, func(ctx context.Context, cl *client.Client) error {
					_, err := cl.TransferLeadership(ctx, fmt.Sprintf("%x", rid))
					return err
				})
				f.c.logf("transfer leadership to %s: %v", m.name, err)
			}
		}
		return f.awaitCrash(m, armed, 8*time.Second)
	}
}

// crashPointSnapshotReceived arms a crash point around the saving of a
// received snapshot in a follower, then cuts it off until it must catch up
// by snapshot.
func crashPointSnapshotReceived(f *faultRun) error {
	points := []string{crashpoint.SnapshotStateReceived, crashpoint.SnapshotReceivedBefore,
		crashpoint.SnapshotStateInstalled, crashpoint.SnapshotReceivedAfter}
	point := points[f.rng.IntN(len(points))]
	_, m, err := f.leaderAndFollower()
	if err != nil {
		return err
	}
	f.note("arm %s in follower %s, cut it off until it needs a snapshot", point, m.name)
	if err := m.kill(); err != nil {
		return err
	}
	if err := m.start(nil, point); err != nil {
		return err
	}
	if err := m.waitServing(30 * time.Second); err != nil {
		return err
	}
	if _, err := f.cutOffUntilCompacted(m, 15*time.Second); err != nil {
		return err
	}
	f.c.net.HealAll()
	return f.awaitCrash(m, point, 10*time.Second)
}

// awaitCrash waits for m to crash at its armed point; if it does not
// within limit, it is killed. Either way it restarts unarmed.
func (f *faultRun) awaitCrash(m *manager, armed string, limit time.Duration) error {
	m.mu.Lock()
	crashed := m.crashed
	m.mu.Unlock()
	select {
	case <-crashed:
		f.note("%s crashed at %s", m.name, armed)
		time.Sleep(f.hold(100*time.Millisecond, time.Second))
	case <-time.After(limit):
		f.note("%s did not reach %s within %v; killed instead", m.name, armed, limit)
		if err := m.kill(); err != nil {
			return err
		}
	}
	return f.restart(m, "")
}
