package transport

import (
	"bytes"
	"context"
	"io"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
)

// A snapshot's state is read from the source after the MsgSnap, and the
// receiver gets both: the message as sent and the state byte for byte
// (recordingHandler checks it).
func TestSnapshotStateFollowsTheMessage(t *testing.T) {
	tests := []struct {
		name  string
		state int
	}{
		{"empty state", 0},
		{"one chunk", 1000},
		{"many chunks, not a multiple of the chunk size", 3<<20 + 12345},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := startNode(t, 1, nil, withConfig(func(c *Config) { c.ChunkSize = 1 << 20 }))
			b := startNode(t, 2, nil)
			connect(t, a, b)
			m := snapshotMsg(1, 2, tt.state)
			a.tr.Send([]*raftpb.Message{m})
			if got := b.receive(t); !proto.Equal(got, m) {
				t.Fatalf("received %v, want %v", got, m)
			}
			if r := a.expectSnapshotReport(t); r != (snapshotReport{2, raft.SnapshotFinish}) {
				t.Fatalf("report = %+v, want Finish for 2", r)
			}
		})
	}
}

// A state that fails part way (its file turned out damaged) ends the
// transfer before its last bytes: the receiver sees the stream fail, never
// its end, and Raft hears of a failure.
func TestSnapshotInterruptedBySource(t *testing.T) {
	a := startNode(t, 1, nil, withConfig(func(c *Config) { c.ChunkSize = 64 << 10 }))
	h := &erringHandler{recordingHandler: newRecordingHandler(), errs: make(chan error, 1)}
	b := startNodeWithHandler(t, 2, h)
	connect(t, a, b)
	a.source.fail.Store(300 << 10)
	a.tr.Send([]*raftpb.Message{snapshotMsg(1, 2, 1<<20)})
	if r := a.expectSnapshotReport(t); r != (snapshotReport{2, raft.SnapshotFailure}) {
		t.Fatalf("report = %+v, want Failure for 2", r)
	}
	if err := <-h.errs; err == nil {
		t.Fatal("the receiver read the state to its end")
	}
	expectNothing(t, h.msgs, "a snapshot stepped")
}

// erringHandler records the error that ended each state it read.
type erringHandler struct {
	*recordingHandler
	errs chan error
}

func (h *erringHandler) ReceiveSnapshot(ctx context.Context, m *raftpb.Message, state io.Reader) error {
	err := h.recordingHandler.ReceiveSnapshot(ctx, m, state)
	h.errs <- err
	return err
}

// The server refuses a snapshot stream whose state does not add up, or
// that carries something else, before the handler could take it.
func TestServerRefusesBadSnapshotStreams(t *testing.T) {
	h := newRecordingHandler()
	c := startServer(t, h, ServerConfig{})
	encode := func(m *raftpb.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	snap := snapshotMsg(1, 2, 100)
	state := stateOf(snap.GetSnapshot())
	encoded := encode(snap)
	first := func(size uint64) *api.StreamSnapshotRequest {
		return &api.StreamSnapshotRequest{Message: encoded, StateSize: size}
	}
	part := func(b []byte) *api.StreamSnapshotRequest { return &api.StreamSnapshotRequest{Chunk: b} }
	corrupt := bytes.Clone(state)
	corrupt[50] ^= 1

	tests := []struct {
		name string
		reqs []*api.StreamSnapshotRequest
		want codes.Code
	}{
		{"good", []*api.StreamSnapshotRequest{first(100), part(state[:60]), part(state[60:])}, codes.OK},
		{"nothing", nil, codes.InvalidArgument},
		{"no message", []*api.StreamSnapshotRequest{{StateSize: 100}, part(state)}, codes.InvalidArgument},
		{"not a snapshot", []*api.StreamSnapshotRequest{{Message: encode(msg(raftpb.MsgApp, 1, 2, 3))}}, codes.InvalidArgument},
		{"ends early", []*api.StreamSnapshotRequest{first(100), part(state[:60])}, codes.InvalidArgument},
		{"more than announced", []*api.StreamSnapshotRequest{first(100), part(state), part([]byte{1})}, codes.InvalidArgument},
		{"second message", []*api.StreamSnapshotRequest{first(100), part(state[:60]), first(40)}, codes.InvalidArgument},
		{"corrupt chunk (the handler refuses it)", []*api.StreamSnapshotRequest{first(100), part(corrupt)}, codes.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := c.StreamSnapshot(t.Context())
			if err != nil {
				t.Fatalf("StreamSnapshot: %v", err)
			}
			for _, r := range tt.reqs {
				if err := s.Send(r); err != nil {
					break // the server ended the call; CloseAndRecv says why
				}
			}
			_, err = s.CloseAndRecv()
			if got := status.Code(err); got != tt.want {
				t.Fatalf("status %v (%v), want %v", got, err, tt.want)
			}
			if tt.want == codes.OK {
				if got := <-h.msgs; !proto.Equal(got, snap) {
					t.Fatalf("stepped %v, want the snapshot", got)
				}
			}
		})
	}
	expectNothing(t, h.msgs, "a refused snapshot stepped")
}
