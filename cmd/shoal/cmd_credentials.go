package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
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
local administrator (the control socket), a manager certificate or an admin
client certificate may ask.

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

// certRoles are the roles of --role, as the API names them.
var certRoles = map[string]api.ClientRole{
	"ro":    api.ClientRole_CLIENT_ROLE_READ_ONLY,
	"rw":    api.ClientRole_CLIENT_ROLE_READ_WRITE,
	"admin": api.ClientRole_CLIENT_ROLE_ADMIN,
}

func newClientCertCommand(a *app) *cobra.Command {
	var out, role string
	var force bool
	cmd := &cobra.Command{
		Use:   "client-cert",
		Short: "Issue a client certificate for remote use of the CLI",
		Long: `Make a key here and have the cluster sign a client certificate for it, then
write client.crt, client.key (mode 0600) and the cluster's ca.crt to --out
(default ` + defaultClientDirHelp + `), where client commands given --host
find them. The key never leaves this machine.

--role says what the certificate may do:
  ro     read and watch objects, list managers, show the cluster
  rw     also create, update and delete objects (the default)
  admin  also remove, promote and demote managers, transfer leadership,
         show join tokens, issue and revoke certificates
Only a manager's local administrator (the control socket), a manager
certificate or an admin certificate may ask. A call a certificate may not
make is refused with exit code 6.

The client ID printed is the certificate's name: 'shoal cluster revoke-cert
ID' revokes it. --out is not overwritten when it holds another cluster's
credentials, unless --force.`,
		Args: exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			apiRole, ok := certRoles[role]
			if !ok {
				return usagef("--role %q: choose ro, rw or admin", role)
			}
			if out == "" {
				out = a.defaultClientDir()
			}
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				cert, err := c.IssueClientCertificateWithRole(ctx, apiRole)
				if err != nil {
					return err
				}
				if !force {
					if err := checkSameCluster(out, cert.RootCAPEM); err != nil {
						return err
					}
				}
				if err := writeClientFiles(out, cert); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "Wrote a %s client certificate (client ID %s) to %s.\nUse it with: shoal --host MANAGER_ADDR ...", role, cert.NodeID, out)
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
	cmd.Flags().StringVar(&role, "role", "rw", "what the certificate may do: ro, rw or admin")
	cmd.Flags().BoolVar(&force, "force", false, "overwrite the credentials in --out even if they are another cluster's")
	_ = cmd.MarkFlagDirname("out")
	_ = cmd.RegisterFlagCompletionFunc("role", cobra.FixedCompletions([]string{"ro", "rw", "admin"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// checkSameCluster refuses to overwrite, in dir, the credentials of a
// cluster other than the one of rootPEM.
func checkSameCluster(dir string, rootPEM []byte) error {
	old, err := os.ReadFile(filepath.Join(dir, clientCAFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the credentials in %s: %w", dir, err)
	}
	oldRoot, oldErr := ca.ParseRootCA(old)
	newRoot, newErr := ca.ParseRootCA(rootPEM)
	if oldErr == nil && newErr == nil && oldRoot.ClusterID() == newRoot.ClusterID() {
		return nil
	}
	other := "an unreadable CA certificate"
	if oldErr == nil {
		other = "the credentials of cluster " + oldRoot.ClusterID()
	}
	return status.Errorf(codes.FailedPrecondition,
		"%s holds %s, not this cluster's: choose another directory with --out, or replace them with --force", dir, other)
}

// writeClientFiles writes a client certificate's files to dir.
func writeClientFiles(dir string, cert client.ClientCertificate) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
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
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("writing %s: %w", f.name, err)
		}
	}
	return nil
}

func newRevokeCertCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke-cert ID",
		Short: "Revoke a client certificate: every manager refuses it from now on",
		Long: `Put the client certificate with client ID ID (as 'shoal cluster client-cert'
printed it, the certificate's subject CN) on the cluster's deny list. The
list is replicated through Raft: every manager refuses the certificate's
calls from then on, on connections already open too, and refuses to renew
it, so the revocation outlives the certificate. It cannot be undone: issue
a new certificate instead. A manager is not revoked but removed ('shoal node
rm'). Only a manager's local administrator, a manager certificate or an
admin certificate may revoke.`,
		Args: exactArgs(1, "a client ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				already, err := c.RevokeCertificate(ctx, args[0])
				if err != nil {
					return err
				}
				if already {
					_, err = fmt.Fprintf(a.stdout, "certificate %s was revoked already\n", args[0])
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "revoked certificate %s; every manager refuses it from now on\n", args[0])
				return err
			})
		},
	}
}
