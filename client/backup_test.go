package client

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
)

// backupControl serves SaveBackup: unavailable for its first calls, then a
// header and chunks, which it may hold until release is closed.
type backupControl struct {
	api.UnimplementedControlServer
	unavailable atomic.Int32
	calls       atomic.Int32
	noHeader    bool
	release     chan struct{}
	consistency atomic.Int32
}

func (f *backupControl) SaveBackup(req *api.SaveBackupRequest, stream grpc.ServerStreamingServer[api.SaveBackupResponse]) error {
	f.calls.Add(1)
	f.consistency.Store(int32(req.GetConsistency()))
	if f.unavailable.Add(-1) >= 0 {
		return status.Error(codes.Unavailable, "no leader")
	}
	if f.noHeader {
		<-stream.Context().Done()
		return stream.Context().Err()
	}
	if err := stream.Send(&api.SaveBackupResponse{Header: &api.BackupHeader{RaftIndex: 9, BodyBytes: 6}}); err != nil {
		return err
	}
	if f.release != nil {
		<-f.release
	}
	for _, chunk := range []string{"abc", "de", "f"} {
		if err := stream.Send(&api.SaveBackupResponse{Chunk: []byte(chunk)}); err != nil {
			return err
		}
	}
	return nil
}

// A backup's start is retried while the manager is unavailable; its
// stream then reads whole, whatever time the transfer takes after the
// start.
func TestSaveBackup(t *testing.T) {
	fake := &backupControl{release: make(chan struct{})}
	fake.unavailable.Store(2)
	c := newClient(t, Config{Addrs: []string{tcpServer(t, fake)}})
	const startWithin = 200 * time.Millisecond
	b, err := c.SaveBackup(context.Background(), 10*time.Second, WithConsistency(Serializable))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.Header().GetRaftIndex() != 9 || fake.calls.Load() != 3 {
		t.Fatalf("header %v after %d calls, want index 9 after 3", b.Header(), fake.calls.Load())
	}
	if api.ReadConsistency(fake.consistency.Load()) != api.ReadConsistency_READ_CONSISTENCY_SERIALIZABLE {
		t.Errorf("the manager was asked for %v", api.ReadConsistency(fake.consistency.Load()))
	}
	b.Close()

	// The start is bounded, not the transfer.
	fake.unavailable.Store(0)
	b, err = c.SaveBackup(context.Background(), startWithin)
	if err != nil {
		t.Fatal(err)
	}
	<-time.After(2 * startWithin)
	close(fake.release)
	body, err := io.ReadAll(b)
	if err != nil || string(body) != "abcdef" || b.Received() != 6 {
		t.Fatalf("read %q (%d received), %v; want abcdef", body, b.Received(), err)
	}
}

func TestSaveBackupStartTimesOut(t *testing.T) {
	fake := &backupControl{noHeader: true}
	c := newClient(t, Config{Addrs: []string{tcpServer(t, fake)}})
	_, err := c.SaveBackup(context.Background(), 100*time.Millisecond)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("SaveBackup = %v, want DEADLINE_EXCEEDED", err)
	}
}
