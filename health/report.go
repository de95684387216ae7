package health

import (
	"time"

	"github.com/shoal-project/shoal/api"
)

// Report is the cluster as one manager gathered it: its own list of
// members, and each member's own view of the cluster.
type Report struct {
	// GatheredBy is the Raft ID of the manager that gathered the views.
	GatheredBy uint64 `json:"gathered_by"`
	// At is when the views were gathered.
	At time.Time `json:"at"`
	// Managers has one entry per member of the gatherer's member list,
	// the gatherer's first.
	Managers []View `json:"managers"`
}

// View is one member as it answered, or why it did not.
type View struct {
	RaftID uint64 `json:"raft_id"`
	NodeID string `json:"node_id"`
	Addr   string `json:"addr"`
	// Learner is set on a member that does not vote, as the gatherer
	// knows it.
	Learner bool `json:"learner"`
	// Reachable and LastContact are the gatherer's: whether its last
	// Raft message to the member got through, and how long ago it last
	// heard from it (negative: never).
	Reachable   bool          `json:"reachable"`
	LastContact time.Duration `json:"last_contact_ns"`
	// Lag is how many entries the member is behind the leader's commit
	// index, when the gatherer leads (0 otherwise).
	Lag uint64 `json:"lag"`

	// Error says why the member could not be asked; the fields below are
	// then unknown.
	Error string `json:"error,omitempty"`
	// Locked is set on a manager that waits for its unlock key.
	Locked bool `json:"locked,omitempty"`

	State      string    `json:"state,omitempty"` // leader, follower, candidate, pre-candidate
	Term       uint64    `json:"term,omitempty"`
	Leader     uint64    `json:"leader,omitempty"` // the Raft ID it believes leads; 0: none
	Commit     uint64    `json:"commit,omitempty"`
	Applied    uint64    `json:"applied,omitempty"`
	Members    int       `json:"members,omitempty"` // in its own member list
	Reaches    int       `json:"reaches,omitempty"` // of those, how many it reaches, itself included
	CertExpiry time.Time `json:"certificate_expiry,omitzero"`
	// RoundTrip is how long the member took to answer the gatherer, and
	// ClockOffset how far its clock is ahead of the gatherer's.
	RoundTrip   time.Duration `json:"round_trip_ns,omitempty"`
	ClockOffset time.Duration `json:"clock_offset_ns,omitempty"`
	// Fsync is the mean duration of its WAL's fsyncs over the last minute
	// (0: none yet).
	Fsync time.Duration `json:"wal_fsync_ns,omitempty"`
}

// Answered reports whether the member gave its view.
func (v View) Answered() bool { return v.Error == "" && !v.Locked }

// Name is how messages name the member: its node ID, or its Raft ID in hex
// when the node ID is unknown.
func (v View) Name() string {
	if v.NodeID != "" {
		return v.NodeID
	}
	return hexID(v.RaftID)
}

// FromAPI turns a GetClusterHealth answer into a Report gathered at at.
func FromAPI(resp *api.GetClusterHealthResponse, at time.Time) Report {
	r := Report{GatheredBy: resp.GetAnsweredBy(), At: at}
	byID := map[uint64]*api.Member{}
	for _, m := range resp.GetMembers() {
		byID[m.GetRaftId()] = m
	}
	for _, mv := range resp.GetViews() {
		v := View{RaftID: mv.GetRaftId(), NodeID: mv.GetNodeId(), Addr: mv.GetAddr(), Error: mv.GetError(),
			RoundTrip:   time.Duration(mv.GetRoundTripUs()) * time.Microsecond,
			ClockOffset: time.Duration(mv.GetClockOffsetMs()) * time.Millisecond, LastContact: -1}
		if m, ok := byID[v.RaftID]; ok {
			v.Learner = m.GetSuffrage() == "learner"
			v.Reachable = m.GetReachable()
			v.Lag = m.GetLag()
			if ms := m.GetLastContactMs(); ms >= 0 {
				v.LastContact = time.Duration(ms) * time.Millisecond
			}
		}
		if info := mv.GetInfo(); info != nil && v.Error == "" {
			v.State = info.GetRaftState()
			v.Term = info.GetTerm()
			v.Leader = info.GetLeaderRaftId()
			v.Commit = info.GetCommitIndex()
			v.Applied = info.GetAppliedIndex()
			v.Members = int(info.GetMembers())
			v.Reaches = int(info.GetReachableMembers())
			v.Fsync = time.Duration(info.GetWalFsyncUs()) * time.Microsecond
			if exp := info.GetCertificateExpiryUnix(); exp != 0 {
				v.CertExpiry = time.Unix(exp, 0)
			}
		}
		r.Managers = append(r.Managers, v)
	}
	return r
}
