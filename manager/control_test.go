package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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

// TestWritesRepeatedUnderTheirRequestIDAreAnsweredNotApplied sends each
// write twice with one request ID, the second time through another
// manager, as a client retries one whose outcome it did not learn: the
// repeat gets the first one's outcome, even where doing it again would
// fail (the object deleted, renamed), and nothing is applied twice.
func TestWritesRepeatedUnderTheirRequestIDAreAnsweredNotApplied(t *testing.T) {
	ms := startCluster(t, 3)
	leader := leaderOf(t, ms)
	var follower *testManager
	for _, tm := range ms {
		if tm != leader {
			follower = tm
			break
		}
	}
	first, second := follower.dialSocket(), leader.dialSocket()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	id := func(s string) []byte { return []byte("request-" + s) }

	create := &api.CreateObjectRequest{Object: &api.Object{Kind: "item", Name: "web", Spec: []byte(`{"n":1}`)}, RequestId: id("create")}
	c1, err := first.CreateObject(ctx, create)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := second.CreateObject(ctx, create)
	if err != nil {
		t.Fatalf("the create repeated: %v, want the first one's object", err)
	}
	if c2.GetObject().GetId() != c1.GetObject().GetId() || c2.GetObject().GetVersion() != c1.GetObject().GetVersion() {
		t.Fatalf("the create repeated gave %v, want %v", c2.GetObject(), c1.GetObject())
	}

	rename := &api.UpdateObjectRequest{Ref: &api.ObjectRef{Kind: "item", NameOrId: "web"}, NewName: proto.String("api"), RequestId: id("rename")}
	u1, err := first.UpdateObject(ctx, rename)
	if err != nil {
		t.Fatal(err)
	}
	u2, err := second.UpdateObject(ctx, rename) // "web" is no more
	if err != nil || u2.GetObject().GetVersion() != u1.GetObject().GetVersion() {
		t.Fatalf("the rename repeated: %v, %v; want version %d", u2.GetObject(), err, u1.GetObject().GetVersion())
	}

	del := &api.DeleteObjectRequest{Ref: &api.ObjectRef{Kind: "item", NameOrId: "api"}, RequestId: id("delete")}
	d1, err := first.DeleteObject(ctx, del)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := second.DeleteObject(ctx, del) // gone
	if err != nil || d2.GetVersion() != d1.GetVersion() {
		t.Fatalf("the deletion repeated: %v, %v; want version %d", d2, err, d1.GetVersion())
	}

	// The same create again is answered as before, though its object is
	// gone and its name free: it is not created a second time.
	c3, err := first.CreateObject(ctx, create)
	if err != nil || c3.GetObject().GetVersion() != c1.GetObject().GetVersion() || c3.GetObject().GetId() != c1.GetObject().GetId() ||
		c3.GetObject().GetName() != "web" || string(c3.GetObject().GetSpec()) != `{"n":1}` {
		t.Fatalf("the create repeated after its deletion: %v, %v; want the object it created", c3.GetObject(), err)
	}
	// A transaction's creates likewise, after their object changed.
	txn := &api.TransactionRequest{RequestId: id("txn"), Ops: []*api.TransactionOp{{Op: &api.TransactionOp_Create{
		Create: &api.CreateObjectRequest{Object: &api.Object{Kind: "item", Name: "t", Spec: []byte(`{"n":2}`)}}}}}}
	t1, err := first.Transaction(ctx, txn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.DeleteObject(ctx, &api.DeleteObjectRequest{Ref: &api.ObjectRef{Kind: "item", NameOrId: "t"}}); err != nil {
		t.Fatal(err)
	}
	t2, err := second.Transaction(ctx, txn)
	if err != nil || t2.GetVersion() != t1.GetVersion() || string(t2.GetObjects()[0].GetSpec()) != `{"n":2}` ||
		t2.GetObjects()[0].GetId() != t1.GetObjects()[0].GetId() {
		t.Fatalf("the transaction repeated: %v, %v; want %v", t2, err, t1)
	}
	list, err := second.ListObjects(ctx, &api.ListObjectsRequest{Kind: "item"})
	if err != nil {
		t.Fatal(err)
	}
	page, err := list.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(page.GetObjects()); n != 0 {
		t.Fatalf("%d items after the deletion, want 0: a repeat was applied", n)
	}
}

// TestListObjectsStreamsPages: a list comes as pages of at most listPage
// objects, read from one state of the store, in name order.
func TestListObjectsStreamsPages(t *testing.T) {
	tm := startCluster(t, 1)[0]
	c := tm.dialSocket()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 2*listPage + 7
	for i := 0; i < n; i += 100 {
		var ops []*api.TransactionOp
		for j := i; j < min(i+100, n); j++ {
			ops = append(ops, &api.TransactionOp{Op: &api.TransactionOp_Create{Create: &api.CreateObjectRequest{
				Object: &api.Object{Kind: "item", Name: fmt.Sprintf("item-%04d", j)}}}})
		}
		if _, err := c.Transaction(ctx, &api.TransactionRequest{Ops: ops}); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := c.ListObjects(ctx, &api.ListObjectsRequest{Kind: "item"})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	var version uint64
	next := 0
	for {
		page, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if version != 0 && page.GetVersion() != version {
			t.Fatalf("pages of versions %d and %d: not one state", version, page.GetVersion())
		}
		version = page.GetVersion()
		sizes = append(sizes, len(page.GetObjects()))
		for _, o := range page.GetObjects() {
			if want := fmt.Sprintf("item-%04d", next); o.GetName() != want {
				t.Fatalf("object %d is %q, want %q", next, o.GetName(), want)
			}
			next++
		}
	}
	if next != n || len(sizes) != 3 || sizes[0] != listPage || sizes[1] != listPage {
		t.Fatalf("pages of %v objects (%d in all), want %d, %d and 7", sizes, next, listPage, listPage)
	}
}

// TestWatchSendsTheEventsAlreadyThereTogether: events that wait for a
// watcher go out in few messages, within the batch's bounds, in order.
func TestWatchSendsTheEventsAlreadyThereTogether(t *testing.T) {
	tm := startCluster(t, 1)[0]
	c := tm.dialSocket()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tests := []struct {
		name    string
		n, size int // objects written, bytes of spec each
		// wantMessages bounds the messages the events come in.
		wantMin, wantMax int
	}{
		{"small events", 300, 10, 2, 2}, // 256 and 44
		{"large events", 12, 200 << 10, 3, 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := c.GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
			if err != nil {
				t.Fatal(err)
			}
			from := info.GetAppliedIndex()
			kind := "k" + fmt.Sprint(tt.size)
			spec := []byte(`{"pad":"` + strings.Repeat("x", tt.size) + `"}`)
			for i := range tt.n {
				if _, err := c.CreateObject(ctx, &api.CreateObjectRequest{Object: &api.Object{Kind: kind, Name: fmt.Sprint(i), Spec: spec}}); err != nil {
					t.Fatal(err)
				}
			}
			wctx, wcancel := context.WithCancel(ctx)
			defer wcancel()
			stream, err := c.Watch(wctx, &api.WatchRequest{Kind: kind, FromVersion: from})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil { // the start
				t.Fatal(err)
			}
			messages, events := 0, 0
			for events < tt.n {
				resp, err := stream.Recv()
				if err != nil {
					t.Fatal(err)
				}
				messages++
				if size := proto.Size(resp); len(resp.GetEvents()) > 1 && size > watchBatchBytes+1024 {
					t.Errorf("a message of %d events and %d bytes, more than %d", len(resp.GetEvents()), size, watchBatchBytes)
				}
				for _, ev := range resp.GetEvents() {
					if ev.GetObject().GetName() != fmt.Sprint(events) {
						t.Fatalf("event %d is for %q", events, ev.GetObject().GetName())
					}
					events++
				}
			}
			if messages < tt.wantMin || messages > tt.wantMax {
				t.Errorf("%d events in %d messages, want %d to %d", events, messages, tt.wantMin, tt.wantMax)
			}
		})
	}
}
