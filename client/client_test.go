package client

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft/transport"
)

// fakeControl is a Control server that records what it was asked and
// answers from canned values.
type fakeControl struct {
	api.UnimplementedControlServer
	mu          sync.Mutex
	consistency []api.ReadConsistency
	pages       [][]*api.Object
	events      []*api.WatchEvent
	holdWatch   bool // keep a watch open after its events, until the client goes
	err         error
	// listFailures lists fail UNAVAILABLE after sending failAfter pages.
	listFailures, failAfter int
}

func (f *fakeControl) GetObject(_ context.Context, req *api.GetObjectRequest) (*api.GetObjectResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.consistency = append(f.consistency, req.GetConsistency())
	if f.err != nil {
		return nil, f.err
	}
	return &api.GetObjectResponse{Object: &api.Object{Kind: req.GetRef().GetKind(), Name: req.GetRef().GetNameOrId(), Version: 7}}, nil
}

func (f *fakeControl) ListObjects(req *api.ListObjectsRequest, stream grpc.ServerStreamingServer[api.ListObjectsResponse]) error {
	f.mu.Lock()
	f.consistency = append(f.consistency, req.GetConsistency())
	pages := f.pages
	fail := f.listFailures > 0
	f.listFailures--
	f.mu.Unlock()
	for i, p := range pages {
		if fail && i == f.failAfter {
			return status.Error(codes.Unavailable, "the connection broke")
		}
		if err := stream.Send(&api.ListObjectsResponse{Objects: p, Version: 42}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeControl) Watch(req *api.WatchRequest, stream grpc.ServerStreamingServer[api.WatchResponse]) error {
	if req.GetFromVersion() == 1 {
		return status.Error(codes.OutOfRange, "compacted, list again")
	}
	if err := stream.Send(&api.WatchResponse{StartVersion: req.GetFromVersion()}); err != nil {
		return err
	}
	for _, ev := range f.events {
		if err := stream.Send(&api.WatchResponse{Events: []*api.WatchEvent{ev}}); err != nil {
			return err
		}
	}
	if f.holdWatch {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	return status.Error(codes.Unavailable, "the manager is shutting down")
}

// serve runs fake on lis with a health service in state st, with the
// managers' keepalive policy.
func serve(t *testing.T, lis net.Listener, fake api.ControlServer, st healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	srv := grpc.NewServer(transport.ServerOptions()...)
	api.RegisterControlServer(srv, fake)
	h := health.NewServer()
	h.SetServingStatus("", st)
	healthpb.RegisterHealthServer(srv, h)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
}

func tcpServer(t *testing.T, fake api.ControlServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, lis, fake, healthpb.HealthCheckResponse_SERVING)
	return lis.Addr().String()
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNewTriesTheNextAddressWhenOneIsUnreachable(t *testing.T) {
	fake := &fakeControl{}
	c := newClient(t, Config{Addrs: []string{closedAddr(t), tcpServer(t, fake)}})
	obj, err := c.Get(context.Background(), "service", "web")
	if err != nil {
		t.Fatal(err)
	}
	if obj.GetName() != "web" || obj.GetVersion() != 7 {
		t.Fatalf("got %v", obj)
	}
}

func TestNewFailsUnavailable(t *testing.T) {
	notServing, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, notServing, &fakeControl{}, healthpb.HealthCheckResponse_NOT_SERVING)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"nothing listens", Config{Addrs: []string{closedAddr(t)}, DialTimeout: 2 * time.Second}},
		{"no socket file", Config{SocketPath: filepath.Join(t.TempDir(), "control.sock")}},
		{"not serving", Config{Addrs: []string{notServing.Addr().String()}, DialTimeout: 300 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(context.Background(), tt.cfg)
			if !IsUnavailable(err) {
				t.Fatalf("New: %v, want UNAVAILABLE", err)
			}
		})
	}
}

// startingHealth answers NOT_SERVING to the first check, as a manager
// that is starting up does, and SERVING from then on.
type startingHealth struct {
	*health.Server
	calls atomic.Int32
}

func (h *startingHealth) Check(ctx context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	resp, err := h.Server.Check(ctx, req)
	if h.calls.Add(1) == 1 {
		h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	}
	return resp, err
}

// New waits for a manager that is starting up to serve, within its dial
// timeout, instead of failing.
func TestNewWaitsForAManagerThatIsStartingUp(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(transport.ServerOptions()...)
	api.RegisterControlServer(srv, &fakeControl{})
	h := &startingHealth{Server: health.NewServer()}
	h.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, h)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	c, err := New(context.Background(), Config{Addrs: []string{lis.Addr().String()}, DialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("New on a manager that starts serving: %v", err)
	}
	c.Close()
	if n := h.calls.Load(); n < 2 {
		t.Errorf("New checked the manager %d times, want it asked again after NOT_SERVING", n)
	}
}

