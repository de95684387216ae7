package transport

import (
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/shoal-project/shoal/api"
)

// Defaults applied by New to the Config fields left at zero.
const (
	// DefaultQueueSize is the number of encoded messages waiting for one
	// peer before Send starts dropping. 4096 covers a burst of appends and
	// heartbeats during a short stall of the peer (etcd and SwarmKit use the
	// same figure).
	DefaultQueueSize = 4096
	// DefaultMaxUnaryMessageSize is the largest encoded message sent in one
	// ProcessRaftMessage call; larger ones are streamed in chunks.
	DefaultMaxUnaryMessageSize = 2 << 20
	// DefaultChunkSize is the number of message bytes in one
	// StreamRaftMessage chunk.
	DefaultChunkSize = 1 << 20
	// DefaultSendTimeout bounds one ProcessRaftMessage call.
	DefaultSendTimeout = 2 * time.Second
)

const (
	// grpcMaxMessageSize is the largest message a gRPC server accepts
	// unless configured otherwise. A peer's server is not ours to
	// configure, so every request the transport sends fits in it.
	grpcMaxMessageSize = 4 << 20
	// maxFrameSize is the largest encoded Raft message or stream chunk one
	// request may carry: grpcMaxMessageSize less room for the request's own
	// fields.
	maxFrameSize = grpcMaxMessageSize - 4<<10

	// minStreamThroughput is the slowest link, in bytes per second, over
	// which a streamed message is still expected to arrive: the deadline of
	// a stream is SendTimeout plus its size divided by this rate (a 1 GiB
	// snapshot gets about 17 minutes). A stream is also cancelled at once by
	// RemovePeer and Stop.
	minStreamThroughput = 1 << 20
)

// Config configures a Transport. Zero values take the defaults named in each
// field's comment; New validates the result.
type Config struct {
	// ID is the local node's Raft ID. Required, not 0.
	ID uint64
	// Raft receives reports about sends. Required.
	Raft Raft
	// Snapshots gives the state that each snapshot sent names. Required.
	Snapshots SnapshotSource
	// DialOptions are appended to the transport's own options (keepalive,
	// reconnect backoff) for every peer connection, so they can override
	// them. Transport credentials belong here. When DialOptions is empty the
	// connections are insecure (plain TCP); when it is not empty it must
	// carry credentials of its own, or New fails.
	DialOptions []grpc.DialOption
	// Logger receives the transport's logs; nil discards them.
	Logger *slog.Logger
	// QueueSize is the number of encoded messages that may wait for one
	// peer; Send drops the message and reports the peer unreachable when the
	// queue is full. Default DefaultQueueSize (4096).
	QueueSize int
	// MaxUnaryMessageSize, in bytes: encoded messages up to this size are
	// sent in batches of at most this size, on the RaftMessages stream
	// (ProcessRaftMessage for a peer without it), larger ones in chunks by
	// StreamRaftMessage. Snapshots are always streamed. Default
	// DefaultMaxUnaryMessageSize (2 MiB); at most 4 MiB - 4 KiB, because
	// gRPC servers refuse larger messages by default.
	MaxUnaryMessageSize int
	// ChunkSize is the number of message bytes in each StreamRaftMessage
	// chunk. Default DefaultChunkSize (1 MiB); at most 4 MiB - 4 KiB.
	ChunkSize int
	// SendTimeout bounds one batch: its ProcessRaftMessage call, or how
	// long its send on the RaftMessages stream may wait for the peer to
	// read (and opening the stream), after which the stream ends and the
	// peer is reported unreachable. A streamed message
	// (snapshots, large appends) gets SendTimeout plus one second for each
	// MiB it holds, and is cancelled by RemovePeer and Stop. Default
	// DefaultSendTimeout (2 s).
	SendTimeout time.Duration
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.MaxUnaryMessageSize == 0 {
		c.MaxUnaryMessageSize = DefaultMaxUnaryMessageSize
	}
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = DefaultSendTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports the first field of c that is out of range, with its
// value. Zero values are valid: they stand for the defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.ID == 0:
		return fmt.Errorf("%w: ID must not be 0", ErrInvalidConfig)
	case c.Raft == nil:
		return fmt.Errorf("%w: Raft is required", ErrInvalidConfig)
	case c.Snapshots == nil:
		return fmt.Errorf("%w: Snapshots is required", ErrInvalidConfig)
	case c.QueueSize < 0:
		return fmt.Errorf("%w: QueueSize %d must be positive", ErrInvalidConfig, c.QueueSize)
	case c.MaxUnaryMessageSize < 0 || c.MaxUnaryMessageSize > maxFrameSize:
		return fmt.Errorf("%w: MaxUnaryMessageSize %d bytes must be between 1 and %d (the largest gRPC message a peer accepts by default, less room for the request)",
			ErrInvalidConfig, c.MaxUnaryMessageSize, maxFrameSize)
	case c.ChunkSize < 0 || c.ChunkSize > maxFrameSize:
		return fmt.Errorf("%w: ChunkSize %d bytes must be between 1 and %d (the largest gRPC message a peer accepts by default, less room for the request)",
			ErrInvalidConfig, c.ChunkSize, maxFrameSize)
	case c.SendTimeout < 0:
		return fmt.Errorf("%w: SendTimeout %v must be positive", ErrInvalidConfig, c.SendTimeout)
	}
	return nil
}

// dialOptions returns the options of every peer connection: the transport's
// own first, then the caller's, which win where they overlap.
func (c Config) dialOptions() []grpc.DialOption {
	opts := []grpc.DialOption{
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                keepaliveTime,
			Timeout:             keepaliveTimeout,
			PermitWithoutStream: true,
		}),
		// A peer that restarts should be reachable again within a few
		// seconds, well inside an election timeout or two; gRPC's default
		// backoff grows to two minutes.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   2 * time.Second,
			},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithInitialWindowSize(api.StreamWindow),
		grpc.WithInitialConnWindowSize(api.ConnWindow),
	}
	if len(c.DialOptions) == 0 {
		return append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	return append(opts, c.DialOptions...)
}
