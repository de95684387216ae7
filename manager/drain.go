package manager

import (
	"context"
	"strings"
	"sync"

	"google.golang.org/grpc"
)

// calls counts the calls in flight that a stop lets finish: every call but
// the streams that last as long as the peer or client that opened them
// (Raft between managers, health watches, reflection), which a graceful
// stop would otherwise wait for until ShutdownTimeout.
type calls struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed once n is 0, when drained asked for it
}

// lasting reports the methods whose streams last as long as their peer.
func lasting(method string) bool {
	return strings.HasPrefix(method, "/shoal.v1.Raft/") ||
		method == "/grpc.health.v1.Health/Watch" ||
		strings.HasPrefix(method, "/grpc.reflection.")
}

func (c *calls) begin() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *calls) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n--; c.n == 0 && c.idle != nil {
		close(c.idle)
		c.idle = nil
	}
}

// drained returns a channel closed once no counted call is in flight.
func (c *calls) drained() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan struct{})
	if c.n == 0 {
		close(ch)
	} else {
		c.idle = ch
	}
	return ch
}

func (c *calls) serverOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			c.begin()
			defer c.end()
			return handler(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			if lasting(info.FullMethod) {
				return handler(srv, ss)
			}
			c.begin()
			defer c.end()
			return handler(srv, ss)
		}),
	}
}
