package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
)

// DefaultPort is the port of a manager's remote API, used for an address
// given without one.
const DefaultPort = 2377

// Client calls the Control API of one manager at a time. Create it with
// New and Close it when done; it is safe for concurrent use.
type Client struct {
	conn    *grpc.ClientConn
	control api.ControlClient
	health  healthpb.HealthClient
	target  string
}

// New connects to a manager as cfg says and checks that it serves: it
// returns an error with code UNAVAILABLE when no manager answers within
// cfg.DialTimeout or before ctx ends. Later calls reconnect by themselves
// (to the next address of cfg.Addrs when one is down).
func New(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	target, opts, err := dialTarget(cfg)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(target, append(opts, cfg.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	c := &Client{
		conn:    conn,
		control: api.NewControlClient(conn),
		health:  healthpb.NewHealthClient(conn),
		target:  describeTarget(cfg),
	}
	checkCtx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	if err := c.checkServing(checkCtx); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// dialTarget returns the gRPC target and options for cfg.
func dialTarget(cfg Config) (string, []grpc.DialOption, error) {
	if cfg.SocketPath != "" {
		path, err := filepath.Abs(cfg.SocketPath)
		if err != nil {
			return "", nil, fmt.Errorf("client: control socket %s: %w", cfg.SocketPath, err)
		}
		if _, err := os.Stat(path); err != nil {
			msg := fmt.Sprintf("no control socket at %s (is a manager running with that state directory?)", path)
			if errors.Is(err, os.ErrPermission) {
				msg = fmt.Sprintf("no permission to reach the control socket %s (it belongs to the user who runs the manager)", path)
			}
			return "", nil, status.Error(codes.Unavailable, msg)
		}
		return "unix://" + path, append(fixedWindows(), grpc.WithTransportCredentials(insecure.NewCredentials())), nil
	}
	addrs := make([]resolver.Address, 0, len(cfg.Addrs))
	for _, a := range cfg.Addrs {
		addr, err := withPort(a)
		if err != nil {
			return "", nil, err
		}
		addrs = append(addrs, resolver.Address{Addr: addr})
	}
	// A resolver of our own hands gRPC every address at once; its default
	// pick_first policy then tries them in order and reconnects to the
	// next one when a connection breaks.
	managers := manual.NewBuilderWithScheme("shoal")
	managers.InitialState(resolver.State{Addresses: addrs})
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(cfg.TLS)
	}
	return managers.Scheme() + ":///managers", append(fixedWindows(),
		grpc.WithResolvers(managers),
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: KeepaliveTime, Timeout: KeepaliveTimeout}),
	), nil
}

// fixedWindows sets the connection's flow-control windows, as managers set
// theirs (api.StreamWindow): gRPC's default sizes them with a PING each
// time a response arrives after the last PING was answered, which for a
// caller with one call at a time is a PING and its answer for nearly every
// call.
func fixedWindows() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithInitialWindowSize(api.StreamWindow),
		grpc.WithInitialConnWindowSize(api.ConnWindow),
	}
}

// While a call runs (a watch, say) and its connection has been silent for
// KeepaliveTime, the client pings the manager, and it gives the connection
// up when no answer comes within KeepaliveTimeout: the call then fails
// with UNAVAILABLE instead of waiting forever on a manager whose machine or
// network vanished. Managers accept pings this often (raft/transport's
// ServerOptions); gRPC pings no more often than every 10 s. The control
// socket needs none: its peer cannot vanish without closing it.
const (
	KeepaliveTime    = 10 * time.Second
	KeepaliveTimeout = 5 * time.Second
)

// withPort adds DefaultPort to an address that has none.
func withPort(addr string) (string, error) {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr, nil
	}
	if strings.Count(addr, ":") > 1 && !strings.HasPrefix(addr, "[") {
		addr = "[" + addr + "]" // a bare IPv6 address
	}
	with := addr + ":" + strconv.Itoa(DefaultPort)
	if _, _, err := net.SplitHostPort(with); err != nil {
		return "", fmt.Errorf("client: manager address %q is not host or host:port", addr)
	}
	return with, nil
}

func describeTarget(cfg Config) string {
	if cfg.SocketPath != "" {
		return cfg.SocketPath
	}
	return strings.Join(cfg.Addrs, ",")
}

// checkServing asks the health service whether the manager serves. A
// manager that is starting up (it answers NOT_SERVING until it has joined
// its cluster) is asked again until ctx ends; one that cannot be reached is
// reported at once.
func (c *Client) checkServing(ctx context.Context) error {
	delay := retryFirstDelay
	for {
		err := c.checkServingOnce(ctx)
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "is not serving") {
			return err
		}
		if !waitRetry(ctx, &delay) {
			return err
		}
	}
}

func (c *Client) checkServingOnce(ctx context.Context) error {
	resp, err := c.health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		switch status.Code(err) {
		case codes.DeadlineExceeded:
			return status.Errorf(codes.Unavailable, "no manager at %s answered in time", c.target)
		case codes.Canceled:
			return err
		}
		return status.Errorf(codes.Unavailable, "cannot reach a manager at %s (%s)", c.target, dialFailure(err))
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return status.Errorf(codes.Unavailable, "the manager at %s is not serving (starting up or shutting down)", c.target)
	}
	return nil
}

// dialFailure keeps the cause of a failed connection ("connection
// refused") from gRPC's layered message.
func dialFailure(err error) string {
	msg := status.Convert(err).Message()
	for _, marker := range []string{"connect: ", "dial unix ", "dial tcp "} {
		if i := strings.LastIndex(msg, marker); i >= 0 {
			msg = msg[i+len(marker):]
			break
		}
	}
	return strings.Trim(msg, `"`)
}

// Target names what the client was configured to reach: the socket path,
// or the comma-separated addresses.
func (c *Client) Target() string { return c.target }

// Close closes the connection; calls in flight fail.
func (c *Client) Close() error { return c.conn.Close() }

// Control returns the raw Control client on the same connection, for calls
// this package does not wrap.
func (c *Client) Control() api.ControlClient { return c.control }
