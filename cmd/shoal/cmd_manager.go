package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/internal/buildinfo"
	"github.com/shoal-project/shoal/internal/gcpace"
	"github.com/shoal-project/shoal/manager"
	"github.com/shoal-project/shoal/raft"
)

// managerFlags are the flags of 'shoal manager'.
type managerFlags struct {
	cfg       manager.Config
	logLevel  string
	logFormat string
}

func newManagerCommand(a *app) *cobra.Command {
	mf := &managerFlags{cfg: manager.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "manager --state-dir DIR [--join ADDR --token TOKEN]",
		Short: "Run a manager until SIGINT or SIGTERM",
		Long: `Run a manager until SIGINT or SIGTERM, then stop cleanly: a leader hands
leadership over first.

The first manager of a cluster bootstraps it: it creates the cluster's
certificate authority and its own certificate. The others join with --join,
the address of any manager, and --token, the manager join token (shown by
'shoal cluster join-token manager' on a manager): they check the cluster's
CA against the token, get a certificate, and join over mutual TLS. A
joining manager is a learner, which receives the log but does not vote,
until the leader promotes it to a voter once it has caught up; --learner
keeps it a learner until 'shoal node promote'. A manager restarts from its
state directory (--join and --learner are then ignored). When the cluster lost its quorum for
good, --force-new-cluster restarts one manager from its own state as a
one-member cluster, keeping every committed object; others then join it.

Before it writes anything or contacts the cluster, it checks its flags
against each other and against its state directory, and binds every address
it serves (--listen-addr, --http-addr, the control socket); a start that
cannot work exits with code 2 and says what to change. A first start that
fails later (a join refused or unreachable) removes what it wrote, so it can
simply be run again. A manager whose state directory kept its certificates
but lost its Raft state refuses to start: remove it with 'shoal node rm ID'
on another manager, then start it from an empty state directory.

The state directory defaults to ` + defaultStateDirHelp + `;
the control socket is STATE_DIR/control.sock.`,
		Example: `  shoal manager --state-dir /var/lib/shoal --advertise-addr 10.0.0.1:2377
  shoal manager --state-dir /var/lib/shoal --advertise-addr 10.0.0.2:2377 --join 10.0.0.1:2377 --token SHLTKN-1-...`,
		Args: exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := mf.check(); err != nil {
				return err
			}
			if mf.cfg.StateDir == "" {
				mf.cfg.StateDir = a.defaultStateDir()
			}
			if mf.cfg.JoinToken == "" && mf.cfg.JoinAddr != "" {
				// Only with --join: a token left in the environment must
				// not turn the start of a new cluster into an error.
				mf.cfg.JoinToken = a.getenv("SHOAL_JOIN_TOKEN")
			}
			logger, err := newLogger(a.stderr, mf.logLevel, mf.logFormat)
			if err != nil {
				return err
			}
			mf.cfg.Logger = logger
			mf.cfg.UnlockKeyOutput = a.stderr
			ctx, stop := a.signals(cmd.Context())
			defer stop()
			return runManager(ctx, mf.cfg, logger)
		},
	}
	fs := cmd.Flags()
	c := &mf.cfg
	fs.StringVar(&c.StateDir, "state-dir", "", "directory of the manager's state (default: "+defaultStateDirHelp+")")
	fs.StringVar(&c.ListenAddr, "listen-addr", c.ListenAddr, "TCP address of the remote API, for peers and remote clients")
	fs.StringVar(&c.AdvertiseAddr, "advertise-addr", "", "address other managers reach this one at (default: the listen address, or this machine's one address when it listens on all)")
	fs.StringVar(&c.JoinAddr, "join", "", "address of a manager of the cluster to join (empty: bootstrap a new cluster)")
	fs.StringVar(&c.JoinToken, "token", "", "the manager join token, with --join (env SHOAL_JOIN_TOKEN; a manager shows it: shoal cluster join-token manager)")
	fs.DurationVar(&c.CertificateValidity, "certificate-validity", c.CertificateValidity, "lifetime of the certificates this manager signs; they are renewed at half to four fifths of it")
	fs.BoolVar(&c.Autolock, "autolock", false, "lock this manager's encrypted data with an unlock key, shown once: after a restart it serves nothing until 'shoal unlock' gives it")
	fs.BoolVar(&c.Raft.Learner, "learner", false, "with --join: join as a learner for good, which receives the log and serves reads but never votes, until 'shoal node promote'")
	fs.BoolVar(&c.ForceNewCluster, "force-new-cluster", false, "restart from this state directory as the only manager of a new cluster, keeping every object")
	fs.DurationVar(&c.Raft.TickInterval, "tick", c.Raft.TickInterval, "duration of one Raft tick")
	fs.IntVar(&c.Raft.ElectionTick, "election-tick", c.Raft.ElectionTick, "ticks without a leader before a follower campaigns")
	fs.IntVar(&c.Raft.HeartbeatTick, "heartbeat-tick", c.Raft.HeartbeatTick, "ticks between heartbeats")
	fs.Uint64Var(&c.Raft.SnapshotInterval, "snapshot-interval", c.Raft.SnapshotInterval, "applied entries between snapshots")
	fs.Uint64Var(&c.Raft.LogEntriesForSlowFollowers, "log-entries-for-slow-followers", c.Raft.LogEntriesForSlowFollowers, "entries kept before a snapshot for followers slightly behind")
	fs.IntVar(&c.Raft.KeepOldSnapshots, "keep-old-snapshots", c.Raft.KeepOldSnapshots, "snapshot files kept besides the newest")
	fs.StringVar(&c.HTTPAddr, "http-addr", "", "serve the dashboard (/), Prometheus metrics (/metrics), /healthz and /readyz over plain HTTP, read-only, at this address (off by default)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "another name for --http-addr")
	fs.BoolVar(&c.Pprof, "pprof", false, "also serve the runtime profiles at /debug/pprof/ on --http-addr")
	fs.StringVar(&mf.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&mf.logFormat, "log-format", "text", "text or json")
	_ = cmd.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.MarkFlagDirname("state-dir")
	return cmd
}

