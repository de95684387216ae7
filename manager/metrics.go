package manager

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// collector reports the manager's state at each scrape: nothing is
// counted on the write path.
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
)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTerm, descCommit, descApplied, descLeader, descMembers, descReachable, descVoters, descReachVote, descVersion, descCertExp} {
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
		leader := 0.0
		if st.IsLeader {
			leader = 1
		}
		gauge(descLeader, leader)
		gauge(descMembers, float64(len(st.Members)))
		reachable, voters, reachableVoters := 0, 0, 0
		for _, mem := range st.Members {
			if mem.Reachable {
				reachable++
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
}

// serveMetrics serves Prometheus metrics on /metrics and the runtime
// profiles on /debug/pprof/ on lis, bound at start with the other
// listeners, until the returned function is called. Both are opt-in: they
// are plain HTTP, for a private address.
func (m *Manager) serveMetrics(lis net.Listener) func() {
	reg := prometheus.NewRegistry()
	reg.MustRegister((*collector)(m), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics server stopped", "err", err)
		}
	}()
	m.log.Info("serving metrics and profiles", "addr", lis.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
	}
}
