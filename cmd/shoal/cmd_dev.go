package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/client"
	"github.com/shoal-project/shoal/manager"
)

// devStateFile records the managers' addresses in a --dir, so that a kept
// cluster restarts on the addresses its members know each other by.
const devStateFile = "dev.json"

type devFlags struct {
	managers    int
	managersSet bool // --managers was given
	dir         string
	keep        bool
}

func newDevCommand(a *app) *cobra.Command {
	var df devFlags
	cmd := &cobra.Command{
		Use:   "dev [--managers 3] [--dir DIR] [--keep]",
		Short: "Run a local cluster in this process, for trying shoal out",
		Long: `Run a cluster of managers on the loopback interface, in this process, with
their state in a temporary directory (or --dir). It prints how to reach
them, runs until Ctrl-C, then stops them cleanly and removes their state
unless --keep. 'shoal dev --dir DIR' restarts a cluster kept in DIR, with as
many managers as it had, and keeps it again when it stops.`,
		Example: "  shoal dev\n  shoal dev --managers 5 --dir ./dev-cluster --keep",
		Args:    exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			df.managersSet = cmd.Flags().Changed("managers")
			if df.managers < 1 || df.managers > 9 {
				return usagef("--managers %d: choose 1 to 9 (3 or 5 tolerate failures)", df.managers)
			}
			ctx, stop := a.signals(cmd.Context())
			defer stop()
			return runDev(ctx, a, df)
		},
	}
	cmd.Flags().IntVar(&df.managers, "managers", 3, "number of managers")
	cmd.Flags().StringVar(&df.dir, "dir", "", "directory for the managers' state (default: a new temporary directory)")
	cmd.Flags().BoolVar(&df.keep, "keep", false, "keep the state directories when stopping")
	_ = cmd.MarkFlagDirname("dir")
	return cmd
}

type devManager struct {
	m    *manager.Manager
	dir  string
	log  *os.File
	done chan error
	stop context.CancelFunc
}

type devState struct {
	Addrs []string `json:"addrs"`
}

func runDev(ctx context.Context, a *app, df devFlags) (err error) {
	dir, created, err := devDir(df.dir)
	if err != nil {
		return err
	}
	prev, restart, err := planDev(dir, df)
	if err != nil {
		return err
	}
	if restart {
		df.managers = len(prev.Addrs)
	}
	var ms []*devManager
	cleanup := func() error {
		stopDevManagers(ctx, ms)
		if df.keep || restart {
			fmt.Fprintf(a.stdout, "stopped; the state is kept in %s (restart with: shoal dev --dir %s)\n", dir, dir)
			return nil
		}
		if rmErr := removeDevDir(dir, created, df.managers); rmErr != nil {
			return fmt.Errorf("removing %s: %w", dir, rmErr)
		}
		if created {
			fmt.Fprintf(a.stdout, "stopped; removed %s\n", dir)
		} else {
			fmt.Fprintf(a.stdout, "stopped; removed the managers' state from %s\n", dir)
		}
		return nil
	}

	for i := range df.managers {
		stateDir := filepath.Join(dir, fmt.Sprintf("manager-%d", i+1))
		cfg := manager.DefaultConfig()
		cfg.StateDir = stateDir
		cfg.ListenAddr = "127.0.0.1:0"
		if restart {
			cfg.ListenAddr = prev.Addrs[i]
		} else if i > 0 {
			cfg.JoinAddr = ms[0].m.Addr()
			token, err := ms[0].m.JoinToken()
			if err != nil {
				_ = cleanup()
				return fmt.Errorf("reading the join token of manager 1: %w", err)
			}
			cfg.JoinToken = token
		}
		dm, startErr := startDevManager(ctx, cfg, !restart)
		if dm != nil {
			ms = append(ms, dm)
		}
		if startErr != nil {
			_ = cleanup()
			return fmt.Errorf("starting manager %d: %w (its log: %s)", i+1, startErr, filepath.Join(stateDir, "manager.log"))
		}
	}
	if restart {
		for i, dm := range ms {
			if werr := dm.waitReady(ctx); werr != nil {
				_ = cleanup()
				return fmt.Errorf("restarting manager %d: %w", i+1, werr)
			}
		}
	}
	state := devState{}
	for _, dm := range ms {
		state.Addrs = append(state.Addrs, dm.m.Addr())
	}
	if b, jerr := json.Marshal(state); jerr == nil {
		_ = os.WriteFile(filepath.Join(dir, devStateFile), b, 0o600)
	}
	printDevBanner(a.stdout, dir, ms, df)

	failed := make(chan error, len(ms))
	for i, dm := range ms {
		go func() {
			select {
			case err := <-dm.done:
				dm.done <- err
				failed <- fmt.Errorf("manager %d stopped: %v (its log: %s)", i+1, err, dm.log.Name())
			case <-ctx.Done():
			}
		}()
	}
	select {
	case <-ctx.Done():
		fmt.Fprintln(a.stdout, "\nstopping the managers...")
		return cleanup()
	case err := <-failed:
		_ = cleanup()
		return err
	}
}

// devDir returns the directory of the cluster's state and whether this
// run created it.
func devDir(dir string) (string, bool, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "shoal-dev-")
		return d, true, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", false, err
	}
	_, statErr := os.Stat(abs)
	created := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", false, err
	}
	return abs, created, nil
}

