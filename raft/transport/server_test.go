package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft/membership"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// startServer serves the Raft service with h on loopback and returns a
// client of it.
func startServer(t *testing.T, h Handler, cfg ServerConfig) api.RaftClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := grpc.NewServer(ServerOptions()...)
	cfg.Logger = testLogger(t)
	api.RegisterRaftServer(srv, NewServer(h, cfg))
	go func() { _ = srv.Serve(lis) }()
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() {
		_ = cc.Close()
		srv.Stop()
	})
	return api.NewRaftClient(cc)
}

// stream sends reqs on one StreamRaftMessage call and returns its outcome.
func stream(t *testing.T, c api.RaftClient, reqs ...*api.StreamRaftMessageRequest) error {
	t.Helper()
	s, err := c.StreamRaftMessage(t.Context())
	if err != nil {
		t.Fatalf("StreamRaftMessage: %v", err)
	}
	for _, r := range reqs {
		if err := s.Send(r); err != nil {
			break // the server ended the call; CloseAndRecv says why
		}
	}
	_, err = s.CloseAndRecv()
	return err
}

func chunk(total uint64, b []byte) *api.StreamRaftMessageRequest {
	return &api.StreamRaftMessageRequest{TotalSize: total, Chunk: b}
}

func TestServerRefusesBadInput(t *testing.T) {
	h := newRecordingHandler()
	c := startServer(t, h, ServerConfig{MaxMessageSize: 1 << 20})
	good, err := proto.Marshal(fullMessage(raftpb.MsgApp, 1, 2))
	if err != nil {
		t.Fatal(err)
	}
	// A field tag with wire type 7, which does not exist.
	undecodable := []byte{0x0f, 0x01, 0x02}
	half := len(good) / 2

	tests := []struct {
		name string
		call func() error
		want codes.Code
	}{
		{"unary, good", func() error {
			_, err := c.ProcessRaftMessage(t.Context(), &api.ProcessRaftMessageRequest{Messages: [][]byte{good}})
			return err
		}, codes.OK},
		{"unary, undecodable", func() error {
			_, err := c.ProcessRaftMessage(t.Context(), &api.ProcessRaftMessageRequest{Messages: [][]byte{undecodable}})
			return err
		}, codes.InvalidArgument},
		{"unary, empty", func() error {
			_, err := c.ProcessRaftMessage(t.Context(), &api.ProcessRaftMessageRequest{})
			return err
		}, codes.InvalidArgument},
		{"stream, good in two chunks", func() error {
			return stream(t, c, chunk(uint64(len(good)), good[:half]), chunk(0, good[half:]))
		}, codes.OK},
		{"stream, total_size repeated on every chunk", func() error {
			return stream(t, c, chunk(uint64(len(good)), good[:half]), chunk(uint64(len(good)), good[half:]))
		}, codes.OK},
		{"stream, over the limit", func() error {
			return stream(t, c, chunk(1<<20+1, good))
		}, codes.ResourceExhausted},
		{"stream, far over the limit", func() error {
			return stream(t, c, chunk(1<<62, nil))
		}, codes.ResourceExhausted},
		{"stream, no total_size", func() error {
			return stream(t, c, chunk(0, good))
		}, codes.InvalidArgument},
		{"stream, fewer bytes than total_size", func() error {
			return stream(t, c, chunk(uint64(len(good))+1, good))
		}, codes.InvalidArgument},
		{"stream, more bytes than total_size", func() error {
			return stream(t, c, chunk(uint64(len(good)), good[:half]), chunk(0, good))
		}, codes.InvalidArgument},
		{"stream, total_size changes", func() error {
			return stream(t, c, chunk(uint64(len(good)), good[:half]), chunk(uint64(len(good))+1, good[half:]))
		}, codes.InvalidArgument},
		{"stream, undecodable", func() error {
			return stream(t, c, chunk(uint64(len(undecodable)), undecodable))
		}, codes.InvalidArgument},
		{"stream, no chunk", func() error {
			return stream(t, c)
		}, codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if got := status.Code(err); got != tt.want {
				t.Fatalf("code = %v (%v), want %v", got, err, tt.want)
			}
			if tt.want == codes.OK {
				if m := <-h.msgs; !proto.Equal(m, fullMessage(raftpb.MsgApp, 1, 2)) {
					t.Fatalf("delivered %v", m)
				}
			}
		})
	}
	if len(h.msgs) != 0 {
		t.Fatalf("%d refused messages reached the handler", len(h.msgs))
	}
}

