package transport

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/shoal-project/shoal/api"
)

const (
	// Keepalive: a client pings a connection silent for keepaliveTime and
	// closes it when the ping goes unanswered for keepaliveTimeout, so a
	// peer that vanished without closing its sockets is noticed within
	// about 15 s even when no RPC is running. gRPC does not ping more often
	// than every 10 s.
	keepaliveTime    = 10 * time.Second
	keepaliveTimeout = 5 * time.Second
	// keepaliveMinTime is the most frequent ping a server tolerates; it
	// must stay below keepaliveTime or servers close clients' connections
	// with "too many pings".
	keepaliveMinTime = 5 * time.Second
)

// ServerOptions returns the options that the grpc.Server serving the Raft
// service needs so that it agrees with the transport's clients: it lets them
// ping as often as they do (without it, a server closes their connections
// for pinging too often), pings idle clients itself so that a half-sent
// stream from a vanished peer is dropped, with its buffer, within seconds,
// and fixes the flow-control windows (api.StreamWindow). Append them to the
// server's other options.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             keepaliveMinTime,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    keepaliveTime,
			Timeout: keepaliveTimeout,
		}),
		grpc.InitialWindowSize(api.StreamWindow),
		grpc.InitialConnWindowSize(api.ConnWindow),
	}
}