// planDev reads what dir holds: a cluster kept there to restart (with as
// many managers as it had; a different --managers is refused), or nothing
// of the kind, and then a new cluster of df.managers is started.
func planDev(dir string, df devFlags) (devState, bool, error) {
	var st devState
	b, err := os.ReadFile(filepath.Join(dir, devStateFile))
	if err != nil || json.Unmarshal(b, &st) != nil || len(st.Addrs) == 0 {
		return devState{}, false, nil
	}
	for i := range st.Addrs {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("manager-%d", i+1), "raft")); err != nil {
			return devState{}, false, nil
		}
	}
	if df.managersSet && df.managers != len(st.Addrs) {
		return devState{}, false, usagef("%s holds a kept cluster of %d managers, not %d: restart it with 'shoal dev --dir %s', or choose another --dir",
			dir, len(st.Addrs), df.managers, dir)
	}
	return st, true, nil
}

// removeDevDir removes what runDev made: the whole directory when it
// created it, else only the managers' directories and the state file.
func removeDevDir(dir string, created bool, n int) error {
	if created {
		return os.RemoveAll(dir)
	}
	var errs []error
	for i := range n {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, fmt.Sprintf("manager-%d", i+1))))
	}
	if err := os.Remove(filepath.Join(dir, devStateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// startDevManager starts a manager logging to its state directory; with
// wait, it returns once the manager is ready.
func startDevManager(ctx context.Context, cfg manager.Config, wait bool) (*devManager, error) {
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(cfg.StateDir, "manager.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logFile, nil))
	cfg.ShutdownTimeout = 5 * time.Second
	m, err := manager.New(cfg)
	if err != nil {
		logFile.Close()
		return nil, err
	}
	dm := &devManager{m: m, dir: cfg.StateDir, log: logFile, done: make(chan error, 1)}
	// The managers run until stopDevManagers cancels them, not until ctx
	// ends, so that Ctrl-C stops them in order.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		err := m.Run(runCtx)
		cancel()
		dm.done <- err
	}()
	dm.stop = cancel
	if !wait {
		return dm, nil
	}
	return dm, dm.waitReady(ctx)
}

func (dm *devManager) waitReady(ctx context.Context) error {
	select {
	case <-dm.m.Ready():
		return nil
	case err := <-dm.done:
		dm.done <- err
		if err == nil {
			err = errors.New("stopped before it was ready")
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stopDevManagers stops the leader first, again and again: a leader that
// stops hands leadership to a running follower at once, while one stopped
// together with its followers would wait for a stopping one to take over.
func stopDevManagers(_ context.Context, ms []*devManager) {
	running := slices.Clone(ms)
	for len(running) > 1 {
		i := slices.IndexFunc(running, (*devManager).isLeader)
		if i < 0 {
			break
		}
		running[i].stopAndWait()
		running = slices.Delete(running, i, i+1)
	}
	var wg sync.WaitGroup
	for _, dm := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dm.stopAndWait()
		}()
	}
	wg.Wait()
}

func (dm *devManager) stopAndWait() {
	dm.stop()
	err := <-dm.done
	dm.done <- err
	dm.log.Close()
}

// isLeader asks the manager, on its control socket, whether it leads.
func (dm *devManager) isLeader() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := client.New(ctx, client.Config{SocketPath: dm.m.SocketPath(), DialTimeout: time.Second})
	if err != nil {
		return false
	}
	defer c.Close()
	info, err := c.ClusterInfo(ctx)
	return err == nil && info.GetLeaderRaftId() != 0 && info.GetLeaderRaftId() == info.GetManager().GetRaftId()
}

// printDevBanner tells a newcomer how to use the cluster.
func printDevBanner(w io.Writer, dir string, ms []*devManager, df devFlags) {
	shoal := cliName()
	fmt.Fprintf(w, "shoal dev: %d %s running on this machine, state in %s\n\n", len(ms), plural(len(ms), "manager is", "managers are"), dir)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  MANAGER\tNODE ID\tADDRESS\tCONTROL SOCKET")
	for i, dm := range ms {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\n", i+1, dm.m.NodeID(), dm.m.Addr(), dm.m.SocketPath())
	}
	tw.Flush()
	var hosts []string
	for _, dm := range ms {
		hosts = append(hosts, dm.m.Addr())
	}
	fmt.Fprintf(w, `
In another terminal, point the CLI at manager 1:

  export SHOAL_SOCKET=%s

and try:

  %[2]s node ls
  %[2]s create service web --label tier=front --spec '{"replicas": 3}'
  %[2]s ls service
  %[2]s watch service          # then change something from a third terminal
  %[2]s cluster client-cert    # a client certificate, for reaching managers over TCP:
  %[2]s get service web -o json --host %[3]s

Any manager answers: --socket PATH or --host ADDR picks another. Over TCP
every call is mutual TLS: --host needs the client certificate.
Logs: %[4]s. Ctrl-C stops the cluster`, ms[0].m.SocketPath(), shoal, strings.Join(hosts, ","),
		filepath.Join(dir, "manager-*", "manager.log"))
	if df.keep {
		fmt.Fprintln(w, " and keeps its state.")
	} else {
		fmt.Fprintln(w, " and removes its state (--keep keeps it).")
	}
}

// cliName is how the user runs this binary: "go run ./cmd/shoal" under go
// run, "shoal" when it is on the PATH, else the path it was run by.
func cliName() string {
	exe, err := os.Executable()
	if err == nil && strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/shoal"
	}
	if p, err := exec.LookPath("shoal"); err == nil {
		if self, err := filepath.EvalSymlinks(exe); err == nil {
			if found, err := filepath.EvalSymlinks(p); err == nil && found == self {
				return "shoal"
			}
		}
	}
	return os.Args[0]
}