func TestServerReportsRemovedMember(t *testing.T) {
	h := newRecordingHandler()
	h.setErr(fmt.Errorf("message from 5: %w", membership.ErrMemberRemoved))
	c := startServer(t, h, ServerConfig{})
	data, _ := proto.Marshal(msg(raftpb.MsgHeartbeat, 5, 1, 0))

	_, unaryErr := c.ProcessRaftMessage(t.Context(), &api.ProcessRaftMessageRequest{Messages: [][]byte{data}})
	streamErr := stream(t, c, chunk(uint64(len(data)), data))
	for _, err := range []error{unaryErr, streamErr} {
		st := status.Convert(err)
		if st.Code() != codes.FailedPrecondition || st.Message() != membership.ErrMemberRemoved.Error() {
			t.Fatalf("status = %v, want FailedPrecondition %q", st, membership.ErrMemberRemoved)
		}
		var info *errdetails.ErrorInfo
		for _, d := range st.Details() {
			if i, ok := d.(*errdetails.ErrorInfo); ok {
				info = i
			}
		}
		if info.GetReason() != ReasonMemberRemoved || info.GetDomain() != ErrorDomain {
			t.Fatalf("details = %v, want ErrorInfo %s/%s", st.Details(), ErrorDomain, ReasonMemberRemoved)
		}
		if !IsMemberRemoved(err) {
			t.Fatalf("IsMemberRemoved(%v) = false", err)
		}
	}

	// Other errors of the Handler are failures, not removals.
	h.setErr(errTest)
	_, err := c.ProcessRaftMessage(t.Context(), &api.ProcessRaftMessageRequest{Messages: [][]byte{data}})
	if err == nil || IsMemberRemoved(err) {
		t.Fatalf("err = %v, want a failure that is not a removal", err)
	}
}

func TestIsMemberRemoved(t *testing.T) {
	withInfo := func(code codes.Code, msg, domain, reason string) error {
		st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Domain: domain, Reason: reason})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	removedText := membership.ErrMemberRemoved.Error()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"the sentinel, wrapped", fmt.Errorf("x: %w", membership.ErrMemberRemoved), true},
		{"status with ErrorInfo", memberRemovedStatus.Err(), true},
		{"ErrorInfo, reworded message", withInfo(codes.FailedPrecondition, "you are gone", ErrorDomain, ReasonMemberRemoved), true},
		{"exact text, no details", status.Error(codes.FailedPrecondition, removedText), true},
		{"exact text, other code", status.Error(codes.NotFound, removedText), false},
		{"exact text, other ErrorInfo", withInfo(codes.FailedPrecondition, removedText, ErrorDomain, "OTHER"), false},
		{"other domain", withInfo(codes.FailedPrecondition, "x", "example.com", ReasonMemberRemoved), false},
		{"unavailable", status.Error(codes.Unavailable, "connection refused"), false},
		{"plain error", errors.New(removedText + "!"), false},
	}
	for _, tt := range tests {
		if got := IsMemberRemoved(tt.err); got != tt.want {
			t.Errorf("%s: IsMemberRemoved(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

// RaftMessages answers the first batch of a stream, and later ones only
// once AckInterval has passed since the last answer.
func TestRaftMessagesAnswers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		answers  int
	}{
		{"the first only within the interval", time.Hour, 1},
		{"every batch with an interval below zero", -1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newRecordingHandler()
			c := startServer(t, h, ServerConfig{AckInterval: tc.interval})
			s, err := c.RaftMessages(t.Context())
			if err != nil {
				t.Fatalf("RaftMessages: %v", err)
			}
			for i := uint64(1); i <= 3; i++ {
				data, err := proto.Marshal(msg(raftpb.MsgApp, 1, 2, i))
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Send(&api.ProcessRaftMessageRequest{Messages: [][]byte{data}}); err != nil {
					t.Fatalf("Send batch %d: %v", i, err)
				}
			}
			if err := s.CloseSend(); err != nil {
				t.Fatal(err)
			}
			answers := 0
			for {
				_, err := s.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("Recv: %v", err)
				}
				answers++
			}
			if answers != tc.answers {
				t.Errorf("%d answers to 3 batches, want %d", answers, tc.answers)
			}
			for i := uint64(1); i <= 3; i++ {
				if m := <-h.msgs; m.GetIndex() != i {
					t.Errorf("message %d stepped with index %d", i, m.GetIndex())
				}
			}
		})
	}
}
