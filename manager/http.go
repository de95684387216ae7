package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/dashboard"
)

// serveHTTP serves, on lis, bound at start with the other listeners, the
// dashboard at /, Prometheus metrics at /metrics, /healthz and /readyz,
// and the runtime profiles at /debug/pprof/ with Config.Pprof, until the
// returned function is called. It is plain HTTP and read-only: for a
// private address.
func (m *Manager) serveHTTP(lis net.Listener) func() {
	ctx, cancel := context.WithCancel(m.serving)
	var views atomic.Pointer[api.GetClusterHealthResponse]
	dash := dashboard.New(dashboard.Config{Source: &dashboardSource{m: m, views: &views},
		Logger: m.log.With("component", "dashboard")})
	done := make(chan struct{}, 3)
	go func() { defer func() { done <- struct{}{} }(); m.probeViews(ctx, &views) }()
	go func() { defer func() { done <- struct{}{} }(); dash.Run(ctx) }()

	mux := http.NewServeMux()
	mux.Handle("/", dash.Handler())
	gatherers := prometheus.Gatherers{m.ins.reg, walFsyncGatherer}
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", m.serveHealthz)
	mux.HandleFunc("GET /readyz", m.serveReadyz)
	if m.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer func() { done <- struct{}{} }()
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("HTTP server stopped", "err", err)
		}
	}()
	m.log.Info("serving the dashboard, metrics and health", "addr", lis.Addr().String(), "pprof", m.cfg.Pprof)
	return func() {
		cancel() // ends the event streams, so that Shutdown does not wait on them
		sctx, stop := context.WithTimeout(context.Background(), time.Second)
		defer stop()
		_ = srv.Shutdown(sctx)
		for range 3 {
			<-done
		}
	}
}

// walFsyncName is the etcd WAL's fsync histogram, which etcd registers in
// the process-wide registry (for every manager of the process at once).
const walFsyncName = "etcd_disk_wal_fsync_duration_seconds"

// walFsyncGatherer gathers only the WAL's fsync histogram of the
// process-wide registry: the rest of it is not ours to publish.
var walFsyncGatherer = prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
	fams, err := prometheus.DefaultGatherer.Gather()
	var out []*dto.MetricFamily
	for _, fam := range fams {
		if fam.GetName() == walFsyncName {
			out = append(out, fam)
		}
	}
	return out, err
})

// serveHealthz answers 200 while the manager runs: its Raft node has not
// stopped.
func (m *Manager) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	if _, err := m.node.Status(); err != nil {
		http.Error(w, "not running: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// serveReadyz answers 200 when the manager can serve linearizable reads
// and writes: it has started and knows a leader.
func (m *Manager) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	select {
	case <-m.ready:
	default:
		http.Error(w, "not ready: starting", http.StatusServiceUnavailable)
		return
	}
	st, err := m.node.Status()
	switch {
	case err != nil:
		http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
	case st.Leader == 0:
		http.Error(w, "not ready: no leader (see 'shoal doctor')", http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ok")
	}
}
