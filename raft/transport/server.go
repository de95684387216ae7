package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft/membership"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Handler receives the messages addressed to the local node.
type Handler interface {
	// ProcessRaftMessage steps m into the local node. It is called
	// concurrently, once for each message received, on the goroutine of the
	// RPC that carried it; ctx ends when the sender gives up. It returns an
	// error wrapping membership.ErrMemberRemoved when m's sender was removed
	// from the cluster: the server turns that error into the status the
	// sender recognises (see IsMemberRemoved). Other errors reach the sender
	// as a failed send.
	ProcessRaftMessage(ctx context.Context, m *raftpb.Message) error
	// ReceiveSnapshot takes m, a MsgSnap, and the state its snapshot
	// names, which it must read from state to its end (io.EOF) before
	// stepping m: state fails instead when the stream ends early or
	// carries more than the sender announced. It is called on the
	// goroutine of the StreamSnapshot call; ctx ends when the sender gives
	// up. Errors are returned as for ProcessRaftMessage.
	ReceiveSnapshot(ctx context.Context, m *raftpb.Message, state io.Reader) error
}

// DefaultMaxMessageSize is the largest reassembled message a server accepts
// unless ServerConfig says otherwise.
const DefaultMaxMessageSize = 1 << 30

// ServerConfig configures the server side of the Raft service.
type ServerConfig struct {
	// MaxMessageSize is the largest reassembled message, in bytes, that
	// StreamRaftMessage accepts; a stream announcing a larger total_size is
	// refused before anything is buffered. Default DefaultMaxMessageSize
	// (1 GiB).
	MaxMessageSize uint64
	// AckInterval is how often, at most, RaftMessages answers the batches
	// it stepped after the first of a stream, which it always answers. The
	// sender needs an answer only to learn that the peer is reachable
	// again once a stream opened; one for every batch would cost a write
	// on the receiver and a read on the sender per batch. Default 1 s.
	AckInterval time.Duration
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

func (c ServerConfig) withDefaults() ServerConfig {
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.AckInterval == 0 {
		c.AckInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// initialStreamBuffer bounds the buffer a stream allocates before its data
// arrives: total_size is only a claim until the bytes are there.
const initialStreamBuffer = 8 << 20

type server struct {
	api.UnimplementedRaftServer
	h   Handler
	cfg ServerConfig
}

// NewServer returns the server side of the Raft service, which decodes the
// messages that peers send and hands each to h. Register it on a
// grpc.Server created with ServerOptions. It is safe for concurrent use; h
// must not be nil.
//
// Bad input is refused with INVALID_ARGUMENT (undecodable bytes, a stream
// whose bytes do not add up to its total_size) or RESOURCE_EXHAUSTED (a
// stream announcing more than cfg.MaxMessageSize bytes, refused before
// anything is buffered).
func NewServer(h Handler, cfg ServerConfig) api.RaftServer {
	if h == nil {
		panic("transport: NewServer with a nil Handler")
	}
	return &server{h: h, cfg: cfg.withDefaults()}
}

// ProcessRaftMessage implements api.RaftServer.
func (s *server) ProcessRaftMessage(ctx context.Context, req *api.ProcessRaftMessageRequest) (*api.ProcessRaftMessageResponse, error) {
	if err := s.process(ctx, req); err != nil {
		return nil, err
	}
	return &api.ProcessRaftMessageResponse{}, nil
}

// RaftMessages implements api.RaftServer: batches, stepped in order until
// the sender closes the stream or a batch is refused; the first batch is
// answered once stepped, the others at most once per AckInterval.
func (s *server) RaftMessages(stream grpc.BidiStreamingServer[api.ProcessRaftMessageRequest, api.ProcessRaftMessageResponse]) error {
	ack := &api.ProcessRaftMessageResponse{}
	var acked time.Time
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.process(stream.Context(), req); err != nil {
			return err
		}
		if now := time.Now(); now.Sub(acked) >= s.cfg.AckInterval { // the first: acked is zero
			acked = now
			if err := stream.Send(ack); err != nil {
				return err
			}
		}
	}
}

// process steps one batch in order, stopping at the first message refused.
func (s *server) process(ctx context.Context, req *api.ProcessRaftMessageRequest) error {
	if len(req.GetMessages()) == 0 {
		return status.Error(codes.InvalidArgument, "transport: a batch of Raft messages carries no message")
	}
	for _, data := range req.GetMessages() {
		m, err := decodeMessage(data)
		if err != nil {
			return err
		}
		if err := s.h.ProcessRaftMessage(ctx, m); err != nil {
			return s.handlerError(m, err)
		}
	}
	return nil
}

// StreamRaftMessage implements api.RaftServer.
func (s *server) StreamRaftMessage(stream grpc.ClientStreamingServer[api.StreamRaftMessageRequest, api.StreamRaftMessageResponse]) error {
	r := reassembler{max: s.cfg.MaxMessageSize}
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := r.add(req); err != nil {
			return err
		}
	}
	m, err := r.message()
	if err != nil {
		return err
	}
	if err := s.h.ProcessRaftMessage(stream.Context(), m); err != nil {
		return s.handlerError(m, err)
	}
	return stream.SendAndClose(&api.StreamRaftMessageResponse{})
}

// handlerError turns the Handler's error into the status the sender gets.
func (s *server) handlerError(m *raftpb.Message, err error) error {
	if errors.Is(err, membership.ErrMemberRemoved) {
		s.cfg.Logger.Info("refused message from removed member",
			slog.String("peer", idString(m.GetFrom())), slog.String("type", m.GetType().String()))
		return memberRemovedStatus.Err()
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unknown, err.Error())
}

// decodeMessage decodes one raftpb.Message received from the network.
func decodeMessage(b []byte) (*raftpb.Message, error) {
	if len(b) == 0 {
		return nil, status.Error(codes.InvalidArgument, "transport: empty raft message")
	}
	m := &raftpb.Message{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "transport: undecodable raft message: %v", err)
	}
	return m, nil
}

