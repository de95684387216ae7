package ca

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/shoal-project/shoal/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The probe service stands for the services the manager will register: its
// methods answer with a description of the caller the Authorizer decided
// on, and of the certificate the peer presented.
const (
	probeService       = "shoal.test.Probe"
	probeManagerOnly   = "/" + probeService + "/ManagerOnly"
	probeClientAllowed = "/" + probeService + "/ClientAllowed"
	probeUnlisted      = "/" + probeService + "/Unlisted"
	probeRelay         = "/" + probeService + "/Relay"
	probeManagerStream = "/" + probeService + "/ManagerStream"
)

// probePolicy is the Policy of the probe service; Unlisted has no rule.
func probePolicy() Policy {
	return Policy{
		probeManagerOnly:   AllowRoles(RoleManager),
		probeClientAllowed: AllowRoles(append([]Role{RoleManager}, ClientRoles...)...),
		probeRelay:         AllowRoles(RoleClient),
		probeManagerStream: AllowRoles(RoleManager),
	}
}

// probeServer implements the probe service. Relay forwards the call to
// ClientAllowed through forward, as a follower forwards to the leader.
type probeServer struct {
	mu         sync.Mutex
	forward    *grpc.ClientConn
	calls      int
	lastSerial string // of the last peer certificate seen
}

func (p *probeServer) describe(ctx context.Context) string {
	p.mu.Lock()
	p.calls++
	if pr, ok := peer.FromContext(ctx); ok {
		if info, ok := pr.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			p.lastSerial = info.State.PeerCertificates[0].SerialNumber.String()
		}
	}
	p.mu.Unlock()
	c, ok := CallerFromContext(ctx)
	if !ok {
		return "anonymous"
	}
	return fmt.Sprintf("node=%s role=%s fwd=%s", c.NodeID, c.Role, c.ForwardedBy)
}

func (p *probeServer) lastPeerSerial() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastSerial
}

func (p *probeServer) callCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

func (p *probeServer) handle(ctx context.Context, method string, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	if method != probeRelay {
		return wrapperspb.String(p.describe(ctx)), nil
	}
	fctx, err := ForwardingContext(ctx)
	if err != nil {
		return nil, err
	}
	out := new(wrapperspb.StringValue)
	err = p.forward.Invoke(fctx, probeClientAllowed, in, out)
	return out, err
}

func probeUnary(method string) grpc.MethodHandler {
	return func(srv any, ctx context.Context, dec func(any) error, icpt grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.StringValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, req any) (any, error) {
			return srv.(*probeServer).handle(ctx, method, req.(*wrapperspb.StringValue))
		}
		return icpt(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: method}, h)
	}
}

var probeStreamDesc = grpc.StreamDesc{
	StreamName:    "ManagerStream",
	ServerStreams: true,
	ClientStreams: true,
	Handler: func(srv any, ss grpc.ServerStream) error {
		in := new(wrapperspb.StringValue)
		if err := ss.RecvMsg(in); err != nil {
			return err
		}
		return ss.SendMsg(wrapperspb.String(srv.(*probeServer).describe(ss.Context())))
	},
}

var probeDesc = grpc.ServiceDesc{
	ServiceName: probeService,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "ManagerOnly", Handler: probeUnary(probeManagerOnly)},
		{MethodName: "ClientAllowed", Handler: probeUnary(probeClientAllowed)},
		{MethodName: "Unlisted", Handler: probeUnary(probeUnlisted)},
		{MethodName: "Relay", Handler: probeUnary(probeRelay)},
	},
	Streams: []grpc.StreamDesc{probeStreamDesc},
}

// recorder keeps every request that reached the server, before any
// authorisation: what a rogue manager would see.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	text := info.FullMethod
	if m, ok := req.(proto.Message); ok {
		text += " " + prototext.Format(m)
	}
	r.mu.Lock()
	r.seen = append(r.seen, text)
	r.mu.Unlock()
	return h(ctx, req)
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// testManager is one manager of a test cluster on a loopback listener:
// TLS from ServerTLSConfig, the Authorizer, the CA service and the probe.
type testManager struct {
	root      *RootCA
	authority *memAuthority
	denyList  *memDenyList
	holder    *CertificateHolder
	probe     *probeServer
	recorder  *recorder
	clock     clockwork.Clock
	addr      string
}

