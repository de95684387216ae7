package main

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
)

// fakeControl answers the membership calls of the Control API with the
// errors it is given, in order (the last one again once they run out), and
// records each call as "method id".
type fakeControl struct {
	api.UnimplementedControlServer
	mu         sync.Mutex
	errs       []error
	calls      []string
	members    []*api.Member
	answeredBy uint64
	info       *api.GetClusterInfoResponse
}

func (f *fakeControl) answer(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	if len(f.errs) == 0 {
		return nil
	}
	err := f.errs[0]
	if len(f.errs) > 1 {
		f.errs = f.errs[1:]
	}
	return err
}

func (f *fakeControl) recorded() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeControl) PromoteMember(_ context.Context, req *api.PromoteMemberRequest) (*api.PromoteMemberResponse, error) {
	return &api.PromoteMemberResponse{}, f.answer("promote " + req.GetId())
}

func (f *fakeControl) DemoteMember(_ context.Context, req *api.DemoteMemberRequest) (*api.DemoteMemberResponse, error) {
	return &api.DemoteMemberResponse{}, f.answer("demote " + req.GetId())
}

func (f *fakeControl) RemoveMember(_ context.Context, req *api.RemoveMemberRequest) (*api.RemoveMemberResponse, error) {
	call := "rm " + req.GetId()
	if req.GetForce() {
		call += " --force"
	}
	return &api.RemoveMemberResponse{}, f.answer(call)
}

func (f *fakeControl) ListMembers(context.Context, *api.ListMembersRequest) (*api.ListMembersResponse, error) {
	if err := f.answer("ls"); err != nil {
		return nil, err
	}
	return &api.ListMembersResponse{Members: f.members, AnsweredBy: f.answeredBy}, nil
}

func (f *fakeControl) GetClusterInfo(context.Context, *api.GetClusterInfoRequest) (*api.GetClusterInfoResponse, error) {
	if err := f.answer("info"); err != nil {
		return nil, err
	}
	return f.info, nil
}

// serveFake serves fake as a manager's control socket would, and returns
// the socket's path.
func serveFake(t *testing.T, fake *fakeControl) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "shoal-cli-") // t.TempDir() may be too long for a socket path
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "control.sock")
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	api.RegisterControlServer(srv, fake)
	healthpb.RegisterHealthServer(srv, health.NewServer()) // serving
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		os.RemoveAll(dir)
	})
	return path
}

