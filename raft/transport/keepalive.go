package transport

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
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
// and fixes the flow-control windows (StreamWindow). Append them to the
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
		grpc.InitialWindowSize(StreamWindow),
		grpc.InitialConnWindowSize(ConnWindow),
	}
}

// StreamWindow and ConnWindow are the fixed flow-control windows, per stream
// and per connection, of the managers' servers and of the connections
// between managers. Without fixed windows, gRPC sizes them by estimating
// the bandwidth-delay product with a PING each time data arrives after the
// last PING was answered, which on a stream of small Raft batches, or on a
// client's calls one at a time, is a PING and its answer for nearly every
// message: one more write and read of the socket on both sides. 4 MiB per
// stream moves about 80 MB/s over a link with a 50 ms round trip.
const (
	StreamWindow = 4 << 20
	ConnWindow   = 16 << 20
)
