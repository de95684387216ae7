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
		Long: `Show the cluster as the called manager sees it: the cluster ID, the
manager that answers, the leader, the number of managers and how many of
them it reaches, the term, and its commit and applied indexes and store
version.

The managers are also counted, voters and learners, as the leader sees
them, or without a leader as the answering manager does (a warning says
so), and the quorum warnings of 'shoal node ls' go to standard error: a
cluster that lost its quorum still answers, and says what it lacks.`,
		Args: exactArgs(0, "no argument"),
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
				members, answeredBy := clusterMembers(ctx, c)
				if err := writeCluster(a.stdout, f, resp, members); err != nil {
					return err
				}
				a.warn(localViewWarning(members, answeredBy))
				a.warn(quorumWarnings(members))
				return nil
			})
		},
	}
	addOutputFlag(info, &output, formatTable)
	cmd.AddCommand(info, newJoinTokenCommand(a), newClientCertCommand(a), newRevokeCertCommand(a), newUnlockKeyCommand(a), newRotateDataKeyCommand(a))
	return cmd
}

// clusterMembers returns the members for cluster info: as the leader sees
// them, or, without a leader, as the called manager does (it answers at
// once then), or nil when even that failed: info has been printed already.
func clusterMembers(ctx context.Context, c *client.Client) ([]*api.Member, uint64) {
	members, answeredBy, err := c.Members(ctx)
	if err != nil {
		return nil, 0
	}
	return members, answeredBy
}

// localViewWarning says, when the members were not listed by the leader,
// that they are the answering manager's own view.
func localViewWarning(members []*api.Member, answeredBy uint64) []string {
	if len(members) == 0 || answeredByLeader(members, answeredBy) {
		return nil
	}
	who := raftID(answeredBy)
	for _, m := range members {
		if m.GetRaftId() == answeredBy {
			who = memberName(m)
		}
	}
	return []string{fmt.Sprintf("no leader answered: this is manager %s's own view of the cluster (whom it reaches, when it last heard from each); match index and lag are unknown", who)}
}

func newNodeCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "List, promote, demote and remove managers, and hand leadership between them",
		Long: `List, promote, demote and remove managers, and hand leadership between them.

A manager is a voter or a learner. Voters elect the leader and make up the
quorum: a write is acknowledged once most voters have it, so n voters
tolerate (n-1)/2 failures. A learner receives the log and serves reads but
never votes and counts toward no quorum. A manager joins as a learner and
the leader promotes it once it has caught up, so a joiner that fails before
then leaves the cluster's fault tolerance as it was; one started with
'shoal manager --learner' stays a learner until 'shoal node promote'.

Commands taking an ID accept a node ID or a Raft ID in hex, as 'shoal node ls'
shows them.`,
	}
	a.addConnFlags(cmd, true)
	cmd.AddCommand(newNodeListCommand(a), newNodePromoteCommand(a), newNodeDemoteCommand(a),
		newNodeRemoveCommand(a), newNodeTransferCommand(a))
	return cmd
}

func newNodeListCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List the managers, as the leader sees them",
		Long: `List the managers: node ID, Raft ID, address, suffrage (voter, or learner,
and whether it is to be promoted once caught up), role (leader or follower),
whether the answering manager reaches it, how long ago it last heard from
it, how far its log matches the leader's and how many committed entries it
lacks (known only when the leader answers; "-" otherwise).

When no leader answers within an election timeout (a quorum lost, a
leader that just died), the answering manager lists them as it sees them,
and a warning says so.

A warning goes to standard error when the number of voters is even, when
the voters are one failure or less away from losing their quorum, and for
each learner that waits to be promoted. Learners never count toward a
quorum.`,
		Args: exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseFormat(output)
			if err != nil {
				return err
			}
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				members, answeredBy, err := c.Members(ctx)
				if err != nil {
					return err
				}
				if err := writeMembers(a.stdout, f, members, answeredBy); err != nil {
					return err
				}
				a.warn(localViewWarning(members, answeredBy))
				a.warn(quorumWarnings(members))
				return nil
			})
		},
	}
	addOutputFlag(cmd, &output, formatTable)
	return cmd
}

// warn prints warnings on standard error.
func (a *app) warn(warnings []string) {
	for _, w := range warnings {
		fmt.Fprintln(a.stderr, "warning: "+w)
	}
}

