package health

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Status is the verdict of a diagnosis.
type Status string

const (
	// Healthy: a leader that every manager agrees on, every member
	// answers and keeps up.
	Healthy Status = "healthy"
	// Degraded: the cluster takes writes, but a member is down, locked,
	// behind, cut off, or its certificate expired.
	Degraded Status = "degraded"
	// Unavailable: no leader, or no quorum: writes and linearizable reads
	// fail.
	Unavailable Status = "unavailable"
)

// Options are the thresholds of a diagnosis.
type Options struct {
	// MaxLag is the most entries a member may be behind the leader's
	// commit index before it counts as behind. Default 1000.
	MaxLag uint64
	// CertificateWarning is how long before a certificate expires it is
	// worth a warning (certificates renew themselves well before).
	// Default 7 days.
	CertificateWarning time.Duration
	// MaxClockOffset is the largest clock difference between managers
	// before it is worth a warning: certificates are checked against the
	// clocks. Default 1s.
	MaxClockOffset time.Duration
	// SlowFsync is the mean WAL fsync beyond which a member's disk is worth
	// a warning: every write waits for fsyncs, and a member that takes
	// long to persist a heartbeat's entries delays elections. Default 50ms
	// (a disk meant for this should take a few milliseconds at most).
	SlowFsync time.Duration
}

// DefaultOptions returns the defaults documented on Options.
func DefaultOptions() Options {
	return Options{MaxLag: 1000, CertificateWarning: 7 * 24 * time.Hour, MaxClockOffset: time.Second, SlowFsync: 50 * time.Millisecond}
}

// Diagnosis is what a Report means.
type Diagnosis struct {
	Status Status `json:"status"`
	// Summary is the diagnosis in one line.
	Summary string `json:"summary"`
	// Problems are what makes the cluster degraded or unavailable, each a
	// sentence; Warnings are what is not wrong yet.
	Problems []string `json:"problems"`
	Warnings []string `json:"warnings"`
	// Recovery says what to do, when something is wrong.
	Recovery string `json:"recovery,omitempty"`

	// Leader is the member every answering manager believes leads; 0
	// when there is none or they disagree.
	Leader       uint64 `json:"leader"`
	LeaderNodeID string `json:"leader_node_id,omitempty"`
	Term         uint64 `json:"term"`
	// Voters is how many members vote, VotersUp how many of them answered,
	// Quorum how many a leader needs.
	Voters   int `json:"voters"`
	VotersUp int `json:"voters_up"`
	Quorum   int `json:"quorum"`
	// ForceNewCluster is, without a quorum, the answering manager with the
	// most up-to-date log: the safest to restart with --force-new-cluster.
	ForceNewCluster *View `json:"force_new_cluster,omitempty"`
}

// Diagnose reads r.
func Diagnose(r Report, opts Options) Diagnosis {
	d := Diagnosis{Problems: []string{}, Warnings: []string{}}
	var up, down []View
	for _, v := range r.Managers {
		switch {
		case v.Locked:
			d.Problems = append(d.Problems, fmt.Sprintf("%s is locked: it waits for its unlock key ('shoal unlock' on its host)", v.Name()))
			down = append(down, v)
		case v.Error != "":
			d.Problems = append(d.Problems, fmt.Sprintf("%s (%s) does not answer: %s", v.Name(), v.Addr, v.Error))
			down = append(down, v)
		default:
			up = append(up, v)
		}
		if !v.Learner {
			d.Voters++
			if v.Answered() {
				d.VotersUp++
			}
		}
	}
	d.Quorum = d.Voters/2 + 1
	for _, v := range up {
		d.Term = max(d.Term, v.Term)
	}

	switch {
	case len(r.Managers) == 0:
		d.Status = Unavailable
		d.Summary = "unavailable: no manager answered"
		d.Recovery = "start a manager, or point the command at a running one"
		return d
	case len(up) == 0 && slices.ContainsFunc(down, func(v View) bool { return v.Locked }):
		d.Status = Unavailable
		d.Summary = "unavailable: " + d.Problems[slices.IndexFunc(down, func(v View) bool { return v.Locked })]
		d.Recovery = "give each locked manager its unlock key with 'shoal unlock' on its host, then run doctor again"
		return d
	case d.VotersUp < d.Quorum:
		d.noQuorum(up, down)
		return d
	}
	if !d.findLeader(r.Managers, up) {
		return d
	}
	d.checkMembers(r, up, opts)
	if len(d.Problems) > 0 {
		d.Status = Degraded
		d.Summary = fmt.Sprintf("degraded: leader %s (term %d), %d of %d voters up; %s",
			d.LeaderNodeID, d.Term, d.VotersUp, d.Voters, d.Problems[0])
		d.Recovery = recoveryForDown(down)
		return d
	}
	d.Status = Healthy
	d.Summary = fmt.Sprintf("healthy: leader %s (term %d), %d of %d voters up, %s",
		d.LeaderNodeID, d.Term, d.VotersUp, d.Voters, plural(len(r.Managers), "manager"))
	return d
}

