package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"go.etcd.io/raft/v3/raftpb"
)

// waitTimeout bounds every wait of these tests; it is only reached when
// something is broken.
const waitTimeout = 20 * time.Second

// testLogger returns a logger that writes through t.Log, so logs show only
// when a test fails, and that goes quiet once the test ended.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(b[:len(b)-1]))
	}
	return len(b), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// recordingHandler records the messages it receives. When gate is set, each
// message waits for gate to let it through (or for its call to end).
type recordingHandler struct {
	msgs chan *raftpb.Message
	// err, when set, is returned for every message.
	err atomic.Pointer[error]
	// gate, when set, decides whether a message must wait for release.
	gate    func(m *raftpb.Message) bool
	release chan struct{}
	// entered receives each gated message as it starts waiting.
	entered chan *raftpb.Message
}

func newRecordingHandler() *recordingHandler {
	return &recordingHandler{
		msgs:    make(chan *raftpb.Message, 1<<16),
		release: make(chan struct{}),
		entered: make(chan *raftpb.Message, 1<<16),
	}
}

func (h *recordingHandler) ProcessRaftMessage(ctx context.Context, m *raftpb.Message) error {
	if h.gate != nil && h.gate(m) {
		h.entered <- m
		select {
		case <-h.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if errp := h.err.Load(); errp != nil {
		return *errp
	}
	h.msgs <- m
	return nil
}

// ReceiveSnapshot reads the state whole, checks it is the one
// snapshotMsg's source sends, and then handles m like any message.
func (h *recordingHandler) ReceiveSnapshot(ctx context.Context, m *raftpb.Message, state io.Reader) error {
	got, err := io.ReadAll(state)
	if err != nil {
		return err
	}
	if want := stateOf(m.GetSnapshot()); !bytes.Equal(got, want) {
		return fmt.Errorf("received %d state bytes that differ from the %d sent", len(got), len(want))
	}
	return h.ProcessRaftMessage(ctx, m)
}

func (h *recordingHandler) setErr(err error) { h.err.Store(&err) }

// stateSource is a SnapshotSource for snapshotMsg's snapshots: it serves
// the state their data names. fail, when set, makes the state fail after
// that many bytes.
type stateSource struct{ fail atomic.Int64 }

func (s *stateSource) OpenSnapshotState(snap *raftpb.Snapshot) (io.ReadCloser, uint64, error) {
	state := stateOf(snap)
	var r io.Reader = bytes.NewReader(state)
	if n := s.fail.Load(); n > 0 {
		r = io.MultiReader(io.LimitReader(r, n), iotest.ErrReader(errTest))
	}
	return io.NopCloser(r), uint64(len(state)), nil
}

// stateOf returns the state of a snapshot made by snapshotMsg: as many
// bytes as its data says, in a pattern.
func stateOf(snap *raftpb.Snapshot) []byte {
	size, _ := strconv.Atoi(string(snap.GetData()))
	state := make([]byte, size)
	for i := range state {
		state[i] = byte(i*7 + i>>12)
	}
	return state
}

// expectNothing checks that ch yields nothing while the transport settles.
// It is a negative check, so it can only wait for a bounded time.
func expectNothing[T any](t testing.TB, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(200 * time.Millisecond):
	}
}

// msg builds a message of type typ from from to to, numbered by index.
func msg(typ raftpb.MessageType, from, to, index uint64) *raftpb.Message {
	return &raftpb.Message{
		Type:  typ.Enum(),
		From:  new(from),
		To:    new(to),
		Term:  new(uint64(7)),
		Index: new(index),
	}
}

// snapshotMsg builds a MsgSnap whose snapshot names a state of size
// bytes, which stateSource serves.
func snapshotMsg(from, to uint64, size int) *raftpb.Message {
	m := msg(raftpb.MsgSnap, from, to, 0)
	m.Snapshot = &raftpb.Snapshot{
		Data: []byte(strconv.Itoa(size)),
		Metadata: &raftpb.SnapshotMetadata{
			Index:     new(uint64(1000)),
			Term:      new(uint64(7)),
			ConfState: &raftpb.ConfState{Voters: []uint64{from, to}},
		},
	}
	return m
}

var errTest = errors.New("test error")

// fullMessage builds a message with every field set.
func fullMessage(typ raftpb.MessageType, from, to uint64) *raftpb.Message {
	m := msg(typ, from, to, 42)
	m.LogTerm = new(uint64(6))
	m.Commit = new(uint64(41))
	m.Vote = new(uint64(3))
	m.Reject = new(true)
	m.RejectHint = new(uint64(40))
	m.Context = []byte("read-index-context")
	m.Entries = []*raftpb.Entry{
		{Term: new(uint64(7)), Index: new(uint64(43)), Type: raftpb.EntryNormal.Enum(), Data: []byte("payload")},
		{Term: new(uint64(7)), Index: new(uint64(44)), Type: raftpb.EntryConfChangeV2.Enum(), Data: []byte{0, 1, 2}},
		{Term: new(uint64(7)), Index: new(uint64(45))}, // a new leader's empty entry
	}
	m.Responses = []*raftpb.Message{msg(raftpb.MsgAppResp, to, from, 44)}
	return m
}
