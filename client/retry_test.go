package client

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/api"
)

// flakyControl fails the first calls of each method with the errors in
// fail, then serves; a create that fails may still have stored its
// object (committed), as a leader that dies after committing does.
type flakyControl struct {
	api.UnimplementedControlServer
	mu       sync.Mutex
	fail     []error
	commit   bool        // a failed create stores its object all the same
	existing *api.Object // taken by another writer before the test
	stored   map[string]*api.Object
	calls    map[string]int
}

func (f *flakyControl) nextError(method string) error {
	f.calls[method]++
	if len(f.fail) == 0 {
		return nil
	}
	err := f.fail[0]
	f.fail = f.fail[1:]
	return err
}

func (f *flakyControl) CreateObject(_ context.Context, req *api.CreateObjectRequest) (*api.CreateObjectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := req.GetObject()
	err := f.nextError("create")
	if _, taken := f.stored[o.GetName()]; taken && err == nil {
		return nil, status.Error(codes.AlreadyExists, "the name is taken")
	}
	if err == nil || f.commit {
		now := timestamppb.Now()
		f.stored[o.GetName()] = &api.Object{Kind: o.GetKind(), Name: o.GetName(), Labels: o.GetLabels(), Spec: o.GetSpec(),
			Id: "id-" + o.GetName(), Version: 9, CreatedAt: now, UpdatedAt: now}
	}
	if err != nil {
		return nil, err
	}
	return &api.CreateObjectResponse{Object: f.stored[o.GetName()]}, nil
}

func (f *flakyControl) GetObject(_ context.Context, req *api.GetObjectRequest) (*api.GetObjectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls["get"]++
	o, ok := f.stored[req.GetRef().GetNameOrId()]
	if !ok {
		return nil, status.Error(codes.NotFound, "no such object")
	}
	return &api.GetObjectResponse{Object: o}, nil
}

func (f *flakyControl) DeleteObject(context.Context, *api.DeleteObjectRequest) (*api.DeleteObjectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.nextError("delete"); err != nil {
		return nil, err
	}
	return &api.DeleteObjectResponse{Version: 10}, nil
}

func notApplied() error {
	return api.NotApplied(status.New(codes.Unavailable, "raft: no leader")).Err()
}

func unknownOutcome() error {
	return status.Error(codes.Unavailable, "raft: leadership lost while waiting; the entry may still be committed")
}

func TestCreateRetriesAndRecognisesItsOwnObject(t *testing.T) {
	hourAgo := timestamppb.New(time.Now().Add(-time.Hour))
	older := &api.Object{Kind: "item", Name: "a", Spec: []byte(`{"n":1}`), Id: "other", CreatedAt: hourAgo, UpdatedAt: hourAgo}
	tests := []struct {
		name       string
		fail       []error
		commit     bool
		existing   *api.Object
		wantCode   codes.Code
		wantID     string
		wantCreate int
	}{
		{"no leader, then a leader", []error{notApplied(), notApplied()}, false, nil, codes.OK, "id-a", 3},
		// Not created again: the first attempt may have created the
		// object and another caller deleted it since; a second create
		// would create it twice.
		{"outcome unknown, not found: still unknown", []error{unknownOutcome()}, false, nil, codes.Unavailable, "", 1},
		{"outcome unknown, committed: the read finds its own object", []error{unknownOutcome()}, true, nil, codes.OK, "id-a", 1},
		{"taken before by another writer", nil, false, older, codes.AlreadyExists, "", 1},
		{"outcome unknown, and the name was taken before: still unknown", []error{unknownOutcome()}, false, older, codes.Unavailable, "", 1},
		{"another error is not retried", []error{status.Error(codes.InvalidArgument, "bad name")}, false, nil, codes.InvalidArgument, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &flakyControl{fail: tt.fail, commit: tt.commit, stored: map[string]*api.Object{}, calls: map[string]int{}}
			if tt.existing != nil {
				fake.stored[tt.existing.GetName()] = tt.existing
			}
			c := newClient(t, Config{Addrs: []string{tcpServer(t, fake)}})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			got, err := c.Create(ctx, &api.Object{Kind: "item", Name: "a", Spec: []byte(`{"n":1}`)})
			if status.Code(err) != tt.wantCode {
				t.Fatalf("Create: %v, want code %v", err, tt.wantCode)
			}
			if got.GetId() != tt.wantID {
				t.Errorf("Create returned id %q, want %q", got.GetId(), tt.wantID)
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			if fake.calls["create"] != tt.wantCreate {
				t.Errorf("%d create calls, want %d", fake.calls["create"], tt.wantCreate)
			}
		})
	}
}

func TestDeleteIsRetriedOnlyWhenNothingWasDone(t *testing.T) {
	tests := []struct {
		name      string
		fail      []error
		wantCode  codes.Code
		wantCalls int
	}{
		{"not applied", []error{notApplied()}, codes.OK, 2},
		{"outcome unknown", []error{unknownOutcome()}, codes.Unavailable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &flakyControl{fail: tt.fail, stored: map[string]*api.Object{}, calls: map[string]int{}}
			c := newClient(t, Config{Addrs: []string{tcpServer(t, fake)}})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := c.Delete(ctx, "item", "a", 0); status.Code(err) != tt.wantCode {
				t.Fatalf("Delete: %v, want code %v", err, tt.wantCode)
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			if fake.calls["delete"] != tt.wantCalls {
				t.Errorf("%d delete calls, want %d", fake.calls["delete"], tt.wantCalls)
			}
		})
	}
}

func TestReadsRetryUntilTheirDeadline(t *testing.T) {
	fake := &fakeControl{err: status.Error(codes.Unavailable, "raft: no leader")}
	c := newClient(t, Config{Addrs: []string{tcpServer(t, fake)}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, "item", "a"); status.Code(err) != codes.Unavailable {
		t.Fatalf("Get without a leader: %v, want the last UNAVAILABLE error", err)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.consistency) < 2 {
		t.Errorf("Get was tried %d times within its deadline, want it retried", len(fake.consistency))
	}
}