type managerOptions struct {
	clusterID string
	clock     clockwork.Clock
	validity  time.Duration
}

func startManager(t *testing.T, opts managerOptions) *testManager {
	t.Helper()
	if opts.clusterID == "" {
		opts.clusterID = "cluster-" + NewID()[:6]
	}
	if opts.clock == nil {
		opts.clock = clockwork.NewRealClock()
	}
	if opts.validity == 0 {
		opts.validity = testValidity
	}
	now := opts.clock.Now()
	root, err := CreateRootCA(opts.clusterID, now)
	if err != nil {
		t.Fatalf("CreateRootCA: %v", err)
	}
	kp, err := root.NewKeyPair(NewID(), RoleManager, now.Add(-opts.validity/10), now.Add(opts.validity))
	if err != nil {
		t.Fatalf("NewKeyPair: %v", err)
	}
	m := &testManager{
		root:      root,
		authority: newMemAuthority(root),
		denyList:  &memDenyList{},
		holder:    newHolder(t, kp),
		probe:     &probeServer{},
		recorder:  &recorder{},
		clock:     opts.clock,
	}
	logger := testLogger(t)
	tlsCfg, err := ServerTLSConfig(root, m.holder)
	if err != nil {
		t.Fatalf("ServerTLSConfig: %v", err)
	}
	policy := CAPolicy()
	for k, v := range probePolicy() {
		policy[k] = v
	}
	authz, err := NewAuthorizer(AuthorizerConfig{Policy: policy, DenyList: m.denyList, Revoked: m.denyList, Logger: logger})
	if err != nil {
		t.Fatalf("NewAuthorizer: %v", err)
	}
	caSrv, err := NewServer(ServerConfig{Authority: m.authority, Clock: opts.clock, Logger: logger, CertificateValidity: opts.validity})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.ChainUnaryInterceptor(m.recorder.unary, authz.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(authz.StreamServerInterceptor()))
	api.RegisterCAServer(srv, caSrv)
	srv.RegisterService(&probeDesc, m.probe)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	m.addr = lis.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	// Relay forwards over a manager connection to this same server; a
	// follower would dial the leader the same way.
	m.probe.forward = dial(t, m.addr, ClientTLSConfig(root, m.holder))
	return m
}

// dial connects to addr with cfg; a nil cfg dials plain TCP.
func dial(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	creds := insecure.NewCredentials()
	if cfg != nil {
		creds = credentials.NewTLS(cfg)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// callProbe calls a unary probe method and returns its answer.
func callProbe(ctx context.Context, conn *grpc.ClientConn, method string, opts ...grpc.CallOption) (string, error) {
	out := new(wrapperspb.StringValue)
	if err := conn.Invoke(ctx, method, wrapperspb.String("hello"), out, opts...); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// callStream opens the probe stream, sends one message and reads the answer.
func callStream(ctx context.Context, conn *grpc.ClientConn) (string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := conn.NewStream(ctx, &probeStreamDesc, probeManagerStream)
	if err != nil {
		return "", err
	}
	if err := s.SendMsg(wrapperspb.String("hello")); err != nil {
		// The server's refusal arrives on RecvMsg.
		if !errors.Is(err, io.EOF) {
			return "", err
		}
	}
	out := new(wrapperspb.StringValue)
	if err := s.RecvMsg(out); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// serverCertSerial calls GetRootCACertificate over conn and returns the
// serial number of the certificate the server presented.
func serverCertSerial(ctx context.Context, t *testing.T, conn *grpc.ClientConn) string {
	t.Helper()
	var p peer.Peer
	if _, err := api.NewCAClient(conn).GetRootCACertificate(ctx, &api.GetRootCACertificateRequest{}, grpc.Peer(&p)); err != nil {
		t.Fatalf("GetRootCACertificate: %v", err)
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		t.Fatalf("peer auth info %T is not TLS", p.AuthInfo)
	}
	return info.State.PeerCertificates[0].SerialNumber.String()
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// testLogger writes through t.Log, so logs show only when a test fails.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