// reassembler collects the chunks of one StreamRaftMessage call. Every
// check happens as the chunks arrive, so a bad stream is refused before it
// is buffered whole.
type reassembler struct {
	max     uint64 // largest total_size accepted
	started bool
	total   uint64 // total_size announced by the first chunk
	buf     []byte
}

// add appends one chunk, or returns the status that refuses the stream.
func (r *reassembler) add(req *api.StreamRaftMessageRequest) error {
	size := req.GetTotalSize()
	if !r.started {
		switch {
		case size == 0:
			return status.Error(codes.InvalidArgument, "transport: the first chunk must carry total_size")
		case size > r.max || size > math.MaxInt:
			return status.Errorf(codes.ResourceExhausted,
				"transport: message of %d bytes exceeds the limit of %d bytes", size, r.max)
		}
		r.started = true
		r.total = size
		r.buf = make([]byte, 0, min(size, initialStreamBuffer))
	} else if size != 0 && size != r.total {
		return status.Errorf(codes.InvalidArgument,
			"transport: chunk announces total_size %d, the first chunk announced %d", size, r.total)
	}
	chunk := req.GetChunk()
	if uint64(len(r.buf))+uint64(len(chunk)) > r.total {
		return status.Errorf(codes.InvalidArgument,
			"transport: received more than the %d bytes announced by total_size", r.total)
	}
	if need := len(r.buf) + len(chunk); need > cap(r.buf) {
		// Grow by doubling, never past the announced size: the buffer
		// never outgrows the message, and the copy that a growth makes
		// holds at most half of it.
		grown := make([]byte, len(r.buf), min(max(2*cap(r.buf), need), int(r.total)))
		copy(grown, r.buf)
		r.buf = grown
	}
	r.buf = append(r.buf, chunk...)
	return nil
}

// message decodes the reassembled message once the stream has ended.
func (r *reassembler) message() (*raftpb.Message, error) {
	if !r.started {
		return nil, status.Error(codes.InvalidArgument, "transport: stream carried no chunk")
	}
	if uint64(len(r.buf)) != r.total {
		return nil, status.Errorf(codes.InvalidArgument,
			"transport: stream carried %d bytes, total_size announced %d", len(r.buf), r.total)
	}
	return decodeMessage(r.buf)
}

// idString formats a Raft ID as logs show it: in hexadecimal, as etcd and
// SwarmKit print Raft IDs.
func idString(id uint64) string {
	return fmt.Sprintf("%x", id)
}
