package manager

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/store"
)

// A manager serves its Control API before its Raft node has started and
// replayed its log, so its store may be empty or behind the cluster. A
// write naming an object the store does not hold must then fail as
// unavailable, never answer "not found": the object may well exist. (A
// restarting manager told clients that existing objects did not exist.)
func TestWriteToAnObjectThisManagerCannotConfirmIsNotNotFound(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), "")
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.store, err = store.New(m.storeConfig(), (*proposer)(m)); err != nil {
		t.Fatal(err)
	}
	defer m.store.Close()
	rc := cfg.Raft
	rc.NodeID, rc.StateDir, rc.AdvertiseAddr = "n1", filepath.Join(cfg.StateDir, "raft"), "127.0.0.1:1"
	if m.node, err = raft.NewNode(rc, m.store); err != nil {
		t.Fatal(err)
	}
	s := &controlServer{m: m}
	ref := &api.ObjectRef{Kind: "item", NameOrId: "web"}
	calls := map[string]func(context.Context) error{
		"update": func(ctx context.Context) error {
			_, err := s.UpdateObject(ctx, &api.UpdateObjectRequest{Ref: ref, Spec: []byte(`{}`)})
			return err
		},
		"update with expected version": func(ctx context.Context) error {
			_, err := s.UpdateObject(ctx, &api.UpdateObjectRequest{Ref: ref, Spec: []byte(`{}`), ExpectedVersion: 7})
			return err
		},
		"delete": func(ctx context.Context) error {
			_, err := s.DeleteObject(ctx, &api.DeleteObjectRequest{Ref: ref})
			return err
		},
		"transaction": func(ctx context.Context) error {
			_, err := s.Transaction(ctx, &api.TransactionRequest{Ops: []*api.TransactionOp{
				{Op: &api.TransactionOp_Delete{Delete: &api.DeleteObjectRequest{Ref: ref}}}}})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := call(ctx); status.Code(err) != codes.Unavailable {
				t.Fatalf("before the node started: %v, want UNAVAILABLE", err)
			}
		})
	}
}

func TestForwardedError(t *testing.T) {
	removed := func(id string) error {
		st, err := status.New(codes.PermissionDenied, "removed").WithDetails(&errdetails.ErrorInfo{
			Domain: ca.ErrorDomain, Reason: ca.ReasonNodeRemoved, Metadata: map[string]string{"node_id": id}})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"success", nil, codes.OK},
		{"this manager removed", removed("self"), codes.Unavailable},
		{"the original caller removed", removed("caller"), codes.PermissionDenied},
		{"another refusal", status.Error(codes.PermissionDenied, "role client may not call"), codes.PermissionDenied},
		{"a conflict", status.Error(codes.Aborted, "version conflict"), codes.Aborted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.Code(forwardedError(tt.err, "self")); got != tt.want {
				t.Fatalf("code %v, want %v", got, tt.want)
			}
		})
	}
}

// An update that would change nothing (a label removed that the object
// does not have, the spec it has already) writes no new version; one that
// changes something does, and an expected version still has to match.
func TestUpdateThatChangesNothingWritesNoVersion(t *testing.T) {
	tm := startCluster(t, 1)[0]
	c := tm.dialSocket()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	created, err := c.CreateObject(ctx, &api.CreateObjectRequest{Object: &api.Object{Kind: "item", Name: "web",
		Labels: map[string]string{"a": "1"}, Spec: []byte(`{"n":1}`)}})
	if err != nil {
		t.Fatal(err)
	}
	v := created.GetObject().GetVersion()
	ref := &api.ObjectRef{Kind: "item", NameOrId: "web"}
	tests := []struct {
		name     string
		req      *api.UpdateObjectRequest
		wantCode codes.Code
		changed  bool
	}{
		{"remove a missing label", &api.UpdateObjectRequest{Ref: ref, RemoveLabels: []string{"missing"}}, codes.OK, false},
		{"the same spec and label", &api.UpdateObjectRequest{Ref: ref, Spec: []byte(`{"n":1}`), SetLabels: map[string]string{"a": "1"}}, codes.OK, false},
		{"unchanged, but a stale expected version", &api.UpdateObjectRequest{Ref: ref, RemoveLabels: []string{"missing"}, ExpectedVersion: v - 1}, codes.Aborted, false},
		{"remove a label it has", &api.UpdateObjectRequest{Ref: ref, RemoveLabels: []string{"a"}}, codes.OK, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := c.UpdateObject(ctx, tt.req)
			if status.Code(err) != tt.wantCode {
				t.Fatalf("update: %v, want %v", err, tt.wantCode)
			}
			if err != nil {
				return
			}
			got := resp.GetObject().GetVersion()
			if tt.changed != (got != v) {
				t.Errorf("version %d after the update, was %d: changed %v, want %v", got, v, got != v, tt.changed)
			}
			v = got
		})
	}
}