// check refuses Raft timings the node would refuse later, so they fail as
// bad usage before anything starts.
func (mf *managerFlags) check() error {
	r := mf.cfg.Raft
	switch {
	case r.TickInterval <= 0:
		return usagef("--tick %v must be positive", r.TickInterval)
	case r.HeartbeatTick <= 0:
		return usagef("--heartbeat-tick %d must be positive", r.HeartbeatTick)
	case r.ElectionTick <= r.HeartbeatTick:
		return usagef("--election-tick %d must be greater than --heartbeat-tick %d", r.ElectionTick, r.HeartbeatTick)
	case r.SnapshotInterval == 0:
		return usagef("--snapshot-interval must be positive")
	case r.KeepOldSnapshots < 0:
		return usagef("--keep-old-snapshots %d must not be negative", r.KeepOldSnapshots)
	case mf.cfg.CertificateValidity < time.Second:
		return usagef("--certificate-validity %v must be at least a second", mf.cfg.CertificateValidity)
	case mf.cfg.ForceNewCluster && mf.cfg.JoinAddr != "":
		return usagef("--force-new-cluster and --join exclude each other: a forced cluster starts alone")
	}
	return nil
}

// runManager runs one manager until ctx ends, and logs why it stopped.
func runManager(ctx context.Context, cfg manager.Config, log *slog.Logger) error {
	m, err := manager.New(cfg)
	if err != nil {
		return usageError{err}
	}
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-m.Ready():
		bi := buildinfo.Read()
		log.Info("manager ready", "node_id", m.NodeID(), "addr", m.Addr(), "socket", m.SocketPath(),
			"version", bi.Version, "commit", bi.ShortCommit(), "go", bi.GoVersion)
		// The store is most of a manager's heap: from now on the
		// collector's headroom over it is kept bounded
		// (internal/gcpace). A start restores and replays at the
		// default, which collects less often while the heap grows.
		paceCtx, stopPacing := context.WithCancel(ctx)
		defer stopPacing()
		go gcpace.Default(log.With("component", "gc")).Run(paceCtx)
	case err := <-done:
		return managerStopped(log, cfg, err)
	}
	return managerStopped(log, cfg, <-done)
}

// managerStopped logs the end of a manager and returns the error to exit
// with.
func managerStopped(log *slog.Logger, cfg manager.Config, err error) error {
	switch {
	case err == nil:
		log.Info("manager stopped")
		return nil
	case errors.Is(err, manager.ErrBadConfig):
		// Refused before anything was written or contacted: bad usage,
		// which the one error line says.
		return usageError{err}
	case errors.Is(err, raft.ErrMemberRemoved):
		log.Error("this manager was removed from the cluster and stopped; its state directory cannot rejoin: remove it to join again as a new manager",
			"state_dir", cfg.StateDir)
		return fmt.Errorf("this manager was removed from the cluster; remove %s before joining again", cfg.StateDir)
	}
	log.Error("manager stopped", "err", err)
	return err
}

// newLogger returns the daemon's logger on w.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usagef("--log-level %q: choose debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format %q: choose text or json", format)
}