// noQuorum explains a cluster whose answering voters are fewer than a
// quorum, and names the manager to recover from.
func (d *Diagnosis) noQuorum(up, down []View) {
	d.Status = Unavailable
	d.Summary = fmt.Sprintf("unavailable: no quorum: %d of %d voters answer and a leader needs %d, so none can be elected",
		d.VotersUp, d.Voters, d.Quorum)
	var missing []string
	for _, v := range down {
		if !v.Learner {
			missing = append(missing, v.Name())
		}
	}
	best := safestToForce(up)
	need := d.Quorum - d.VotersUp
	d.Recovery = fmt.Sprintf("bring back %s of %s; ", plural(need, "voter"), strings.Join(missing, ", "))
	if best == nil {
		d.Recovery += "no manager answers, so none can be chosen to recover from"
		return
	}
	d.ForceNewCluster = best
	d.Recovery += fmt.Sprintf("if they are lost for good, stop %s and restart it with 'shoal manager --force-new-cluster' on its state directory "+
		"(its log is the most up to date: commit index %d, term %d), then join new managers to it", best.Name(), best.Commit, best.Term)
	if len(up) > 1 {
		d.Recovery += " and remove the others' state directories before they join again"
	}
}

// safestToForce is the answering manager whose log holds the most: the
// highest commit index, then applied index, then term; a voter on a tie.
func safestToForce(up []View) *View {
	if len(up) == 0 {
		return nil
	}
	best := slices.MaxFunc(up, func(a, b View) int {
		return cmp.Or(cmp.Compare(a.Commit, b.Commit), cmp.Compare(a.Applied, b.Applied),
			cmp.Compare(a.Term, b.Term), cmp.Compare(boolInt(!a.Learner), boolInt(!b.Learner)),
			cmp.Compare(b.RaftID, a.RaftID))
	})
	return &best
}

// findLeader sets the leader that the answering managers agree on and that
// says it leads; without one it explains why, marks d unavailable and
// returns false.
func (d *Diagnosis) findLeader(all, up []View) bool {
	seen := map[uint64][]string{}
	var none []string
	for _, v := range up {
		if v.Leader == 0 {
			none = append(none, v.Name())
			continue
		}
		seen[v.Leader] = append(seen[v.Leader], v.Name())
	}
	byID := map[uint64]View{}
	for _, v := range all {
		byID[v.RaftID] = v
	}
	d.Status = Unavailable
	d.Recovery = "wait a few election timeouts; if it lasts, check that every manager reaches the others at their advertised addresses"
	switch len(seen) {
	case 0:
		d.Summary = fmt.Sprintf("unavailable: no leader: %d of %d voters answer, enough for a quorum, but none leads: an election is under way (term %d)",
			d.VotersUp, d.Voters, d.Term)
		d.Problems = append(d.Problems, cutOff(up, d.Quorum)...)
		return false
	case 1:
	default:
		var parts []string
		for _, id := range slices.Sorted(maps.Keys(seen)) {
			parts = append(parts, fmt.Sprintf("%s see %s", strings.Join(seen[id], ", "), nameOf(byID, id)))
		}
		d.Summary = "unavailable: the managers do not agree on a leader (" + strings.Join(parts, "; ") + "): a partition, or an election under way"
		d.Problems = append(d.Problems, cutOff(up, d.Quorum)...)
		return false
	}
	var leader uint64
	for id := range seen {
		leader = id
	}
	lv, ok := byID[leader]
	if !ok || !lv.Answered() || lv.State != "leader" {
		d.Summary = fmt.Sprintf("unavailable: the leader %s that the others last knew does not lead any more, and no new leader is elected yet", nameOf(byID, leader))
		return false
	}
	d.Leader, d.LeaderNodeID, d.Term = leader, lv.Name(), lv.Term
	d.Recovery = ""
	for _, n := range none {
		d.Problems = append(d.Problems, fmt.Sprintf("%s does not know the leader", n))
	}
	return true
}

