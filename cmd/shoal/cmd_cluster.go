package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/client"
)

func newClusterCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster, and hand out its credentials",
	}
	a.addConnFlags(cmd, true)
	var output string
	info := &cobra.Command{
		Use:   "info",
		Short: "Show the cluster as the called manager sees it: leader, term, indexes",
		Args:  exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseFormat(output)
			if err != nil {
				return err
			}
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				resp, err := c.ClusterInfo(ctx)
				if err != nil {
					return err
				}
				return writeCluster(a.stdout, f, resp)
			})
		},
	}
	addOutputFlag(info, &output, formatTable)
	cmd.AddCommand(info, newJoinTokenCommand(a), newClientCertCommand(a), newUnlockKeyCommand(a), newRotateDataKeyCommand(a))
	return cmd
}

func newNodeCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "List, remove and hand leadership between managers",
	}
	a.addConnFlags(cmd, true)
	cmd.AddCommand(newNodeListCommand(a), newNodeRemoveCommand(a), newNodeTransferCommand(a))
	return cmd
}

func newNodeListCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the managers, as the leader sees them",
		Long: `List the managers: node ID, Raft ID, address, role, whether the leader
reaches it, and how far its log matches the leader's. A warning goes to
standard error when the number of managers is even or when the cluster is
one failure or less away from losing its quorum.`,
		Args: exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseFormat(output)
			if err != nil {
				return err
			}
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				members, _, err := c.Members(ctx)
				if err != nil {
					return err
				}
				if err := writeMembers(a.stdout, f, members); err != nil {
					return err
				}
				for _, w := range quorumWarnings(members) {
					fmt.Fprintln(a.stderr, "warning: "+w)
				}
				return nil
			})
		},
	}
	addOutputFlag(cmd, &output, formatTable)
	return cmd
}

// quorumWarnings says what a cluster of these members risks: a cluster of
// n managers needs n/2+1 of them and so tolerates (n-1)/2 failures.
func quorumWarnings(members []*api.Member) []string {
	n := len(members)
	if n <= 1 {
		return nil
	}
	reachable := 0
	for _, m := range members {
		if m.GetReachable() {
			reachable++
		}
	}
	quorum := n/2 + 1
	tolerated := (n - 1) / 2
	var out []string
	if n%2 == 0 {
		what := "no failure"
		if tolerated > 0 {
			what = fmt.Sprintf("only %d %s, no more than %d would", tolerated, plural(tolerated, "failure", "failures"), n-1)
		}
		out = append(out, fmt.Sprintf("%d managers tolerate %s; run an odd number (3 or 5)", n, what))
	}
	switch {
	case reachable < quorum:
		out = append(out, fmt.Sprintf("only %d of %d managers are reachable, fewer than the %d a quorum needs: the cluster accepts no writes until they are back (if they are lost for good, see 'shoal manager --force-new-cluster')", reachable, n, quorum))
	case reachable == quorum && tolerated > 0:
		out = append(out, fmt.Sprintf("only %d of %d managers are reachable: one more failure loses the quorum", reachable, n))
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func newNodeRemoveCommand(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm ID",
		Aliases: []string{"remove"},
		Short:   "Remove a manager from the cluster for good",
		Long: `Remove a manager, named by its node ID or its Raft ID (see 'shoal node ls').
The removed manager stops; its state directory cannot be used again. The
removal is refused (exit code 4) when the other managers would be left
without a quorum of reachable members, unless --force.`,
		Args: exactArgs(1, "a node ID or Raft ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				if err := removeMember(ctx, c, args[0], force); err != nil {
					return err
				}
				_, err := fmt.Fprintf(a.stdout, "removed manager %s\n", args[0])
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove it even if the others keep no quorum of reachable members")
	return cmd
}

// removeMember removes a manager, trying again while the cluster is
// unavailable (an election, or the leader handing over before it removes
// itself) until ctx ends. A retry that finds the member gone, or already
// removed, means an earlier attempt whose outcome was unknown went through.
func removeMember(ctx context.Context, c *client.Client, id string, force bool) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := c.RemoveMember(ctx, id, force)
		if attempt > 1 && (client.IsNotFound(err) ||
			status.Code(err) == codes.FailedPrecondition && strings.Contains(status.Convert(err).Message(), "removed")) {
			return nil
		}
		if !client.IsUnavailable(err) || status.Code(err) == codes.DeadlineExceeded {
			return err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return err
		}
		backoff = min(2*backoff, time.Second)
	}
}

func newNodeTransferCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "transfer-leadership [ID]",
		Short: "Hand leadership to a manager (the most up-to-date one without ID)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return fmt.Errorf("%s takes at most one ID, got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			to := ""
			if len(args) == 1 {
				to = args[0]
			}
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				leader, err := c.TransferLeadership(ctx, to)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "the leader is now %s\n", raftID(leader))
				return err
			})
		},
	}
	return cmd
}
