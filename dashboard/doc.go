// Package dashboard serves a live, read-only page of one manager's view of
// its cluster: the members, the leadership over time, rates and latencies
// as small charts, objects per kind, snapshots, and the doctor's verdict
// on top.
//
// It owns the page (plain HTML, CSS and JavaScript embedded in the binary:
// nothing is fetched from elsewhere, and no build step makes them), the
// sampling of a Source once per interval, the history of the charts, and
// one server-sent event stream per browser: every browser gets the same
// encoded frame, so more of them do not add work on the manager. It knows
// nothing of Raft or the store; the manager is its Source, and decides
// what a Frame holds. A Frame must hold no secret: no token, key or
// object spec.
//
//	d := dashboard.New(dashboard.Config{Source: src})
//	go d.Run(ctx)
//	mux.Handle("/", d.Handler())
package dashboard