func TestNodeMembershipCommands(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "raft: no leader")
	tests := []struct {
		name   string
		args   []string
		errs   []error
		code   int
		stdout string
		stderr string   // a part of the one error line
		calls  []string // nil: one call, args without the command
		// atLeast, when set, is the number of calls the command makes at
		// least, each the same as the first of calls.
		atLeast int
	}{
		{name: "promote", args: []string{"promote", "node-c"},
			stdout: "manager node-c is a voter\n"},
		{name: "promote by Raft ID", args: []string{"promote", "3c"},
			stdout: "manager 3c is a voter\n"},
		{name: "promote retries while there is no leader", args: []string{"promote", "node-c"},
			errs:   []error{unavailable, unavailable, nil},
			stdout: "manager node-c is a voter\n", calls: []string{"promote node-c", "promote node-c", "promote node-c"}},
		{name: "promote of a learner behind is a conflict", args: []string{"promote", "node-c"},
			errs: []error{status.Error(codes.FailedPrecondition, "raft: learner cannot be promoted now: 3c has 30 of 40 entries (probe); wait until it has caught up")},
			code: exitConflict, stderr: "shoal: raft: learner cannot be promoted now: 3c has 30 of 40 entries (probe); wait until it has caught up"},
		{name: "promote of an unknown manager", args: []string{"promote", "nope"},
			errs: []error{status.Error(codes.NotFound, `no manager has the node ID or Raft ID "nope" (see shoal node ls)`)},
			code: exitNotFound, stderr: `no manager has the node ID or Raft ID "nope"`},
		{name: "demote", args: []string{"demote", "node-a"},
			stdout: "manager node-a is a learner; 'shoal node promote node-a' makes it a voter again\n"},
		{name: "demote retries while the leader hands over", args: []string{"demote", "node-a"},
			errs:   []error{status.Error(codes.Unavailable, "raft: leadership transfer failed"), nil},
			stdout: "manager node-a is a learner; 'shoal node promote node-a' makes it a voter again\n",
			calls:  []string{"demote node-a", "demote node-a"}},
		{name: "demote that would lose the quorum is a conflict", args: []string{"demote", "node-b"},
			errs: []error{status.Error(codes.FailedPrecondition, "demoting node-b would leave the other voters without a reachable quorum; bring members back first")},
			code: exitConflict, stderr: "shoal: demoting node-b would leave the other voters without a reachable quorum; bring members back first"},
		{name: "a deadline is not retried", args: []string{"demote", "node-b"},
			errs: []error{status.Error(codes.DeadlineExceeded, "context deadline exceeded")},
			code: exitUnavailable, stderr: "timed out"},
		{name: "demote gives up at --timeout", args: []string{"demote", "node-b", "--timeout", "1s"},
			errs: []error{unavailable}, code: exitUnavailable, stderr: "no leader",
			calls: []string{"demote node-b"}, atLeast: 2},
		{name: "rm", args: []string{"rm", "node-d"}, stdout: "removed manager node-d\n"},
		{name: "rm --force", args: []string{"rm", "node-d", "--force"}, stdout: "removed manager node-d\n"},
		{name: "rm retried finds the manager gone", args: []string{"rm", "node-d"},
			errs:   []error{unavailable, status.Error(codes.NotFound, "no manager has the node ID")},
			stdout: "removed manager node-d\n", calls: []string{"rm node-d", "rm node-d"}},
		{name: "rm retried finds the manager removed", args: []string{"rm", "node-d"},
			errs:   []error{unavailable, status.Error(codes.FailedPrecondition, "manager node-d was removed from the cluster already")},
			stdout: "removed manager node-d\n", calls: []string{"rm node-d", "rm node-d"}},
		{name: "rm of an unknown manager", args: []string{"rm", "node-d"},
			errs: []error{status.Error(codes.NotFound, "no manager has the node ID")}, code: exitNotFound, stderr: "no manager has"},
		{name: "rm that would lose the quorum", args: []string{"rm", "node-b"},
			errs: []error{status.Error(codes.FailedPrecondition, "removing node-b would leave the other managers without a quorum of reachable members; bring members back first, or use --force")},
			code: exitConflict, stderr: "use --force"},
		{name: "promote needs an ID", args: []string{"promote"}, code: exitUsage,
			stderr: "shoal node promote needs a node ID or Raft ID, got 0 argument(s)", calls: []string{}},
		{name: "demote takes one ID", args: []string{"demote", "a", "b"}, code: exitUsage,
			stderr: "shoal node demote needs a node ID or Raft ID, got 2 argument(s)", calls: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeControl{errs: tt.errs}
			sock := serveFake(t, fake)
			code, stdout, stderr := runCLI(t, nil, "", append(append([]string{"node"}, tt.args...), "--socket", sock)...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			if stdout != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout, tt.stdout)
			}
			if tt.stderr == "" && stderr != "" || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q, want %q", stderr, tt.stderr)
			}
			if n := strings.Count(stderr, "\n"); n > 1 {
				t.Errorf("stderr has %d lines, want at most one: %q", n, stderr)
			}
			got := fake.recorded()
			if tt.atLeast > 0 {
				if len(got) < tt.atLeast || slices.ContainsFunc(got, func(c string) bool { return c != tt.calls[0] }) {
					t.Errorf("calls %q, want %q at least %d times", got, tt.calls[0], tt.atLeast)
				}
				return
			}
			want := tt.calls
			if want == nil {
				want = []string{strings.Join(tt.args, " ")}
			}
			if !reflect.DeepEqual(got, want) && !(len(want) == 0 && len(got) == 0) {
				t.Errorf("calls %q, want %q", got, want)
			}
		})
	}
}

func TestRetryUnavailable(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "no leader")
	gone := status.Error(codes.NotFound, "gone")
	isGone := func(err error) bool { return status.Code(err) == codes.NotFound }
	tests := []struct {
		name  string
		errs  []error
		done  func(error) bool
		want  codes.Code
		calls int
	}{
		{"success", []error{nil}, nil, codes.OK, 1},
		{"another error is not retried", []error{status.Error(codes.FailedPrecondition, "quorum")}, nil, codes.FailedPrecondition, 1},
		{"a deadline is not retried", []error{status.Error(codes.DeadlineExceeded, "slow")}, nil, codes.DeadlineExceeded, 1},
		{"unavailable is retried", []error{unavailable, unavailable, nil}, nil, codes.OK, 3},
		{"a retry that finds it done succeeds", []error{unavailable, gone}, isGone, codes.OK, 2},
		{"a first attempt that finds it done fails", []error{gone}, isGone, codes.NotFound, 1},
		{"without done, a retry's error is returned", []error{unavailable, gone}, nil, codes.NotFound, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			err := retryUnavailable(context.Background(), func() error {
				calls++
				return tt.errs[min(calls, len(tt.errs))-1]
			}, tt.done)
			if status.Code(err) != tt.want || calls != tt.calls {
				t.Errorf("got %v after %d calls, want %v after %d", err, calls, tt.want, tt.calls)
			}
		})
	}
	t.Run("gives up when the context ends", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
		defer cancel()
		calls := 0
		err := retryUnavailable(ctx, func() error { calls++; return unavailable }, nil)
		if !errors.Is(err, unavailable) || calls < 2 {
			t.Errorf("got %v after %d calls, want the last unavailable error after at least 2", err, calls)
		}
	})
}

