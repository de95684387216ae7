package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/client"
	"github.com/shoal-project/shoal/health"
)

func newDoctorCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Diagnose the cluster from any manager, even without a quorum",
		Long: `Diagnose the cluster: the called manager asks every other manager for its
own view directly (never through the leader, so it works without a
quorum): whether it answers, its Raft state, term, leader, commit and
applied indexes, whom it reaches, its certificate's expiry, how long its
WAL's fsyncs take (the mean over the last minute) and its clock.
doctor says whether the cluster is healthy, and if not, why, in plain
words: why there is no leader, which manager is down, locked, behind or
cut off. Without a quorum it names the surviving manager whose log is the
most up to date: the safest to restart with --force-new-cluster.

Exit code 0: healthy. 1: degraded (it takes writes, but a manager is down,
locked, behind or its certificate expired). 5: unavailable (no leader or no
quorum), or no manager answered.`,
		Example: `  shoal doctor
  shoal doctor --socket /var/lib/shoal/control.sock -o json`,
		Args: exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := parseFormat(output)
			if err != nil {
				return err
			}
			report, err := a.gatherReport(cmd.Context())
			if err != nil {
				return err
			}
			d := health.Diagnose(report, health.DefaultOptions())
			if err := writeDiagnosis(a.stdout, f, report, d); err != nil {
				return err
			}
			switch d.Status {
			case health.Healthy:
				return nil
			case health.Degraded:
				return errors.New("the cluster is degraded: " + d.Problems[0])
			}
			return status.Error(codes.Unavailable, d.Summary)
		},
	}
	a.addConnFlags(cmd, false)
	addOutputFlag(cmd, &output, formatTable)
	return cmd
}

// gatherReport asks the manager the flags name for every manager's view.
// A manager on a control socket that waits for its unlock key is reported
// as locked.
func (a *app) gatherReport(ctx context.Context) (health.Report, error) {
	var resp *api.GetClusterHealthResponse
	err := a.withClient(ctx, func(ctx context.Context, c *client.Client) error {
		var err error
		resp, err = c.Control().GetClusterHealth(ctx, &api.GetClusterHealthRequest{})
		return err
	})
	if err == nil {
		return health.FromAPI(resp, time.Now()), nil
	}
	cfg, cerr := a.clientConfig()
	if cerr != nil || cfg.SocketPath == "" || !isLocked(ctx, cfg.SocketPath) {
		return health.Report{}, err
	}
	return health.Report{At: time.Now(), Managers: []health.View{{Addr: cfg.SocketPath, NodeID: "this manager", Locked: true}}}, nil
}

// isLocked reports whether the manager on socket serves only the Unlock
// service: an empty key is refused as malformed, and changes nothing.
func isLocked(ctx context.Context, socket string) bool {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = api.NewUnlockClient(conn).Unlock(ctx, &api.UnlockRequest{})
	return status.Code(err) == codes.InvalidArgument
}

// writeDiagnosis prints the diagnosis and the views it came from.
func writeDiagnosis(w io.Writer, f format, r health.Report, d health.Diagnosis) error {
	if f != formatTable {
		return writeStructured(w, f, struct {
			Diagnosis health.Diagnosis `json:"diagnosis"`
			Report    health.Report    `json:"report"`
		}{d, r})
	}
	fmt.Fprintln(w, d.Summary)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE ID\tRAFT ID\tADDRESS\tSUFFRAGE\tSTATE\tTERM\tLEADER\tCOMMIT\tAPPLIED\tREACHES\tCERTIFICATE EXPIRES\tFSYNC\tROUND TRIP")
	names := map[uint64]string{}
	for _, v := range r.Managers {
		names[v.RaftID] = v.Name()
	}
	for _, v := range r.Managers {
		suffrage := "voter"
		if v.Learner {
			suffrage = "learner"
		}
		row := []any{v.Name(), hexOrDash(v.RaftID), v.Addr, suffrage}
		switch {
		case v.Locked:
			row = append(row, "locked", "-", "-", "-", "-", "-", "-", "-", "-")
		case v.Error != "":
			row = append(row, "no answer", "-", "-", "-", "-", "-", "-", "-", "-")
		default:
			leader := "none"
			if v.Leader != 0 {
				leader = names[v.Leader]
				if leader == "" {
					leader = hexOrDash(v.Leader)
				}
			}
			rtt := "-"
			if v.RaftID != r.GatheredBy {
				rtt = v.RoundTrip.Round(10 * time.Microsecond).String()
			}
			fsync := "-"
			if v.Fsync > 0 {
				fsync = v.Fsync.Round(10 * time.Microsecond).String()
			}
			row = append(row, v.State, v.Term, leader, v.Commit, v.Applied,
				fmt.Sprintf("%d/%d", v.Reaches, v.Members), expiry(v.CertExpiry, r.At), fsync, rtt)
		}
		for i, c := range row {
			sep := "\t"
			if i == len(row)-1 {
				sep = "\n"
			}
			fmt.Fprint(tw, c, sep)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	section := func(title string, lines []string) {
		if len(lines) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, l := range lines {
			fmt.Fprintf(w, "  - %s\n", l)
		}
	}
	section("problems", d.Problems)
	section("warnings", d.Warnings)
	if d.Recovery != "" {
		fmt.Fprintf(w, "\nwhat to do: %s\n", d.Recovery)
	}
	return nil
}

func hexOrDash(id uint64) string {
	if id == 0 {
		return "-"
	}
	return raftID(id)
}

func expiry(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	left := t.Sub(now).Round(time.Hour)
	if left <= 0 {
		return "expired " + t.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("in %s (%s)", left, t.UTC().Format("2006-01-02"))
}
