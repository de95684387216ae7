package health

import (
	"strings"
	"testing"
	"time"
)

var at = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// member is a voter that answered, following leader 1 in term 3, caught
// up at index 100.
func member(id uint64, name string) View {
	state := "follower"
	if id == 1 {
		state = "leader"
	}
	return View{RaftID: id, NodeID: name, Addr: "127.0.0.1:237" + string(rune('0'+id)), Reachable: true,
		State: state, Term: 3, Leader: 1, Commit: 100, Applied: 100, Members: 3, Reaches: 3,
		CertExpiry: at.Add(60 * 24 * time.Hour)}
}

func down(v View) View {
	return View{RaftID: v.RaftID, NodeID: v.NodeID, Addr: v.Addr, Learner: v.Learner, Error: "connection refused"}
}

func with(v View, f func(*View)) View { f(&v); return v }

func TestDiagnose(t *testing.T) {
	m1, m2, m3 := member(1, "m1"), member(2, "m2"), member(3, "m3")
	noLeader := func(v *View) { v.Leader, v.State = 0, "candidate" }
	tests := []struct {
		name     string
		managers []View
		status   Status
		summary  string   // a part of the summary
		problems []string // a part of each problem, in order
		warnings []string
		force    string // the node ID named for --force-new-cluster
		recovery string
	}{
		{name: "healthy", managers: []View{m1, m2, m3}, status: Healthy,
			summary: "healthy: leader m1 (term 3), 3 of 3 voters up, 3 managers"},
		{name: "one voter down", managers: []View{m1, m2, down(m3)}, status: Degraded,
			summary: "2 of 3 voters up", problems: []string{"m3 (127.0.0.1:2373) does not answer: connection refused"},
			recovery: "restart m3"},
		{name: "no quorum names the most up-to-date survivor", status: Unavailable,
			managers: []View{with(m2, func(v *View) { noLeader(v); v.Commit, v.Applied = 90, 90 }),
				down(m1), with(m3, func(v *View) { noLeader(v); v.Commit, v.Applied = 120, 118 }),
				down(member(4, "m4")), down(member(5, "m5"))},
			summary: "no quorum: 2 of 5 voters answer and a leader needs 3", force: "m3",
			problems: []string{"m1", "m4", "m5"}, recovery: "bring back 1 voter of m1, m4, m5; if they are lost for good, stop m3"},
		{name: "the survivor of three", status: Unavailable,
			managers: []View{with(m2, noLeader), down(m1), down(m3)},
			summary:  "no quorum: 1 of 3 voters answer and a leader needs 2", force: "m2",
			problems: []string{"m1", "m3"}, recovery: "bring back 1 voter of m1, m3; if they are lost for good, stop m2 and restart it with 'shoal manager --force-new-cluster'"},
		{name: "a learner does not count toward the quorum", status: Unavailable,
			managers: []View{with(m2, noLeader), down(m1), with(m3, func(v *View) { noLeader(v); v.Learner = true; v.Commit = 150 })},
			summary:  "no quorum: 1 of 2 voters answer", force: "m3", problems: []string{"m1 (127.0.0.1:2371) does not answer"}},
		{name: "election under way", status: Unavailable,
			managers: []View{with(m1, noLeader), with(m2, func(v *View) { noLeader(v); v.State = "follower"; v.Reaches = 1 }),
				with(m3, func(v *View) { noLeader(v); v.Reaches = 1 })},
			summary: "no leader: 3 of 3 voters answer", problems: []string{"m3 reaches only 1 of 3 managers"}},
		{name: "disagreement", status: Unavailable,
			managers: []View{m1, with(m2, func(v *View) { v.Leader = 3 }), with(m3, func(v *View) { v.State = "leader"; v.Leader = 3 })},
			summary:  "do not agree on a leader (m1 see m1; m2, m3 see m3)"},
		{name: "the known leader is gone", status: Unavailable,
			managers: []View{down(m1), m2, m3}, summary: "the leader m1 that the others last knew does not lead any more",
			problems: []string{"m1 (127.0.0.1:2371) does not answer"}},
		{name: "a member behind", status: Degraded,
			managers: []View{with(m1, func(v *View) { v.Commit, v.Applied = 5000, 5000 }), m2, m3},
			problems: []string{"m2 is 4900 entries behind", "m3 is 4900 entries behind"}},
		{name: "locked", status: Degraded, managers: []View{m1, m2, {RaftID: 3, NodeID: "m3", Locked: true}},
			problems: []string{"m3 is locked"}},
		{name: "expired certificate", status: Degraded,
			managers: []View{m1, with(m2, func(v *View) { v.CertExpiry = at.Add(-time.Hour) }), m3},
			problems: []string{"m2's certificate expired at 2026-01-02T02:04:05Z"}},
		{name: "warnings keep it healthy", status: Healthy,
			managers: []View{with(m1, func(v *View) { v.Reaches = 2 }), with(m2, func(v *View) { v.CertExpiry = at.Add(48 * time.Hour); v.Reaches = 1 }),
				with(m3, func(v *View) { v.ClockOffset = 3 * time.Second })},
			warnings: []string{"the leader m1 reaches 2 of 3", "m2's certificate expires in 48h0m0s", "m3's clock is 3s off"}},
		{name: "a slow disk is worth a warning", status: Healthy,
			managers: []View{with(m1, func(v *View) { v.Fsync = 3 * time.Millisecond }), m2, with(m3, func(v *View) { v.Fsync = 120 * time.Millisecond })},
			warnings: []string{"m3's disk is slow: its WAL fsyncs take 120ms on average over the last minute, more than 50ms"}},
		{name: "a follower that lost the leader", status: Degraded,
			managers: []View{m1, m2, with(m3, noLeader)}, problems: []string{"m3 does not know the leader"}},
		{name: "only a locked manager", status: Unavailable, managers: []View{{NodeID: "this manager", Locked: true}},
			summary: "unavailable: this manager is locked", problems: []string{"this manager is locked"}, recovery: "shoal unlock"},
		{name: "nothing answered", status: Unavailable, summary: "no manager answered"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Diagnose(Report{GatheredBy: 2, At: at, Managers: tt.managers}, DefaultOptions())
			t.Logf("%+v", d)
			if d.Status != tt.status {
				t.Errorf("status %s, want %s", d.Status, tt.status)
			}
			if !strings.Contains(d.Summary, tt.summary) {
				t.Errorf("summary %q lacks %q", d.Summary, tt.summary)
			}
			if !strings.Contains(d.Recovery, tt.recovery) {
				t.Errorf("recovery %q lacks %q", d.Recovery, tt.recovery)
			}
			containsAll(t, "problems", d.Problems, tt.problems)
			containsAll(t, "warnings", d.Warnings, tt.warnings)
			switch {
			case tt.force == "" && d.ForceNewCluster != nil:
				t.Errorf("names %s for --force-new-cluster, want none", d.ForceNewCluster.Name())
			case tt.force != "" && (d.ForceNewCluster == nil || d.ForceNewCluster.Name() != tt.force):
				t.Errorf("names %v for --force-new-cluster, want %s", d.ForceNewCluster, tt.force)
			}
			if (d.Status == Healthy && len(d.Problems) > 0) || (d.Status == Degraded && len(d.Problems) == 0) {
				t.Errorf("status %s with problems %q", d.Status, d.Problems)
			}
			if (d.Status == Healthy) != (d.Recovery == "") {
				t.Errorf("status %s with recovery %q", d.Status, d.Recovery)
			}
		})
	}
}

func containsAll(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s %q, want %d", what, got, len(want))
		return
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("%s[%d] %q lacks %q", what, i, got[i], want[i])
		}
	}
}
