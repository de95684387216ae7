package transport

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shoal-project/shoal/api"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
)

// outgoing is one encoded message waiting in a peer's queue.
type outgoing struct {
	typ  raftpb.MessageType
	data []byte
}

// peer is one remote node: its connection, its queue and the goroutine that
// drains the queue in order.
type peer struct {
	id    uint64
	tr    *Transport
	log   *slog.Logger
	queue chan outgoing

	// ctx ends when the peer is removed or the transport stops; every send
	// to the peer runs under it.
	ctx    context.Context
	cancel context.CancelFunc

	// snapshotting is set while a snapshot goroutine runs.
	snapshotting atomic.Bool

	// stream is the RaftMessages stream batches go on; only the sender
	// goroutine (run) touches it. unaryOnly is set once the peer is found
	// not to serve RaftMessages (an older version): batches then go in
	// ProcessRaftMessage calls, one at a time.
	stream    *batchStream
	unaryOnly atomic.Bool

	mu   sync.Mutex
	addr string
	cc   *grpc.ClientConn
	// gen counts address changes, so that the outcome of a send on a
	// replaced connection does not decide whether the new one is active.
	gen         uint64
	activeSince time.Time // zero while inactive
}

func newPeer(t *Transport, id uint64, addr string, cc *grpc.ClientConn) *peer {
	ctx, cancel := context.WithCancel(t.ctx)
	return &peer{
		id:     id,
		tr:     t,
		log:    t.log.With(slog.String("peer", idString(id))),
		queue:  make(chan outgoing, t.cfg.QueueSize),
		ctx:    ctx,
		cancel: cancel,
		addr:   addr,
		cc:     cc,
	}
}

// maxBatchMessages bounds the messages packed into one ProcessRaftMessage
// call, besides the size bound MaxUnaryMessageSize.
const maxBatchMessages = 1024

// run sends the queued messages in order until the peer stops. Every
// message waiting in the queue goes in one batch, up to MaxUnaryMessageSize
// bytes, and batches follow each other on one long-lived stream without
// waiting for the peer's answers, so that a busy peer costs neither a round
// trip per message nor one per batch. A message too large for a batch goes
// in chunks by StreamRaftMessage, and may overtake batches still in flight,
// which Raft tolerates as it does any reordering.
func (p *peer) run() {
	defer p.tr.wg.Done()
	defer p.closeStream()
	var held *outgoing // taken from the queue, but it did not fit the last batch
	for {
		var first outgoing
		if held != nil {
			first, held = *held, nil
		} else {
			select {
			case <-p.ctx.Done():
				return
			case first = <-p.queue:
			}
		}
		if p.tr.removed.Load() {
			continue // drain without sending; nobody listens to us any more
		}
		if !p.unary(first) {
			gen, err := p.deliver(first.typ, [][]byte{first.data})
			p.handleResult(first.typ, gen, err)
			continue
		}
		batch, size := [][]byte{first.data}, len(first.data)
	fill:
		for len(batch) < maxBatchMessages {
			select {
			case next := <-p.queue:
				if !p.unary(next) || size+len(next.data) > p.tr.cfg.MaxUnaryMessageSize {
					held = &next
					break fill
				}
				batch = append(batch, next.data)
				size += len(next.data)
			default:
				break fill
			}
		}
		p.sendBatchStreamed(first.typ, batch)
	}
}

// sendTimeout bounds a call carrying size bytes: SendTimeout, plus a
// second for every minStreamThroughput bytes.
func (p *peer) sendTimeout(size int) time.Duration {
	return p.tr.cfg.SendTimeout + time.Duration(size/minStreamThroughput)*time.Second
}

// unary reports whether out may travel in a ProcessRaftMessage call.
func (p *peer) unary(out outgoing) bool {
	return out.typ != raftpb.MsgSnap && len(out.data) <= p.tr.cfg.MaxUnaryMessageSize
}