func TestConfigIsChecked(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"nothing", Config{}},
		{"both", Config{SocketPath: "/x", Addrs: []string{"a:1"}}},
		{"empty address", Config{Addrs: []string{""}}},
		{"negative timeout", Config{Addrs: []string{"a:1"}, DialTimeout: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(context.Background(), tt.cfg); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
}

func TestWithPort(t *testing.T) {
	tests := []struct{ in, want string }{
		{"10.0.0.1", "10.0.0.1:2377"},
		{"10.0.0.1:4000", "10.0.0.1:4000"},
		{"manager-1", "manager-1:2377"},
		{"::1", "[::1]:2377"},
		{"[::1]:4000", "[::1]:4000"},
	}
	for _, tt := range tests {
		got, err := withPort(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("withPort(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestUnixSocket(t *testing.T) {
	dir, err := tempSocketDir(t)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "control.sock")
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, lis, &fakeControl{}, healthpb.HealthCheckResponse_SERVING)
	c := newClient(t, Config{SocketPath: path})
	if _, err := c.Get(context.Background(), "service", "web"); err != nil {
		t.Fatal(err)
	}
	if c.Target() != path {
		t.Fatalf("Target() = %q", c.Target())
	}
}

func TestReadConsistencyReachesTheServer(t *testing.T) {
	fake := &fakeControl{pages: [][]*api.Object{{{Name: "a"}}}}
	c := newClient(t, Config{Addrs: []string{tcpServer(t, fake)}})
	ctx := context.Background()
	if _, err := c.Get(ctx, "k", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(ctx, "k", "a", WithConsistency(Serializable)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.List(ctx, Selector{Kind: "k"}, WithConsistency(Serializable)); err != nil {
		t.Fatal(err)
	}
	want := []api.ReadConsistency{api.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE,
		api.ReadConsistency_READ_CONSISTENCY_SERIALIZABLE, api.ReadConsistency_READ_CONSISTENCY_SERIALIZABLE}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if len(fake.consistency) != len(want) {
		t.Fatalf("consistencies %v, want %v", fake.consistency, want)
	}
	for i := range want {
		if fake.consistency[i] != want[i] {
			t.Fatalf("consistencies %v, want %v", fake.consistency, want)
		}
	}
}

func TestListDrainsEveryPage(t *testing.T) {
	fake := &fakeControl{pages: [][]*api.Object{{{Name: "a"}, {Name: "b"}}, {{Name: "c"}}, {}}}
	c := newClient(t, Config{Addrs: []string{tcpServer(t, fake)}})
	objs, version, err := c.List(context.Background(), Selector{Kind: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 3 || objs[2].GetName() != "c" || version != 42 {
		t.Fatalf("List = %v at %d", objs, version)
	}
}

func TestWatchDeliversEventsThenTheError(t *testing.T) {
	fake := &fakeControl{events: []*api.WatchEvent{
		{Type: api.EventType_EVENT_TYPE_CREATE, Version: 11},
		{Type: api.EventType_EVENT_TYPE_DELETE, Version: 12},
	}}
	c := newClient(t, Config{Addrs: []string{tcpServer(t, fake)}})
	ctx := context.Background()
	if _, err := c.Watch(ctx, Selector{}, 1); !IsConflict(err) {
		t.Fatalf("watch from a compacted version: %v, want a conflict", err)
	}
	w, err := c.Watch(ctx, Selector{Kind: "k"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.StartVersion() != 10 {
		t.Fatalf("StartVersion() = %d", w.StartVersion())
	}
	var versions []uint64
	var last error
	for ev, err := range w.Events() {
		if err != nil {
			last = err
			break
		}
		versions = append(versions, ev.GetVersion())
	}
	if len(versions) != 2 || versions[0] != 11 || versions[1] != 12 {
		t.Fatalf("versions %v", versions)
	}
	if !IsUnavailable(last) {
		t.Fatalf("end of watch: %v, want UNAVAILABLE", last)
	}
}

func TestErrorsKeepTheirCodes(t *testing.T) {
	tests := []struct {
		code                                             codes.Code
		notFound, exists, conflict, invalid, unavailable bool
	}{
		{code: codes.NotFound, notFound: true},
		{code: codes.AlreadyExists, exists: true},
		{code: codes.Aborted, conflict: true},
		{code: codes.FailedPrecondition, conflict: true},
		{code: codes.OutOfRange, conflict: true},
		{code: codes.InvalidArgument, invalid: true},
		{code: codes.Unavailable, unavailable: true},
		{code: codes.DeadlineExceeded, unavailable: true},
		{code: codes.Internal},
	}
	fake := &fakeControl{}
	c := newClient(t, Config{Addrs: []string{tcpServer(t, fake)}})
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			fake.mu.Lock()
			fake.err = status.Error(tt.code, "boom")
			fake.mu.Unlock()
			_, err := c.Get(context.Background(), "k", "a")
			if status.Code(err) != tt.code {
				t.Fatalf("code %v, want %v", status.Code(err), tt.code)
			}
			got := [5]bool{IsNotFound(err), IsExists(err), IsConflict(err), IsInvalid(err), IsUnavailable(err)}
			want := [5]bool{tt.notFound, tt.exists, tt.conflict, tt.invalid, tt.unavailable}
			if got != want {
				t.Fatalf("classified as %v, want %v", got, want)
			}
		})
	}
	if IsNotFound(nil) || IsUnavailable(nil) || IsConflict(nil) {
		t.Fatal("nil classified as an error")
	}
}

// TestWatchFailsWhenTheConnectionGoesSilent freezes the connection under a
// watch, as a manager's machine that vanished would: the keepalive ends
// the watch with UNAVAILABLE, where it would otherwise wait forever.
func TestWatchFailsWhenTheConnectionGoesSilent(t *testing.T) {
	t.Parallel()
	fake := &fakeControl{holdWatch: true, events: []*api.WatchEvent{{Type: api.EventType_EVENT_TYPE_CREATE, Version: 11}}}
	addr, freeze := freezingProxy(t, tcpServer(t, fake))
	c := newClient(t, Config{Addrs: []string{addr}})
	w, err := c.Watch(context.Background(), Selector{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if ev, err := w.Next(); err != nil || ev.GetVersion() != 11 {
		t.Fatalf("first event: %v, %v", ev, err)
	}
	freeze()
	if _, err := w.Next(); !IsUnavailable(err) {
		t.Fatalf("watch over a silent connection ended with %v, want UNAVAILABLE", err)
	}
}

// freezingProxy forwards TCP connections to target until freeze is
// called; from then on it forwards nothing and closes nothing, like a
// network that went silent.
func freezingProxy(t *testing.T, target string) (addr string, freeze func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	frozen := make(chan struct{})
	accepting := make(chan struct{})
	var pipes sync.WaitGroup
	var open []net.Conn // owned by the accepting goroutine until it ends
	t.Cleanup(func() {
		lis.Close()
		<-accepting
		for _, c := range open {
			c.Close()
		}
		pipes.Wait()
	})
	pipe := func(dst, src net.Conn) {
		defer pipes.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if err != nil {
				return
			}
			select {
			case <-frozen:
				continue // read and dropped: nothing gets through
			default:
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
	}
	go func() {
		defer close(accepting)
		for {
			client, err := lis.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			open = append(open, client, server)
			pipes.Add(2)
			go pipe(server, client)
			go pipe(client, server)
		}
	}()
	var once sync.Once
	return lis.Addr().String(), func() { once.Do(func() { close(frozen) }) }
}

// TestListPagesRetriesUntilItHandsOverAPage: a list that fails before its
// first page is retried; one that fails after it has handed pages over
// ends, while List, which hands over nothing before the end, starts again.
func TestListPagesRetriesUntilItHandsOverAPage(t *testing.T) {
	pages := [][]*api.Object{{{Name: "a"}, {Name: "b"}}, {{Name: "c"}}}
	tests := []struct {
		name      string
		failAfter int
		wantCode  codes.Code
		wantPages string
	}{
		{"fails before the first page", 0, codes.OK, "a,b|c"},
		{"fails after the first page", 1, codes.Unavailable, "a,b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &fakeControl{pages: pages, listFailures: 1, failAfter: tt.failAfter}
			c := newClient(t, Config{Addrs: []string{tcpServer(t, fake)}})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var got []string
			err := c.ListPages(ctx, Selector{Kind: "item"}, func(objs []*api.Object, version uint64) error {
				var names []string
				for _, o := range objs {
					names = append(names, o.GetName())
				}
				got = append(got, strings.Join(names, ","))
				return nil
			})
			if status.Code(err) != tt.wantCode || strings.Join(got, "|") != tt.wantPages {
				t.Fatalf("ListPages: pages %q, err %v; want %q, code %v", got, err, tt.wantPages, tt.wantCode)
			}
			fake.mu.Lock()
			fake.listFailures = 1
			fake.mu.Unlock()
			objs, _, err := c.List(ctx, Selector{Kind: "item"})
			if err != nil || len(objs) != 3 {
				t.Fatalf("List after a failure: %d objects, %v; want 3", len(objs), err)
			}
		})
	}
}
