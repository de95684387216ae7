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
// object (committed), as a leader that dies after committing does. Like
// the store, it answers a create that repeats the request ID of one it
// stored with that object, unless it forgets request IDs.
type flakyControl struct {
	api.UnimplementedControlServer
	mu         sync.Mutex
	fail       []error
	commit     bool        // a failed create stores its object all the same
	existing   *api.Object // taken by another writer before the test
	forget     bool        // request IDs are not remembered
	stored     map[string]*api.Object
	calls      map[string]int
	requestIDs map[string]map[string]bool // per method, the request IDs seen
	created    map[string]*api.Object     // by request ID
}

func newFlaky(fail []error) *flakyControl {
	return &flakyControl{fail: fail, stored: map[string]*api.Object{}, calls: map[string]int{},
		requestIDs: map[string]map[string]bool{}, created: map[string]*api.Object{}}
}

func (f *flakyControl) sawRequest(method string, id []byte) {
	if f.requestIDs[method] == nil {
		f.requestIDs[method] = map[string]bool{}
	}
	f.requestIDs[method][string(id)] = true
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
	f.sawRequest("create", req.GetRequestId())
	err := f.nextError("create")
	if first, ok := f.created[string(req.GetRequestId())]; ok && err == nil && !f.forget {
		return &api.CreateObjectResponse{Object: first}, nil
	}
	if _, taken := f.stored[o.GetName()]; taken && err == nil {
		return nil, status.Error(codes.AlreadyExists, "the name is taken")
	}
	if err == nil || f.commit {
		now := timestamppb.Now()
		f.stored[o.GetName()] = &api.Object{Kind: o.GetKind(), Name: o.GetName(), Labels: o.GetLabels(), Spec: o.GetSpec(),
			Id: "id-" + o.GetName(), Version: 9, CreatedAt: now, UpdatedAt: now}
		f.created[string(req.GetRequestId())] = f.stored[o.GetName()]
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

func (f *flakyControl) DeleteObject(_ context.Context, req *api.DeleteObjectRequest) (*api.DeleteObjectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sawRequest("delete", req.GetRequestId())
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
		forget     bool
		wantCode   codes.Code
		wantID     string
		wantCreate int
	}{
		{"no leader, then a leader", []error{notApplied(), notApplied()}, false, nil, false, codes.OK, "id-a", 3},
		{"outcome unknown, not applied: the retry creates it", []error{unknownOutcome()}, false, nil, false, codes.OK, "id-a", 2},
		{"outcome unknown, committed: the retry is answered as a repeat", []error{unknownOutcome()}, true, nil, false, codes.OK, "id-a", 2},
		{"taken before by another writer", nil, false, older, false, codes.AlreadyExists, "", 1},
		// The retry finds the name taken, and the object is not the
		// one this create wrote: the first attempt's outcome stays
		// unknown.
		{"outcome unknown, and the name was taken before: still unknown", []error{unknownOutcome()}, false, older, false, codes.Unavailable, "", 2},
		// The request ID was forgotten: the read finds the object.
		{"outcome unknown, committed, forgotten: the read finds its own object", []error{unknownOutcome()}, true, nil, true, codes.OK, "id-a", 2},
		{"another error is not retried", []error{status.Error(codes.InvalidArgument, "bad name")}, false, nil, false, codes.InvalidArgument, "", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFlaky(tt.fail)
			fake.commit, fake.forget = tt.commit, tt.forget
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
			if ids := fake.requestIDs["create"]; len(ids) != 1 || ids[""] {
				t.Errorf("the attempts carried %d request IDs (empty: %v), want one, the same for every attempt", len(ids), ids[""])
			}
		})
	}
}

// TestDeleteIsRetriedUnderOneRequestID: the store answers a repeat of a
// deletion it applied, so an unknown outcome is retried too.
func TestDeleteIsRetriedUnderOneRequestID(t *testing.T) {
	tests := []struct {
		name      string
		fail      []error
		wantCode  codes.Code
		wantCalls int
	}{
		{"not applied", []error{notApplied()}, codes.OK, 2},
		{"outcome unknown", []error{unknownOutcome()}, codes.OK, 2},
		{"another error is not retried", []error{status.Error(codes.PermissionDenied, "no")}, codes.PermissionDenied, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newFlaky(tt.fail)
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
			if ids := fake.requestIDs["delete"]; len(ids) != 1 || ids[""] {
				t.Errorf("the attempts carried %d request IDs (empty: %v), want one, the same for every attempt", len(ids), ids[""])
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
