package manager

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
)

func TestWritesThroughAFollowerAreReadEverywhere(t *testing.T) {
	ms := startCluster(t, 3)
	leader := leaderOf(t, ms)
	var follower *testManager
	for _, tm := range ms {
		if tm != leader {
			follower = tm
		}
	}
	ctx := context.Background()
	created, err := follower.dial().CreateObject(ctx, &api.CreateObjectRequest{Object: &api.Object{
		Kind: "service", Name: "web", Labels: map[string]string{"tier": "front"}, Spec: []byte(`{"replicas":3}`)}})
	if err != nil {
		t.Fatalf("create through a follower: %v", err)
	}
	for _, tm := range ms {
		for _, c := range []api.ControlClient{tm.dial(), tm.dialSocket()} {
			got, err := c.GetObject(ctx, &api.GetObjectRequest{Ref: &api.ObjectRef{Kind: "service", NameOrId: "web"}})
			if err != nil {
				t.Fatalf("get from %s: %v", tm.m.Addr(), err)
			}
			if got.GetObject().GetVersion() != created.GetObject().GetVersion() {
				t.Fatalf("version %d, want %d", got.GetObject().GetVersion(), created.GetObject().GetVersion())
			}
		}
	}

	// Update with a stale expected version is refused with ABORTED.
	_, err = follower.dial().UpdateObject(ctx, &api.UpdateObjectRequest{Ref: &api.ObjectRef{Kind: "service", NameOrId: "web"},
		Spec: []byte(`{"replicas":4}`), ExpectedVersion: created.GetObject().GetVersion() + 1000})
	if status.Code(err) != codes.Aborted {
		t.Fatalf("stale update: %v, want ABORTED", err)
	}
	upd, err := follower.dial().UpdateObject(ctx, &api.UpdateObjectRequest{Ref: &api.ObjectRef{Kind: "service", NameOrId: "web"},
		Spec: []byte(`{"replicas":4}`), ExpectedVersion: created.GetObject().GetVersion()})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if string(upd.GetObject().GetSpec()) != `{"replicas":4}` || upd.GetObject().GetLabels()["tier"] != "front" {
		t.Fatalf("updated object %v", upd.GetObject())
	}
	if _, err := follower.dial().CreateObject(ctx, &api.CreateObjectRequest{Object: &api.Object{Kind: "service", Name: "web"}}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate create: %v, want ALREADY_EXISTS", err)
	}
	if _, err := follower.dial().CreateObject(ctx, &api.CreateObjectRequest{Object: &api.Object{Kind: "node", Name: "x"}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("create of a built-in kind: %v, want INVALID_ARGUMENT", err)
	}
	if _, err := follower.dial().DeleteObject(ctx, &api.DeleteObjectRequest{Ref: &api.ObjectRef{Kind: "service", NameOrId: "web"}}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if _, err := leader.dial().GetObject(ctx, &api.GetObjectRequest{Ref: &api.ObjectRef{Kind: "service", NameOrId: "web"}}); status.Code(err) != codes.NotFound {
		t.Fatalf("get after delete: %v, want NOT_FOUND", err)
	}
}

// TestFollowerReadsItsOwnForwardedWrites: a write a follower forwarded to
// the leader is answered only once the follower has applied it, so a
// serializable read on that follower right after sees it. The leader
// answers as soon as it has applied the entry, when the follower may not
// have learnt yet that it is committed.
func TestFollowerReadsItsOwnForwardedWrites(t *testing.T) {
	ms := startCluster(t, 3)
	leader := leaderOf(t, ms)
	var follower *testManager
	for _, tm := range ms {
		if tm != leader {
			follower = tm
		}
	}
	c := follower.dialSocket()
	ctx := context.Background()
	get := func(name string) (*api.Object, error) {
		resp, err := c.GetObject(ctx, &api.GetObjectRequest{Ref: &api.ObjectRef{Kind: "job", NameOrId: name},
			Consistency: api.ReadConsistency_READ_CONSISTENCY_SERIALIZABLE})
		return resp.GetObject(), err
	}
	for i := range 50 {
		name, other := fmt.Sprintf("j%d", i), fmt.Sprintf("t%d", i)
		created, err := c.CreateObject(ctx, &api.CreateObjectRequest{Object: &api.Object{Kind: "job", Name: name}})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if got, err := get(name); err != nil || got.GetVersion() != created.GetObject().GetVersion() {
			t.Fatalf("after creating %s at version %d, a serializable read here gives %v, %v",
				name, created.GetObject().GetVersion(), got, err)
		}

		updated, err := c.UpdateObject(ctx, &api.UpdateObjectRequest{Ref: &api.ObjectRef{Kind: "job", NameOrId: name}, Spec: []byte(`{"n":1}`)})
		if err != nil {
			t.Fatalf("update %s: %v", name, err)
		}
		if got, err := get(name); err != nil || got.GetVersion() != updated.GetObject().GetVersion() {
			t.Fatalf("after updating %s to version %d, a serializable read here gives %v, %v",
				name, updated.GetObject().GetVersion(), got, err)
		}

		tx, err := c.Transaction(ctx, &api.TransactionRequest{Ops: []*api.TransactionOp{
			{Op: &api.TransactionOp_Create{Create: &api.CreateObjectRequest{Object: &api.Object{Kind: "job", Name: other}}}}}})
		if err != nil {
			t.Fatalf("transaction creating %s: %v", other, err)
		}
		if got, err := get(other); err != nil || got.GetVersion() != tx.GetVersion() {
			t.Fatalf("after a transaction created %s at version %d, a serializable read here gives %v, %v",
				other, tx.GetVersion(), got, err)
		}

		if _, err := c.DeleteObject(ctx, &api.DeleteObjectRequest{Ref: &api.ObjectRef{Kind: "job", NameOrId: name}}); err != nil {
			t.Fatalf("delete %s: %v", name, err)
		}
		if got, err := get(name); status.Code(err) != codes.NotFound {
			t.Fatalf("after deleting %s, a serializable read here gives %v, %v; want NOT_FOUND", name, got, err)
		}
	}
}

func TestListIsPagedAndWatchSeesChangesFromOtherManagers(t *testing.T) {
	ms := startCluster(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watcher, err := ms[2].dial().Watch(ctx, &api.WatchRequest{Kind: "job"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := watcher.Recv()
	if err != nil {
		t.Fatal(err)
	}
	const n = 1200
	for i := range n {
		if _, err := ms[i%2].dial().CreateObject(ctx, &api.CreateObjectRequest{Object: &api.Object{Kind: "job", Name: fmt.Sprintf("j%04d", i)}}); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	// A response carries the events waiting when it was sent: one or more.
	last := first.GetStartVersion()
	for i := 0; i < n; {
		resp, err := watcher.Recv()
		if err != nil {
			t.Fatalf("watch after %d events: %v", i, err)
		}
		for _, ev := range resp.GetEvents() {
			if ev.GetVersion() <= last {
				t.Fatalf("event version %d after %d", ev.GetVersion(), last)
			}
			last = ev.GetVersion()
			if want := fmt.Sprintf("j%04d", i); ev.GetObject().GetName() != want || ev.GetType() != api.EventType_EVENT_TYPE_CREATE {
				t.Fatalf("event %d is %v %s, want create %s", i, ev.GetType(), ev.GetObject().GetName(), want)
			}
			i++
		}
	}

	stream, err := ms[1].dial().ListObjects(ctx, &api.ListObjectsRequest{Kind: "job"})
	if err != nil {
		t.Fatal(err)
	}
	got, pages := 0, 0
	for {
		page, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got += len(page.GetObjects())
		pages++
	}
	if got != n || pages < 2 {
		t.Fatalf("list gave %d objects in %d pages, want %d in several", got, pages, n)
	}
}

func TestClusterInfoAndMembers(t *testing.T) {
	ms := startCluster(t, 3)
	ctx := context.Background()
	waitFor(t, "the cluster object and node objects", func() bool {
		info, err := ms[1].dial().GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
		if err != nil || info.GetClusterId() == "" {
			return false
		}
		stream, err := ms[1].dial().ListObjects(ctx, &api.ListObjectsRequest{Kind: "node"})
		if err != nil {
			return false
		}
		page, err := stream.Recv()
		return err == nil && len(page.GetObjects()) == 3
	})
	resp, err := ms[2].dial().ListMembers(ctx, &api.ListMembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	leaders := 0
	for _, m := range resp.GetMembers() {
		if m.GetRole() == "leader" {
			leaders++
		}
	}
	if len(resp.GetMembers()) != 3 || leaders != 1 {
		t.Fatalf("members %v", resp.GetMembers())
	}
}

func TestRemoveMemberStopsIt(t *testing.T) {
	ms := startCluster(t, 3)
	leader := leaderOf(t, ms)
	var victim *testManager
	for _, tm := range ms {
		if tm != leader {
			victim = tm
		}
	}
	_, err := leader.dialAs(ca.RoleAdmin).RemoveMember(context.Background(), &api.RemoveMemberRequest{Id: victim.m.NodeID()})
	if err != nil {
		t.Fatalf("remove: %v", err)
	}
	waitRemoved(t, victim)
}

// waitRemoved waits for a removed manager to stop with an error.
func waitRemoved(t *testing.T, tm *testManager) {
	t.Helper()
	select {
	case err := <-tm.done:
		if err == nil {
			t.Fatal("the removed manager stopped without an error")
		}
		tm.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("the removed manager is still running")
	}
}

func TestRemoveTheLeaderThroughAFollower(t *testing.T) {
	ms := startCluster(t, 3)
	leader := leaderOf(t, ms)
	var follower *testManager
	for _, tm := range ms {
		if tm != leader {
			follower = tm
		}
	}
	if _, err := follower.dialAs(ca.RoleAdmin).RemoveMember(context.Background(), &api.RemoveMemberRequest{Id: leader.m.NodeID()}); err != nil {
		t.Fatalf("removing the leader through a follower: %v", err)
	}
	waitRemoved(t, leader)
	_, err := follower.dialAs(ca.RoleAdmin).RemoveMember(context.Background(), &api.RemoveMemberRequest{Id: leader.m.NodeID()})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("removing it again: %v, want FAILED_PRECONDITION", err)
	}
}

// TestMemberRemovedRightAfterJoiningStops removes a manager before it may
// have received the log that makes it a voter: nobody sends to it any
// more, and it must still find out and stop.
func TestMemberRemovedRightAfterJoiningStops(t *testing.T) {
	ms := startCluster(t, 3)
	leader := leaderOf(t, ms)
	newcomer := startManager(t, joinConfig(t, leader))
	if _, err := leader.dialSocket().RemoveMember(context.Background(), &api.RemoveMemberRequest{Id: newcomer.m.NodeID()}); err != nil {
		t.Fatalf("remove: %v", err)
	}
	waitRemoved(t, newcomer)
}

func TestHTTPServesDashboardMetricsAndHealth(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), "")
	cfg.MetricsAddr = "127.0.0.1:0" // the older name of HTTPAddr
	tm := startManager(t, cfg)
	if _, err := tm.dialSocket().CreateObject(context.Background(), &api.CreateObjectRequest{
		Object: &api.Object{Kind: "service", Name: "web", Spec: []byte(`{"secret":"s3cr3t"}`)}}); err != nil {
		t.Fatal(err)
	}
	base := "http://" + tm.m.HTTPAddr()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(body)
	}
	waitFor(t, "the metrics count the object", func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, `shoal_store_objects{kind="service"} 1`)
	})
	_, metrics := get("/metrics")
	for _, want := range []string{"shoal_raft_is_leader 1", "shoal_raft_has_leader 1", "shoal_raft_members 1",
		"shoal_raft_voters 1", "shoal_store_version", "go_goroutines", "shoal_proposals_committed_total",
		"shoal_apply_duration_seconds_count", "etcd_disk_wal_fsync_duration_seconds_count",
		`grpc_server_handled_total{grpc_code="OK",grpc_method="CreateObject",grpc_service="shoal.v1.Control",grpc_type="unary"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	tests := []struct {
		path     string
		code     int
		contains string
	}{
		{"/healthz", http.StatusOK, "ok"},
		{"/readyz", http.StatusOK, "ok"},
		{"/", http.StatusOK, "shoal dashboard"},
		{"/app.js", http.StatusOK, "EventSource"},
		{"/debug/pprof/", http.StatusNotFound, ""}, // only with Pprof
	}
	for _, tt := range tests {
		code, body := get(tt.path)
		if code != tt.code || !strings.Contains(body, tt.contains) {
			t.Errorf("GET %s: %d %.80q, want %d with %q", tt.path, code, body, tt.code, tt.contains)
		}
	}
	var frame string
	// The views behind the doctor line are gathered every probeInterval,
	// the first of them maybe before the node ran.
	waitFor(t, "a frame with the object and the doctor's views", func() bool {
		_, frame = get("/frame.json")
		return strings.Contains(frame, `"service":1`) && !strings.Contains(frame, "no manager answered")
	})
	for _, want := range []string{`"node_id":"` + tm.m.NodeID() + `"`, `"status":"healthy"`, `"leader":true`} {
		if !strings.Contains(frame, want) {
			t.Errorf("frame lacks %s: %s", want, frame)
		}
	}
	for _, secret := range []string{"s3cr3t", "SHLTKN", "PRIVATE KEY"} {
		if strings.Contains(frame, secret) {
			t.Errorf("the frame shows %q: %s", secret, frame)
		}
	}
}

func TestPprofOnlyWhenAsked(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), "")
	cfg.HTTPAddr, cfg.Pprof = "127.0.0.1:0", true
	tm := startManager(t, cfg)
	resp, err := http.Get("http://" + tm.m.HTTPAddr() + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("pprof: %s", resp.Status)
	}
}

// A stop waits for the calls in flight, not for the Raft streams of the
// peers, which last as long as the peers: with a ShutdownTimeout of an
// hour, a follower and then the leader of a running cluster stop (stop
// fails the test after 30 s).
func TestStopDoesNotWaitForPeerStreams(t *testing.T) {
	ms := startClusterWith(t, 3, func(cfg *Config) { cfg.ShutdownTimeout = time.Hour })
	leader := leaderOf(t, ms)
	for _, tm := range ms {
		if tm != leader {
			if err := tm.stop(); err != nil {
				t.Fatalf("stopping a follower: %v", err)
			}
			break
		}
	}
	if err := leader.stop(); err != nil {
		t.Fatalf("stopping the leader: %v", err)
	}
}
