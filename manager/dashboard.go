package manager

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/dashboard"
	"github.com/shoal-project/shoal/health"
)

// readMethods are the Control methods counted as reads on the dashboard.
var readMethods = map[string]bool{"GetObject": true, "ListObjects": true}

// dashboardSource makes the dashboard's frames from the node's status, the
// views the probe gathered last, and the metrics. A frame holds no secret:
// no token, key or object spec.
type dashboardSource struct {
	m     *Manager
	views *atomic.Pointer[api.GetClusterHealthResponse]
}

func (s *dashboardSource) Frame(context.Context) dashboard.Frame {
	m := s.m
	now := time.Now()
	f := dashboard.Frame{At: now, StoreVersion: m.store.Version(), Objects: map[string]int{}}
	st, err := m.node.Status()
	if err != nil {
		f.Doctor = dashboard.Doctor{Status: string(health.Unavailable), Summary: "unavailable: this manager is not running: " + err.Error()}
		return f
	}
	f.Self = dashboard.Self{NodeID: st.NodeID, RaftID: strconv.FormatUint(st.ID, 16), Addr: m.addr}
	byID := map[uint64]*api.ManagerView{}
	gathered := s.views.Load()
	for _, v := range gathered.GetViews() {
		byID[v.GetRaftId()] = v
	}
	self := m.localInfo(st)
	byID[st.ID] = &api.ManagerView{RaftId: st.ID, Info: self}
	var leaderCommit uint64
	if v := byID[st.Leader]; v.GetInfo() != nil {
		leaderCommit = v.GetInfo().GetCommitIndex()
	}
	for _, mem := range toMembers(st) {
		dm := dashboard.Member{NodeID: mem.GetNodeId(), RaftID: strconv.FormatUint(mem.GetRaftId(), 16), Addr: mem.GetAddr(),
			Suffrage: mem.GetSuffrage(), Leader: mem.GetRaftId() == st.Leader, Self: mem.GetRaftId() == st.ID,
			Reachable: mem.GetReachable(), LastContactMs: mem.GetLastContactMs(), Lag: mem.GetLag()}
		switch v := byID[mem.GetRaftId()]; {
		case v == nil:
			dm.Error = "not asked yet"
		case v.GetError() != "":
			dm.Error = v.GetError()
		default:
			// A follower sends nothing to the other followers; that one
			// answered says more.
			dm.Reachable = true
			info := v.GetInfo()
			dm.State, dm.Term, dm.Commit, dm.Applied = info.GetRaftState(), info.GetTerm(), info.GetCommitIndex(), info.GetAppliedIndex()
			if !st.IsLeader && leaderCommit > 0 {
				dm.Lag = leaderCommit - min(dm.Applied, leaderCommit)
			}
		}
		f.Members = append(f.Members, dm)
	}
	if gathered != nil {
		// This manager's own view is fresher than the probe's.
		fresh := &api.GetClusterHealthResponse{AnsweredBy: st.ID, Members: toMembers(st)}
		for _, v := range gathered.GetViews() {
			if v.GetRaftId() == st.ID {
				v = &api.ManagerView{RaftId: st.ID, NodeId: st.NodeID, Addr: v.GetAddr(), Info: self}
			}
			fresh.Views = append(fresh.Views, v)
		}
		d := health.Diagnose(health.FromAPI(fresh, now), health.DefaultOptions())
		f.Doctor = dashboard.Doctor{Status: string(d.Status), Summary: d.Summary, Problems: d.Problems,
			Warnings: d.Warnings, Recovery: d.Recovery}
	} else {
		f.Doctor = dashboard.Doctor{Status: "unknown", Summary: "asking the other managers…"}
	}
	for _, l := range m.ins.lastLeaders() {
		lc := dashboard.LeaderChange{At: l.At, Term: l.Term}
		if mem, ok := m.node.Cluster().Get(l.Leader); ok {
			lc.Leader = mem.NodeID
		} else if l.Leader != 0 {
			lc.Leader = strconv.FormatUint(l.Leader, 16)
		}
		f.Leaders = append(f.Leaders, lc)
	}
	if byKind, ok := m.ins.objects.snapshot(); ok {
		f.Objects = byKind
	}
	for _, sn := range m.ins.lastSnapshots() {
		f.Snapshots = append(f.Snapshots, dashboard.Snapshot{At: sn.At, Bytes: sn.Bytes,
			DurationMs: float64(sn.Duration.Microseconds()) / 1000})
	}
	f.Counters = m.counters(st.Applied)
	return f
}

// counters reads the cumulative counts of the charts from the metrics.
func (m *Manager) counters(applied uint64) dashboard.Counters {
	c := dashboard.Counters{Applied: applied}
	c.ProposalFailures = metricOf(m.ins.proposalsFailed).GetCounter().GetValue()
	h := metricOf(m.ins.applySeconds).GetHistogram()
	c.ApplySeconds, c.Applies = h.GetSampleSum(), float64(h.GetSampleCount())
	if fams, err := m.ins.reg.Gather(); err == nil {
		for _, fam := range fams {
			if fam.GetName() != "grpc_server_handled_total" {
				continue
			}
			for _, mt := range fam.GetMetric() {
				if labelOf(mt, "grpc_service") == "shoal.v1.Control" && readMethods[labelOf(mt, "grpc_method")] {
					c.Reads += mt.GetCounter().GetValue()
				}
			}
		}
	}
	if fams, err := walFsyncGatherer.Gather(); err == nil {
		for _, fam := range fams {
			if len(fam.GetMetric()) > 0 {
				h := fam.GetMetric()[0].GetHistogram()
				c.FsyncSeconds, c.Fsyncs = h.GetSampleSum(), float64(h.GetSampleCount())
			}
		}
	}
	return c
}

func metricOf(c prometheus.Metric) *dto.Metric {
	var out dto.Metric
	_ = c.Write(&out)
	return &out
}

func labelOf(mt *dto.Metric, name string) string {
	for _, l := range mt.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
