package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/client"
)

func newUnlockCommand(a *app) *cobra.Command {
	var socket string
	cmd := &cobra.Command{
		Use:   "unlock",
		Short: "Give a restarted manager that runs with autolock its unlock key",
		Long: `A manager started with --autolock keeps its data encrypted under a key that
its unlock key wraps; after a restart it serves nothing until it is given
that key on its control socket. unlock reads the key from the terminal
(without echo) or from standard input, never from the command line, where
other users of the machine could see it.`,
		Example: `  shoal unlock
  shoal unlock --socket /var/lib/shoal/control.sock < unlock-key.txt`,
		Args: exactArgs(0, "no argument: the key is read from standard input"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if socket == "" {
				socket = a.getenv("SHOAL_SOCKET")
			}
			if socket == "" {
				socket = filepath.Join(a.defaultStateDir(), "control.sock")
			}
			key, err := a.readSecret("Unlock key: ")
			if err != nil {
				return err
			}
			if key == "" {
				return usagef("no unlock key was given on standard input")
			}
			conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return err
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), defaultTimeout)
			defer cancel()
			_, err = api.NewUnlockClient(conn).Unlock(ctx, &api.UnlockRequest{UnlockKey: key})
			if status.Code(err) == codes.Unimplemented {
				// Only a locked manager serves Unlock; one that runs
				// already has nothing to unlock.
				fmt.Fprintf(a.stdout, "the manager at %s is not locked: it runs already, nothing to do\n", socket)
				return nil
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "unlocked; the manager is starting")
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "socket", "", "control socket of the locked manager (env SHOAL_SOCKET; default: the one in the default state directory)")
	return cmd
}

// readSecret reads one line: from the terminal without echo when standard
// input is one, else from standard input.
func (a *app) readSecret(prompt string) (string, error) {
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.stderr, prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		return strings.TrimSpace(string(b)), err
	}
	line, err := bufio.NewReader(a.stdin).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimSpace(line), nil
}

func newUnlockKeyCommand(a *app) *cobra.Command {
	var rotate, quiet bool
	cmd := &cobra.Command{
		Use:   "unlock-key",
		Short: "Show, or rotate, the unlock key of a manager that runs with autolock",
		Long: `Show the key that unlocks this manager's data after a restart (shoal unlock),
when it runs with autolock. --rotate replaces it, and the data key with it.
Only the manager's local administrator, on its control socket, may ask.`,
		Args: exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				key, err := c.UnlockKey(ctx, rotate)
				if err != nil {
					return err
				}
				if key == "" {
					fmt.Fprintln(a.stderr, "this manager does not run with autolock (shoal manager --autolock enables it)")
					return nil
				}
				if quiet {
					fmt.Fprintln(a.stdout, key)
					return nil
				}
				if rotate {
					fmt.Fprintln(a.stdout, "Rotated the unlock key; the old one no longer unlocks this manager.")
				}
				fmt.Fprintf(a.stdout, "After a restart, unlock this manager with 'shoal unlock' and this key:\n\n    %s\n\nKeep it safe: without it the manager's data cannot be read.\n", key)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the unlock key (and the data key)")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print the key alone")
	return cmd
}

func newRotateDataKeyCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate-data-key",
		Short: "Encrypt this manager's Raft data with a new key from now on",
		Long: `Make a new data key current on the manager reached: new log entries and
snapshots are encrypted with it. The old key stays, for reading, until a
snapshot covers everything it encrypted. Only the manager's local
administrator, on its control socket, may ask.`,
		Args: exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				id, older, err := c.RotateDataKey(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "data key %d is current; older keys kept until a snapshot covers their data: %v\n", id, older)
				return nil
			})
		},
	}
}
