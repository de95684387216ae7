package client

import (
	"context"
	"reflect"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
)

// fakeMembership answers the membership calls with err and records each
// call as "method id".
type fakeMembership struct {
	api.UnimplementedControlServer
	mu    sync.Mutex
	calls []string
	err   error
}

func (f *fakeMembership) record(call string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeMembership) ListMembers(context.Context, *api.ListMembersRequest) (*api.ListMembersResponse, error) {
	if err := f.record("ls"); err != nil {
		return nil, err
	}
	return &api.ListMembersResponse{AnsweredBy: 0x1a, Members: []*api.Member{
		{RaftId: 0x1a, NodeId: "a", Role: "leader", Suffrage: "voter", Reachable: true},
		{RaftId: 0x2b, NodeId: "b", Role: "follower", Suffrage: "learner", AutoPromote: true, LastContactMs: 40, MatchIndex: 9, Lag: 3},
	}}, nil
}

func (f *fakeMembership) PromoteMember(_ context.Context, req *api.PromoteMemberRequest) (*api.PromoteMemberResponse, error) {
	return &api.PromoteMemberResponse{}, f.record("promote " + req.GetId())
}

func (f *fakeMembership) DemoteMember(_ context.Context, req *api.DemoteMemberRequest) (*api.DemoteMemberResponse, error) {
	return &api.DemoteMemberResponse{}, f.record("demote " + req.GetId())
}

func (f *fakeMembership) RemoveMember(_ context.Context, req *api.RemoveMemberRequest) (*api.RemoveMemberResponse, error) {
	call := "rm " + req.GetId()
	if req.GetForce() {
		call += " force"
	}
	return &api.RemoveMemberResponse{}, f.record(call)
}

func TestMembershipCalls(t *testing.T) {
	fake := &fakeMembership{}
	c := newClient(t, Config{Addrs: []string{tcpServer(t, fake)}})
	ctx := context.Background()

	members, answeredBy, err := c.Members(ctx)
	if err != nil || answeredBy != 0x1a || len(members) != 2 {
		t.Fatalf("Members: %v, %x, %v", members, answeredBy, err)
	}
	if b := members[1]; b.GetSuffrage() != "learner" || !b.GetAutoPromote() || b.GetLastContactMs() != 40 || b.GetLag() != 3 {
		t.Errorf("the learner arrived as %v", b)
	}

	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"promote", func() error { return c.PromoteMember(ctx, "b") }, "promote b"},
		{"demote", func() error { return c.DemoteMember(ctx, "2b") }, "demote 2b"},
		{"remove", func() error { return c.RemoveMember(ctx, "b", false) }, "rm b"},
		{"remove by force", func() error { return c.RemoveMember(ctx, "b", true) }, "rm b force"},
	}
	for _, refusal := range []error{nil, status.Error(codes.FailedPrecondition, "would leave the other voters without a reachable quorum")} {
		for _, tt := range tests {
			t.Run(tt.name+"/"+status.Code(refusal).String(), func(t *testing.T) {
				fake.mu.Lock()
				fake.calls, fake.err = nil, refusal
				fake.mu.Unlock()
				err := tt.call()
				if status.Code(err) != status.Code(refusal) || (refusal != nil && !IsConflict(err)) {
					t.Errorf("got %v, want %v", err, refusal)
				}
				fake.mu.Lock()
				defer fake.mu.Unlock()
				if !reflect.DeepEqual(fake.calls, []string{tt.want}) {
					t.Errorf("the server was asked %q, want %q", fake.calls, tt.want)
				}
			})
		}
	}
}
