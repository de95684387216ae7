package transport

import (
	"context"
	"io"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// countingHandler frees one credit for each message it receives.
type countingHandler struct{ credits chan struct{} }

func (h countingHandler) ProcessRaftMessage(context.Context, *raftpb.Message) error {
	<-h.credits
	return nil
}

func (h countingHandler) ReceiveSnapshot(ctx context.Context, m *raftpb.Message, _ io.Reader) error {
	return h.ProcessRaftMessage(ctx, m)
}

// BenchmarkSendMsgApp measures the throughput of small MsgApp messages (one
// 128-byte entry) from one transport to another on loopback. At most half a
// queue is in flight, so nothing is dropped.
func BenchmarkSendMsgApp(b *testing.B) {
	const window = DefaultQueueSize / 2
	credits := make(chan struct{}, window)
	a := startNode(b, 1, nil)
	peer := startNodeWithHandler(b, 2, countingHandler{credits})
	if err := a.tr.AddPeer(2, peer.addr); err != nil {
		b.Fatal(err)
	}
	m := msg(raftpb.MsgApp, 1, 2, 0)
	m.Entries = []*raftpb.Entry{{Term: new(uint64(7)), Index: new(uint64(1)), Data: make([]byte, 128)}}
	batch := []*raftpb.Message{m}

	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		credits <- struct{}{}
		a.tr.Send(batch)
	}
	for range window { // wait until every message was handled
		credits <- struct{}{}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
