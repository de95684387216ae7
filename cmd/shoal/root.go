package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// env is what the commands take from the process: streams, environment,
// identity. Tests pass their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	euid           int
	homeDir        func() (string, error)
	// signals returns a context that ends on SIGINT or SIGTERM.
	signals func(context.Context) (context.Context, context.CancelFunc)
}

func newEnv() env {
	return env{
		stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr,
		getenv: os.Getenv, euid: os.Geteuid(), homeDir: os.UserHomeDir,
		signals: func(ctx context.Context) (context.Context, context.CancelFunc) {
			return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		},
	}
}

// run executes the command line args and returns the exit code.
func run(args []string, e env) int {
	root, started := newRootCommand(e)
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	if !*started {
		// Cobra failed before any command ran: flags or arguments.
		err = usageError{err}
	}
	line := "shoal: " + errorMessage(err)
	if exitCode(err) == exitUsage && !*started {
		line += fmt.Sprintf(" (see '%s --help')", cmd.CommandPath())
	}
	fmt.Fprintln(e.stderr, line)
	return exitCode(err)
}

// newRootCommand builds the command tree. started is set once a command's
// own code runs, so errors before it are usage errors.
func newRootCommand(e env) (*cobra.Command, *bool) {
	started := new(bool)
	root := &cobra.Command{
		Use:   "shoal",
		Short: "Run and operate a shoal cluster",
		Long: `shoal keeps the state of a cluster of managers consistent with Raft.

Start a local cluster to try it:   shoal dev
Run a manager:                     shoal manager --state-dir DIR [--join ADDR --token TOKEN]
Operate a cluster:                 shoal node ls, shoal create KIND NAME, ...

Client commands reach the control socket of the default state directory
(` + defaultStateDirHelp + `),
another manager's socket with --socket PATH (or SHOAL_SOCKET), or managers
over TCP with --host ADDR[,ADDR...] (or SHOAL_HOST) and a client certificate
(shoal cluster client-cert; --tls-cert, --tls-key, --tls-ca).

` + exitCodesHelp,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRun: func(*cobra.Command, []string) {
			*started = true
		},
	}
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddGroup(
		&cobra.Group{ID: "run", Title: "Run managers:"},
		&cobra.Group{ID: "objects", Title: "Objects:"},
		&cobra.Group{ID: "cluster", Title: "The cluster:"},
		&cobra.Group{ID: "measure", Title: "Measure:"},
	)

	a := &app{env: e}
	for _, c := range []*cobra.Command{newManagerCommand(a), newDevCommand(a), newUnlockCommand(a)} {
		c.GroupID = "run"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newCreateCommand(a), newGetCommand(a), newListCommand(a),
		newUpdateCommand(a), newRemoveCommand(a), newWatchCommand(a)} {
		c.GroupID = "objects"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newClusterCommand(a), newNodeCommand(a), newDoctorCommand(a), newSnapshotCommand(a)} {
		c.GroupID = "cluster"
		root.AddCommand(c)
	}
	benchCmd := newBenchCommand(a)
	benchCmd.GroupID = "measure"
	root.AddCommand(benchCmd, newVersionCommand(a))
	return root, started
}

// app carries the environment and the connection flags to the commands.
type app struct {
	env
	conn connFlags
}

const defaultStateDirHelp = "/var/lib/shoal as root, else $XDG_STATE_HOME/shoal or ~/.local/state/shoal"

const defaultClientDirHelp = "$XDG_CONFIG_HOME/shoal or ~/.config/shoal"

// defaultClientDir holds the client certificate for remote use of the CLI.
func (e env) defaultClientDir() string {
	if xdg := e.getenv("XDG_CONFIG_HOME"); filepath.IsAbs(xdg) {
		return filepath.Join(xdg, "shoal")
	}
	home, err := e.homeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "shoal-client")
	}
	return filepath.Join(home, ".config", "shoal")
}

// defaultStateDir is the state directory used when none is given.
func (e env) defaultStateDir() string {
	if e.euid == 0 {
		return "/var/lib/shoal"
	}
	if xdg := e.getenv("XDG_STATE_HOME"); filepath.IsAbs(xdg) {
		return filepath.Join(xdg, "shoal")
	}
	home, err := e.homeDir()
	if err != nil || home == "" {
		return filepath.Join(os.TempDir(), "shoal")
	}
	return filepath.Join(home, ".local", "state", "shoal")
}
