package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

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
	tests := []struct {
		name   string
		args   []string
		info   *api.GetClusterInfoResponse
		stdout []string // parts of it
		stderr string
		calls  []string
	}{
		{"node ls", []string{"node", "ls"}, nil,
			[]string{"node-c   3c                voter                     follower  no         2s            0            0",
				"node-d   4d                learner (to be promoted)  follower  yes        40ms"},
			warnings, []string{"ls"}},
		{"node ls -o json warns too", []string{"node", "ls", "-o", "json"}, nil,
			[]string{`"suffrage": "learner",` + "\n" + `    "auto_promote": true,`}, warnings, []string{"ls"}},
		{"cluster info asks the leader about the members", []string{"cluster", "info"}, withLeader,
			[]string{"voters:         3 (2 reachable)\n", "learners:       1 (1 reachable, 1 to be promoted)\n"}, warnings, []string{"info", "ls"}},
		{"cluster info without a leader does not ask", []string{"cluster", "info"}, noLeader,
			[]string{"leader:         none"}, "", []string{"info"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeControl{members: voters, answeredBy: 0x1a, info: tt.info}
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
