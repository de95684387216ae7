package transport

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
)

// batchStream is a peer's RaftMessages stream on the connection of one
// generation. The peer's sender writes batches to it without waiting; a
// receiver goroutine reads the peer's answers, marks the peer reachable on
// each, and reports the stream's end.
type batchStream struct {
	gen    uint64
	stream grpc.BidiStreamingClient[api.ProcessRaftMessageRequest, api.ProcessRaftMessageResponse]
	cancel context.CancelFunc
	// ended is closed by the receiver when the stream ended for any reason.
	ended chan struct{}
	// abandoned is set when the sender closes the stream on purpose (a
	// new address), whose end is then no failure of the peer.
	abandoned atomic.Bool
	// lastType is the type of the first message of the last batch sent,
	// for the log line of a failure.
	lastType atomic.Int32
}

func (bs *batchStream) done() bool {
	select {
	case <-bs.ended:
		return true
	default:
		return false
	}
}

// close ends the stream on purpose.
func (bs *batchStream) close() {
	bs.abandoned.Store(true)
	bs.cancel()
}

// sendBatchStreamed sends one batch on the peer's stream, opening one if
// there is none on the current connection. It does not wait for the peer:
// a failure is reported, once, by the stream's receiver. The peer's sender
// goroutine is the only caller.
//
// A send that cannot make progress for SendTimeout (a peer that stopped
// reading, whose flow-control window is full) ends the stream, as a
// unary call would have timed out.
func (p *peer) sendBatchStreamed(typ raftpb.MessageType, batch [][]byte) {
	cc, gen := p.connGen()
	if p.unaryOnly.Load() {
		p.handleResult(typ, gen, p.sendBatch(api.NewRaftClient(cc), batch))
		return
	}
	if bs := p.stream; bs != nil && (bs.gen != gen || bs.done()) {
		bs.close()
		p.stream = nil
	}
	watchdog := p.tr.cfg.SendTimeout + time.Duration(totalLen(batch)/minStreamThroughput)*time.Second
	bs := p.stream
	if bs == nil {
		ctx, cancel := context.WithCancel(p.ctx)
		timer := time.AfterFunc(watchdog, cancel)
		stream, err := api.NewRaftClient(cc).RaftMessages(ctx, grpc.MaxCallSendMsgSize(grpcMaxMessageSize))
		timer.Stop()
		if err != nil {
			cancel()
			p.handleResult(typ, gen, err)
			return
		}
		bs = &batchStream{gen: gen, stream: stream, cancel: cancel, ended: make(chan struct{})}
		p.stream = bs
		p.tr.wg.Add(1)
		go p.receive(bs)
	}
	bs.lastType.Store(int32(typ))
	timer := time.AfterFunc(watchdog, bs.cancel)
	err := bs.stream.Send(&api.ProcessRaftMessageRequest{Messages: batch})
	timer.Stop()
	if err != nil {
		// The receiver learns why (io.EOF here means the peer ended the
		// stream, with a status Recv returns) and reports it.
		p.stream = nil
	}
}

// receive reads the peer's answers on bs until the stream ends, then
// reports how it ended.
func (p *peer) receive(bs *batchStream) {
	defer p.tr.wg.Done()
	defer close(bs.ended)
	defer bs.cancel()
	for {
		_, err := bs.stream.Recv()
		if err == nil {
			p.setActive(bs.gen)
			continue
		}
		if bs.abandoned.Load() {
			return
		}
		if errors.Is(err, io.EOF) {
			err = errors.New("transport: the peer ended the Raft message stream")
		}
		if status.Code(err) == codes.Unimplemented && p.unaryOnly.CompareAndSwap(false, true) {
			p.log.Info("peer does not serve RaftMessages; sending each batch in a ProcessRaftMessage call")
		}
		p.handleResult(raftpb.MessageType(bs.lastType.Load()), bs.gen, err)
		return
	}
}

// closeStream ends the peer's stream, if any, when its sender stops.
func (p *peer) closeStream() {
	if p.stream != nil {
		p.stream.close()
		p.stream = nil
	}
}