func TestNodeListAndClusterInfoWarn(t *testing.T) {
	voters := []*api.Member{
		{RaftId: 0x1a, NodeId: "node-a", Role: "leader", Reachable: true, Suffrage: "voter"},
		{RaftId: 0x2b, NodeId: "node-b", Role: "follower", Reachable: true, Suffrage: "voter"},
		{RaftId: 0x3c, NodeId: "node-c", Role: "follower", Reachable: false, Suffrage: "voter", LastContactMs: 2500},
		{RaftId: 0x4d, NodeId: "node-d", Role: "follower", Reachable: true, Suffrage: "learner", AutoPromote: true, LastContactMs: 40},
	}
	const warnings = "warning: only 2 of 3 voting managers are reachable: one more failure loses the quorum\n" +
		"warning: learner node-d is to be promoted to a voter once it has caught up; until then it counts toward no quorum\n"
	withLeader := &api.GetClusterInfoResponse{ClusterId: "c0ffee", Manager: voters[1], LeaderRaftId: 0x1a, Members: 4, ReachableMembers: 3}
	noLeader := &api.GetClusterInfoResponse{ClusterId: "c0ffee", Manager: voters[1], Members: 4, ReachableMembers: 1}
	// Without a leader, node-b answers with its own view: it reaches no one.
	localView := []*api.Member{
		{RaftId: 0x1a, NodeId: "node-a", Role: "follower", Suffrage: "voter", LastContactMs: 3000},
		{RaftId: 0x2b, NodeId: "node-b", Role: "follower", Reachable: true, Suffrage: "voter"},
		{RaftId: 0x3c, NodeId: "node-c", Role: "follower", Suffrage: "voter", LastContactMs: -1},
	}
	const localWarnings = "warning: no leader answered: this is manager node-b's own view of the cluster (whom it reaches, when it last heard from each); match index and lag are unknown\n" +
		"warning: only 1 of 3 voting managers are reachable, fewer than the 2 a quorum needs: the cluster accepts no writes until they are back (if they are lost for good, see 'shoal manager --force-new-cluster')\n"
	tests := []struct {
		name       string
		args       []string
		info       *api.GetClusterInfoResponse
		members    []*api.Member // default: voters, answered by node-a
		answeredBy uint64
		stdout     []string // parts of it
		stderr     string
		calls      []string
	}{
		{"node ls", []string{"node", "ls"}, nil, nil, 0,
			[]string{"node-c   3c                voter                     follower  no         2s            0            0",
				"node-d   4d                learner (to be promoted)  follower  yes        40ms"},
			warnings, []string{"ls"}},
		{"node ls -o json warns too", []string{"node", "ls", "-o", "json"}, nil, nil, 0,
			[]string{`"suffrage": "learner",` + "\n" + `    "auto_promote": true,`}, warnings, []string{"ls"}},
		{"cluster info asks the leader about the members", []string{"cluster", "info"}, withLeader, nil, 0,
			[]string{"voters:         3 (2 reachable)\n", "learners:       1 (1 reachable, 1 to be promoted)\n"}, warnings, []string{"info", "ls"}},
		{"node ls without a leader says whose view it is", []string{"node", "ls"}, nil, localView, 0x2b,
			[]string{"node-c   3c       ", "never"}, localWarnings, []string{"ls"}},
		{"cluster info without a leader warns from the local view", []string{"cluster", "info"}, noLeader, localView, 0x2b,
			[]string{"leader:         none", "voters:         3 (1 reachable)\n"}, localWarnings, []string{"info", "ls"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeControl{members: voters, answeredBy: 0x1a, info: tt.info}
			if tt.members != nil {
				fake.members, fake.answeredBy = tt.members, tt.answeredBy
			}
			sock := serveFake(t, fake)
			code, stdout, stderr := runCLI(t, nil, "", append(tt.args, "--socket", sock)...)
			if code != exitOK {
				t.Fatalf("exit code %d; stderr: %s", code, stderr)
			}
			for _, want := range tt.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout does not hold %q:\n%s", want, stdout)
				}
			}
			if stderr != tt.stderr {
				t.Errorf("stderr:\n%s\nwant:\n%s", stderr, tt.stderr)
			}
			if got := fake.recorded(); !reflect.DeepEqual(got, tt.calls) {
				t.Errorf("calls %q, want %q", got, tt.calls)
			}
		})
	}
}

func TestNodeHelpNamesEveryCommand(t *testing.T) {
	code, out, _ := runCLI(t, nil, "", "node", "--help")
	if code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	for _, want := range []string{"ls ", "promote ", "demote ", "rm ", "transfer-leadership ", "voter", "learner", "--learner"} {
		if !strings.Contains(out, want) {
			t.Errorf("node --help does not say %q:\n%s", want, out)
		}
	}
}
