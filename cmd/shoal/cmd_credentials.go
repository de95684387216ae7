package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/client"
)

func newJoinTokenCommand(a *app) *cobra.Command {
	var rotate, quiet bool
	cmd := &cobra.Command{
		Use:   "join-token manager",
		Short: "Show, or rotate, the token a new manager joins with",
		Long: `Show the manager join token: with it, and the address of any manager,
a new manager joins the cluster (shoal manager --join ADDR --token TOKEN).
--rotate replaces it; the old token stops working at once. Only a manager's
local administrator (the control socket) or a manager certificate may ask.

Clients join differently: they get a certificate from 'shoal cluster
client-cert'.`,
		Example: `  shoal cluster join-token manager
  shoal cluster join-token manager --rotate -q`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("join-token takes the role: manager")
			}
			if args[0] != "manager" {
				return usagef("there is a join token for managers only; a client gets a certificate from 'shoal cluster client-cert'")
			}
			return nil
		},
		ValidArgs: []string{"manager"},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				token, err := c.JoinToken(ctx, rotate)
				if err != nil {
					return err
				}
				if quiet {
					fmt.Fprintln(a.stdout, token)
					return nil
				}
				if rotate {
					fmt.Fprintln(a.stdout, "Rotated the manager join token; the old one no longer works.")
				}
				fmt.Fprintf(a.stdout, "To add a manager to this cluster, run on its host:\n\n    shoal manager --state-dir DIR --join %s --token %s\n\n", joinHint(c.Target()), token)
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&rotate, "rotate", false, "replace the token; the old one stops working")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print the token alone")
	return cmd
}

// joinHint is the address to show in a join command: the manager reached
// over TCP, or a placeholder when it was reached over its socket.
func joinHint(target string) string {
	if filepath.IsAbs(target) || len(target) > 5 && target[:5] == "unix:" {
		return "MANAGER_ADDR"
	}
	return target
}

func newClientCertCommand(a *app) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "client-cert",
		Short: "Issue a client certificate for remote use of the CLI",
		Long: `Make a key here and have the cluster sign a client certificate for it, then
write client.crt, client.key (mode 0600) and the cluster's ca.crt to --out
(default ` + defaultClientDirHelp + `), where client commands given --host
find them. Only a manager's local administrator (the control socket) or a
manager certificate may ask. The key never leaves this machine.`,
		Args: exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				out = a.defaultClientDir()
			}
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				cert, err := c.IssueClientCertificate(ctx)
				if err != nil {
					return err
				}
				if err := os.MkdirAll(out, 0o700); err != nil {
					return err
				}
				files := []struct {
					name string
					data []byte
					mode os.FileMode
				}{
					{clientKeyFile, cert.KeyPEM, 0o600},
					{clientCertFile, cert.CertificatePEM, 0o644},
					{clientCAFile, cert.RootCAPEM, 0o644},
				}
				for _, f := range files {
					if err := os.WriteFile(filepath.Join(out, f.name), f.data, f.mode); err != nil {
						return fmt.Errorf("writing %s: %w", f.name, err)
					}
				}
				fmt.Fprintf(a.stdout, "Wrote a client certificate (client ID %s) to %s.\nUse it with: shoal --host MANAGER_ADDR ...", cert.NodeID, out)
				if out != a.defaultClientDir() {
					fmt.Fprintf(a.stdout, " --tls-cert %s --tls-key %s --tls-ca %s",
						filepath.Join(out, clientCertFile), filepath.Join(out, clientKeyFile), filepath.Join(out, clientCAFile))
				}
				fmt.Fprintln(a.stdout)
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "directory to write the files to (default: "+defaultClientDirHelp+")")
	_ = cmd.MarkFlagDirname("out")
	return cmd
}