// cutOff names the answering candidates that reach fewer managers than a
// quorum: the likely cause of an election that does not end. Only a
// candidate's count tells: it asks every voter for its vote, while a
// follower sends nothing to the other followers.
func cutOff(up []View, quorum int) []string {
	var out []string
	for _, v := range up {
		candidate := v.State == "candidate" || v.State == "pre-candidate"
		if !v.Learner && candidate && v.Members > 0 && v.Reaches < quorum {
			out = append(out, fmt.Sprintf("%s reaches only %d of %d managers, itself included", v.Name(), v.Reaches, v.Members))
		}
	}
	return out
}

// checkMembers adds what is wrong or worth a warning about each answering
// member of a cluster that has a leader.
func (d *Diagnosis) checkMembers(r Report, up []View, opts Options) {
	var leader View
	for _, v := range up {
		if v.RaftID == d.Leader {
			leader = v
		}
	}
	for _, v := range up {
		if behind := leader.Commit - min(v.Applied, leader.Commit); behind > opts.MaxLag {
			d.Problems = append(d.Problems, fmt.Sprintf("%s is %d entries behind the leader", v.Name(), behind))
		}
		if v.RaftID == d.Leader && v.Members > 0 && v.Reaches < v.Members {
			// Only the leader's count tells: it alone sends to every member.
			d.Warnings = append(d.Warnings, fmt.Sprintf("the leader %s reaches %d of %d managers", v.Name(), v.Reaches, v.Members))
		}
		switch left := v.CertExpiry.Sub(r.At); {
		case v.CertExpiry.IsZero():
		case left <= 0:
			d.Problems = append(d.Problems, fmt.Sprintf("%s's certificate expired at %s; its peers refuse it", v.Name(), v.CertExpiry.UTC().Format(time.RFC3339)))
		case left < opts.CertificateWarning:
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s's certificate expires in %s and has not been renewed", v.Name(), left.Round(time.Minute)))
		}
		if off := v.ClockOffset; off > opts.MaxClockOffset || off < -opts.MaxClockOffset {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s's clock is %s off this manager's", v.Name(), off.Round(time.Millisecond)))
		}
		if opts.SlowFsync > 0 && v.Fsync > opts.SlowFsync {
			d.Warnings = append(d.Warnings, fmt.Sprintf("%s's disk is slow: its WAL fsyncs take %s on average over the last minute, more than %s; writes wait for them",
				v.Name(), v.Fsync.Round(100*time.Microsecond), opts.SlowFsync))
		}
	}
}

func recoveryForDown(down []View) string {
	if len(down) == 0 {
		return "see the problems above"
	}
	var names []string
	for _, v := range down {
		names = append(names, v.Name())
	}
	return "restart " + strings.Join(names, ", ") + ", or replace it: 'shoal node rm ID' and join a new manager"
}

func nameOf(byID map[uint64]View, id uint64) string {
	if v, ok := byID[id]; ok {
		return v.Name()
	}
	return hexID(id)
}

func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
