package health

import (
	"testing"
	"time"

	"github.com/shoal-project/shoal/api"
)

func TestFromAPI(t *testing.T) {
	resp := &api.GetClusterHealthResponse{
		AnsweredBy: 1,
		Members: []*api.Member{
			{RaftId: 1, NodeId: "m1", Suffrage: "voter", Reachable: true, LastContactMs: 0},
			{RaftId: 2, NodeId: "m2", Suffrage: "learner", Reachable: true, LastContactMs: 40, Lag: 7},
			{RaftId: 3, NodeId: "m3", Suffrage: "voter", LastContactMs: -1},
		},
		Views: []*api.ManagerView{
			{RaftId: 1, NodeId: "m1", Addr: "a1", Info: &api.GetClusterInfoResponse{RaftState: "leader", Term: 4,
				LeaderRaftId: 1, CommitIndex: 20, AppliedIndex: 19, Members: 3, ReachableMembers: 2, CertificateExpiryUnix: at.Unix(), WalFsyncUs: 2500}},
			{RaftId: 2, NodeId: "m2", Addr: "a2", RoundTripUs: 1500, ClockOffsetMs: -20,
				Info: &api.GetClusterInfoResponse{RaftState: "follower", Term: 4, LeaderRaftId: 1, CommitIndex: 13}},
			{RaftId: 3, NodeId: "m3", Addr: "a3", Error: "connection refused (Unavailable)"},
		},
	}
	r := FromAPI(resp, at)
	if r.GatheredBy != 1 || !r.At.Equal(at) || len(r.Managers) != 3 {
		t.Fatalf("report %+v", r)
	}
	m1, m2, m3 := r.Managers[0], r.Managers[1], r.Managers[2]
	if m1.State != "leader" || m1.Term != 4 || m1.Leader != 1 || m1.Commit != 20 || m1.Applied != 19 ||
		m1.Members != 3 || m1.Reaches != 2 || !m1.CertExpiry.Equal(at) || m1.Learner || m1.LastContact != 0 || m1.Fsync != 2500*time.Microsecond {
		t.Errorf("m1: %+v", m1)
	}
	if !m2.Learner || m2.Lag != 7 || m2.RoundTrip != 1500*time.Microsecond || m2.ClockOffset != -20*time.Millisecond ||
		m2.LastContact != 40*time.Millisecond || !m2.CertExpiry.IsZero() {
		t.Errorf("m2: %+v", m2)
	}
	if m3.Answered() || m3.Error == "" || m3.LastContact >= 0 || m3.State != "" {
		t.Errorf("m3: %+v", m3)
	}
}