// sendBatch sends whole encoded messages in one ProcessRaftMessage call.
func (p *peer) sendBatch(client api.RaftClient, batch [][]byte) error {
	ctx, cancel := context.WithTimeout(p.ctx, p.sendTimeout(totalLen(batch)))
	defer cancel()
	_, err := client.ProcessRaftMessage(ctx, &api.ProcessRaftMessageRequest{Messages: batch},
		grpc.MaxCallSendMsgSize(grpcMaxMessageSize))
	return err
}

// deliver sends one encoded message, given as segments to concatenate, and
// waits for the peer's answer. Small messages go in one ProcessRaftMessage
// call; messages above MaxUnaryMessageSize are streamed in chunks. It returns the generation of the connection it used.
func (p *peer) deliver(typ raftpb.MessageType, segs [][]byte) (uint64, error) {
	cc, gen := p.connGen()
	return gen, p.deliverOn(api.NewRaftClient(cc), typ, segs)
}

func (p *peer) deliverOn(client api.RaftClient, typ raftpb.MessageType, segs [][]byte) error {
	size := totalLen(segs)
	cfg := &p.tr.cfg
	if len(segs) == 1 && size <= cfg.MaxUnaryMessageSize {
		return p.sendBatch(client, segs)
	}

	ctx, cancel := context.WithTimeout(p.ctx, p.sendTimeout(size))
	defer cancel() // also ends the stream on an early return
	stream, err := client.StreamRaftMessage(ctx, grpc.MaxCallSendMsgSize(grpcMaxMessageSize))
	if err != nil {
		return err
	}
	first := true
	err = forEachChunk(segs, cfg.ChunkSize, func(chunk []byte) error {
		req := &api.StreamRaftMessageRequest{Chunk: chunk}
		if first {
			req.TotalSize = uint64(size)
			first = false
		}
		return stream.Send(req)
	})
	// io.EOF means the server ended the call early; its status, the reason,
	// comes from CloseAndRecv.
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	_, err = stream.CloseAndRecv()
	return err
}

// handleResult updates the peer's state after a send on the connection of
// generation gen and tells Raft of a failure.
func (p *peer) handleResult(typ raftpb.MessageType, gen uint64, err error) {
	if err == nil {
		p.setActive(gen)
		return
	}
	if p.ctx.Err() != nil {
		return // cancelled by RemovePeer or Stop, not a failure of the peer
	}
	if IsMemberRemoved(err) {
		p.tr.memberRemoved(p.id)
		return
	}
	p.setInactive(typ, gen, err)
	p.tr.cfg.Raft.ReportUnreachable(p.id)
}

func (p *peer) setActive(gen uint64) {
	p.mu.Lock()
	became := gen == p.gen && p.activeSince.IsZero()
	if became {
		p.activeSince = time.Now()
	}
	p.mu.Unlock()
	if became {
		p.log.Info("peer reachable")
	}
}

func (p *peer) setInactive(typ raftpb.MessageType, gen uint64, err error) {
	p.mu.Lock()
	was := gen == p.gen && !p.activeSince.IsZero()
	if was {
		p.activeSince = time.Time{}
	}
	p.mu.Unlock()
	level := slog.LevelDebug
	if was {
		level = slog.LevelWarn
	}
	p.log.Log(context.Background(), level, "send failed; peer unreachable",
		slog.String("type", typ.String()), slog.Any("error", err))
}

func (p *peer) activeTime() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.activeSince
}

func (p *peer) conn() *grpc.ClientConn {
	cc, _ := p.connGen()
	return cc
}

func (p *peer) connGen() (*grpc.ClientConn, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cc, p.gen
}

func (p *peer) address() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

// replaceConn switches the peer to a new address and connection and returns
// the old connection for the caller to close.
func (p *peer) replaceConn(addr string, cc *grpc.ClientConn) *grpc.ClientConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := p.cc
	p.addr, p.cc, p.activeSince = addr, cc, time.Time{}
	p.gen++
	return old
}

// stop cancels the peer's sends and closes its connection without waiting
// for its goroutines; Transport.Stop waits for them.
func (p *peer) stop() {
	p.cancel()
	_ = p.conn().Close()
}
