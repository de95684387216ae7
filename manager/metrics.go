package manager

import "github.com/prometheus/client_golang/prometheus"

// collector reports, at each scrape, what the node and the store know:
// Raft's position, the members, the objects. What happens (proposals,
// applies, snapshots) is counted where it happens (see instruments).
type collector Manager

var (
	descTerm      = prometheus.NewDesc("shoal_raft_term", "The Raft term this manager knows.", nil, nil)
	descCommit    = prometheus.NewDesc("shoal_raft_commit_index", "The highest log index known committed.", nil, nil)
	descApplied   = prometheus.NewDesc("shoal_raft_applied_index", "The highest log index applied to the store.", nil, nil)
	descLeader    = prometheus.NewDesc("shoal_raft_is_leader", "1 when this manager leads and has caught up.", nil, nil)
	descMembers   = prometheus.NewDesc("shoal_raft_members", "Managers in the cluster, voters and learners.", nil, nil)
	descReachable = prometheus.NewDesc("shoal_raft_reachable_members", "Managers this one reaches, itself included.", nil, nil)
	descVoters    = prometheus.NewDesc("shoal_raft_voters", "Managers that vote; a quorum is a majority of them.", nil, nil)
	descReachVote = prometheus.NewDesc("shoal_raft_reachable_voters", "Voters this manager reaches, itself included.", nil, nil)
	descVersion   = prometheus.NewDesc("shoal_store_version", "The store's version: the Raft index of its last change.", nil, nil)
	descCertExp   = prometheus.NewDesc("shoal_certificate_expiry_timestamp_seconds", "When this manager's certificate expires.", nil, nil)
	descHasLeader = prometheus.NewDesc("shoal_raft_has_leader", "1 when this manager knows a leader.", nil, nil)
	descPeerReach = prometheus.NewDesc("shoal_peer_reachable", "1 when this manager's last Raft message to the peer got through.", []string{"peer"}, nil)
	descObjects   = prometheus.NewDesc("shoal_store_objects", "Objects in the store, per kind.", []string{"kind"}, nil)
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTerm, descCommit, descApplied, descLeader, descMembers, descReachable,
		descVoters, descReachVote, descVersion, descCertExp, descHasLeader, descPeerReach, descObjects} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	m := (*Manager)(c)
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	if st, err := m.node.Status(); err == nil {
		gauge(descTerm, float64(st.Term))
		gauge(descCommit, float64(st.Commit))
		gauge(descApplied, float64(st.Applied))
		gauge(descLeader, boolGauge(st.IsLeader))
		gauge(descHasLeader, boolGauge(st.Leader != 0))
		gauge(descMembers, float64(len(st.Members)))
		reachable, voters, reachableVoters := 0, 0, 0
		for _, mem := range st.Members {
			if mem.Reachable {
				reachable++
			}
			if mem.RaftID != st.ID {
				ch <- prometheus.MustNewConstMetric(descPeerReach, prometheus.GaugeValue, boolGauge(mem.Reachable), mem.NodeID)
			}
			if !mem.Learner {
				voters++
				if mem.Reachable {
					reachableVoters++
				}
			}
		}
		gauge(descReachable, float64(reachable))
		gauge(descVoters, float64(voters))
		gauge(descReachVote, float64(reachableVoters))
	}
	gauge(descVersion, float64(m.store.Version()))
	gauge(descCertExp, float64(m.sec.holder.Leaf().NotAfter.Unix()))
	if byKind, ok := m.ins.objects.snapshot(); ok {
		for kind, n := range byKind {
			ch <- prometheus.MustNewConstMetric(descObjects, prometheus.GaugeValue, float64(n), kind)
		}
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