// quorumWarnings says what a cluster of these members risks. Only voters
// count: n voters need n/2+1 of them for a quorum and so tolerate (n-1)/2
// failures; a learner receives the log but counts toward no quorum. It
// also names the learners that wait to be promoted.
func quorumWarnings(members []*api.Member) []string {
	c := countSuffrage(members)
	n, reachable := c.voters, c.votersUp
	var out []string
	if n > 1 {
		quorum := n/2 + 1
		tolerated := (n - 1) / 2
		if n%2 == 0 {
			what := "no failure"
			if tolerated > 0 {
				what = fmt.Sprintf("only %d %s, no more than %d would", tolerated, plural(tolerated, "failure", "failures"), n-1)
			}
			out = append(out, fmt.Sprintf("%d voting managers tolerate %s; run an odd number of voters (3 or 5)", n, what))
		}
		switch {
		case reachable < quorum:
			out = append(out, fmt.Sprintf("only %d of %d voting managers are reachable, fewer than the %d a quorum needs: the cluster accepts no writes until they are back (if they are lost for good, see 'shoal manager --force-new-cluster')", reachable, n, quorum))
		case reachable == quorum && tolerated > 0:
			out = append(out, fmt.Sprintf("only %d of %d voting managers are reachable: one more failure loses the quorum", reachable, n))
		}
	}
	for _, m := range members {
		if !isLearner(m) || !m.GetAutoPromote() {
			continue
		}
		id := memberName(m)
		if m.GetReachable() {
			out = append(out, fmt.Sprintf("learner %s is to be promoted to a voter once it has caught up; until then it counts toward no quorum", id))
		} else {
			out = append(out, fmt.Sprintf("learner %s, to be promoted once it has caught up, is unreachable; if it is gone for good, remove it with 'shoal node rm %s'", id, id))
		}
	}
	return out
}

// memberName names a member as the commands accept it: its node ID, else
// its Raft ID.
func memberName(m *api.Member) string {
	if m.GetNodeId() != "" {
		return m.GetNodeId()
	}
	return raftID(m.GetRaftId())
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func newNodePromoteCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "promote ID",
		Short: "Make a learner a voter",
		Long: `Make the learner ID (its node ID or Raft ID) a voter: it then votes and
counts toward the quorum. A manager that joined without --learner is
promoted by the leader once it has caught up; this is for one that joined
with --learner, or was demoted. The promotion is refused (exit code 4) while
the learner is unreachable or behind the leader: wait until 'shoal node ls'
shows it reachable with a small lag. Promoting a voter changes nothing. It
retries while the cluster has no leader, within --timeout.`,
		Args: exactArgs(1, "a node ID or Raft ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				if err := retryUnavailable(ctx, func() error { return c.PromoteMember(ctx, args[0]) }, nil); err != nil {
					return err
				}
				_, err := fmt.Fprintf(a.stdout, "manager %s is a voter\n", args[0])
				return err
			})
		},
	}
}

func newNodeDemoteCommand(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "demote ID",
		Short: "Make a voter a learner, which keeps the log but no longer votes",
		Long: `Make the voter ID (its node ID or Raft ID) a learner: it keeps receiving the
log and serving reads, but no longer votes or counts toward the quorum, and
the leader does not promote it again by itself ('shoal node promote' does).
Demoting the leader hands leadership to another voter first. The demotion is
refused (exit code 4) when the other voters would be left without a quorum
of reachable ones. A learner that was to be promoted stays a learner for
good; demoting any other learner changes nothing. It retries while the
cluster has no leader, within --timeout.`,
		Args: exactArgs(1, "a node ID or Raft ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				if err := retryUnavailable(ctx, func() error { return c.DemoteMember(ctx, args[0]) }, nil); err != nil {
					return err
				}
				_, err := fmt.Fprintf(a.stdout, "manager %s is a learner; 'shoal node promote %s' makes it a voter again\n", args[0], args[0])
				return err
			})
		},
	}
}

func newNodeRemoveCommand(a *app) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm ID",
		Aliases: []string{"remove"},
		Short:   "Remove a manager from the cluster for good",
		Long: `Remove a manager, named by its node ID or its Raft ID (see 'shoal node ls').
The removed manager stops; its state directory cannot be used again. The
removal of a voter is refused (exit code 4) when the other voters would be
left without a quorum of reachable ones, unless --force; a learner can
always be removed. It retries while the cluster has no leader, within
--timeout.`,
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
	cmd.Flags().BoolVar(&force, "force", false, "remove it even if the other voters keep no quorum of reachable ones")
	return cmd
}

// removeMember removes a manager, trying again while the cluster is
// unavailable (see retryUnavailable). A retry that finds the member gone,
// or already removed, means an earlier attempt whose outcome was unknown
// went through.
func removeMember(ctx context.Context, c *client.Client, id string, force bool) error {
	return retryUnavailable(ctx, func() error { return c.RemoveMember(ctx, id, force) }, func(err error) bool {
		return client.IsNotFound(err) ||
			status.Code(err) == codes.FailedPrecondition && strings.Contains(status.Convert(err).Message(), "removed")
	})
}

// retryUnavailable calls call until it returns anything but UNAVAILABLE
// (an election, or a leader handing over before it is removed or demoted)
// or ctx ends, waiting 100 ms, doubling up to 1 s, between attempts; it
// returns the last error. An attempt whose outcome was unknown may have gone
// through: when done is given and says so of a retry's error, the call
// succeeded.
func retryUnavailable(ctx context.Context, call func() error, done func(error) bool) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := call()
		if attempt > 1 && err != nil && done != nil && done(err) {
			return nil
		}
		if status.Code(err) != codes.Unavailable {
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
