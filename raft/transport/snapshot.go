package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
)

// Snapshots travel by StreamSnapshot: the MsgSnap first, whose snapshot
// data is small (it names the state by length and checksum), then the
// state itself in ChunkSize chunks, read from the sender's SnapshotSource
// and handed to the receiver's Handler as a stream. Neither side holds
// more than a chunk of the state in memory.

// SnapshotSource gives the sender the state a snapshot names; the raft
// package's Node reads it from the snapshot's state file.
type SnapshotSource interface {
	// OpenSnapshotState returns a reader of the state that snap names
	// and its length in bytes. The reader may fail instead of returning
	// io.EOF when the state is not what snap names; the transport then
	// abandons the send. The transport closes it. It is called on the
	// goroutine that sends the snapshot, and must not wait for the
	// goroutine that calls Send.
	OpenSnapshotState(snap *raftpb.Snapshot) (state io.ReadCloser, size uint64, err error)
}

// sendSnapshot starts a goroutine that sends m, a MsgSnap encoded as data,
// with its state, and reports the outcome to Raft. While one is in
// progress, another MsgSnap is dropped without a report: Raft has been
// waiting for a snapshot report for this peer since it sent m, and the
// report of the snapshot in progress releases it; it then sends a newer
// snapshot if the follower still needs one. The caller holds p.tr.mu for
// reading, which orders wg.Add before Stop's wg.Wait.
func (p *peer) sendSnapshot(m *raftpb.Message, data []byte) {
	if !p.snapshotting.CompareAndSwap(false, true) {
		p.log.Debug("snapshot already in progress; dropped another", slog.String("type", m.GetType().String()))
		return
	}
	snap := m.GetSnapshot() // Raft never modifies a snapshot it handed out
	p.tr.wg.Add(1)
	go func() {
		defer p.tr.wg.Done()
		start := time.Now()
		gen, size, err := p.streamSnapshot(data, snap)
		// Cleared before reporting: Raft may answer a failure with a new
		// snapshot at once, and that one must not be taken for a duplicate.
		p.snapshotting.Store(false)
		p.handleResult(raftpb.MsgSnap, gen, err)
		if p.ctx.Err() != nil {
			return // removed or stopping: nobody waits for the report
		}
		index := snap.GetMetadata().GetIndex()
		if err != nil {
			p.log.Warn("snapshot failed", slog.Uint64("index", index), slog.Uint64("bytes", size), slog.Any("error", err))
			p.tr.cfg.Raft.ReportSnapshot(p.id, raft.SnapshotFailure)
			return
		}
		p.log.Info("snapshot sent", slog.Uint64("index", index), slog.Uint64("bytes", size),
			slog.Duration("took", time.Since(start)))
		p.tr.cfg.Raft.ReportSnapshot(p.id, raft.SnapshotFinish)
	}()
}

// streamSnapshot sends the encoded MsgSnap and then its state, and waits
// for the peer's answer. It returns the generation of the connection it
// used and the size of the state.
func (p *peer) streamSnapshot(msg []byte, snap *raftpb.Snapshot) (uint64, uint64, error) {
	state, size, err := p.tr.cfg.Snapshots.OpenSnapshotState(snap)
	if err != nil {
		return 0, 0, fmt.Errorf("transport: open the snapshot's state: %w", err)
	}
	defer state.Close()
	cc, gen := p.connGen()
	ctx, cancel := context.WithTimeout(p.ctx, p.sendTimeout(int(min(size, 1<<62))))
	defer cancel() // also ends the stream on an early return
	stream, err := api.NewRaftClient(cc).StreamSnapshot(ctx, grpc.MaxCallSendMsgSize(grpcMaxMessageSize))
	if err != nil {
		return gen, size, err
	}
	err = stream.Send(&api.StreamSnapshotRequest{Message: msg, StateSize: size})
	buf := make([]byte, p.tr.cfg.ChunkSize)
	var sent uint64
	for err == nil {
		n, rerr := io.ReadFull(state, buf)
		if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) {
			// Nothing read with the error is sent: the receiver must
			// not see the end of a state the sender could not vouch for.
			return gen, size, fmt.Errorf("transport: read the snapshot's state: %w", rerr)
		}
		if n > 0 {
			err = stream.Send(&api.StreamSnapshotRequest{Chunk: buf[:n]})
			sent += uint64(n)
		}
		if rerr != nil {
			break
		}
	}
	// io.EOF means the server ended the call early; its status, the reason,
	// comes from CloseAndRecv.
	if err != nil && !errors.Is(err, io.EOF) {
		return gen, size, err
	}
	if err == nil && sent != size {
		return gen, size, fmt.Errorf("transport: the snapshot's state holds %d bytes, its source announced %d", sent, size)
	}
	_, err = stream.CloseAndRecv()
	return gen, size, err
}

// StreamSnapshot implements api.RaftServer.
func (s *server) StreamSnapshot(stream grpc.ClientStreamingServer[api.StreamSnapshotRequest, api.StreamSnapshotResponse]) error {
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return status.Error(codes.InvalidArgument, "transport: snapshot stream carried nothing")
	}
	if err != nil {
		return err
	}
	m, err := decodeMessage(first.GetMessage())
	if err != nil {
		return err
	}
	if m.GetType() != raftpb.MsgSnap || m.GetSnapshot() == nil {
		return status.Errorf(codes.InvalidArgument, "transport: a snapshot stream carries a %v message, want a MsgSnap with a snapshot", m.GetType())
	}
	state := &stateStream{recv: stream.Recv, size: first.GetStateSize(), pending: first.GetChunk()}
	state.got = uint64(len(state.pending))
	if state.got > state.size {
		return state.tooMuch()
	}
	if err := s.h.ReceiveSnapshot(stream.Context(), m, state); err != nil {
		return s.handlerError(m, err)
	}
	if n, err := state.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		return status.Error(codes.Internal, "transport: the handler took a snapshot without reading its state to the end")
	}
	return stream.SendAndClose(&api.StreamSnapshotResponse{})
}

// stateStream reads a snapshot's state from the requests of a
// StreamSnapshot call. It returns io.EOF only when the stream ended after
// exactly size bytes; a stream that ends early or carries more fails with
// INVALID_ARGUMENT.
type stateStream struct {
	recv    func() (*api.StreamSnapshotRequest, error)
	size    uint64
	got     uint64
	pending []byte
	err     error
}

func (r *stateStream) Read(p []byte) (int, error) {
	for len(r.pending) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.err = r.next()
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	return n, nil
}

func (r *stateStream) next() error {
	req, err := r.recv()
	switch {
	case errors.Is(err, io.EOF) && r.got < r.size:
		return status.Errorf(codes.InvalidArgument, "transport: snapshot stream ended after %d of the %d state bytes it announced", r.got, r.size)
	case errors.Is(err, io.EOF):
		return io.EOF
	case err != nil:
		return err
	case req.GetMessage() != nil || req.GetStateSize() != 0:
		return status.Error(codes.InvalidArgument, "transport: only the first request of a snapshot stream carries the message and the state size")
	}
	r.pending = req.GetChunk()
	r.got += uint64(len(r.pending))
	if r.got > r.size {
		return r.tooMuch()
	}
	return nil
}

func (r *stateStream) tooMuch() error {
	r.pending = nil
	return status.Errorf(codes.InvalidArgument, "transport: snapshot stream carries more than the %d state bytes it announced", r.size)
}
