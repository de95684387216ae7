package client

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
)

// Backup is a backup being received from a manager: its header, then the
// store's snapshot stream, read with Read. Package backup writes it to a
// file. It is not safe for concurrent use, but Received and Close may be
// called from any goroutine.
type Backup struct {
	stream   grpc.ServerStreamingClient[api.SaveBackupResponse]
	cancel   context.CancelFunc
	header   *api.BackupHeader
	buf      []byte
	received atomic.Int64
}

// SaveBackup asks the manager for a copy of the whole store (the cluster
// object with the root CA's key and the join token included: admin
// certificates and the control socket only) and returns once its header
// has arrived. The manager first brings its store up to date with every
// write acknowledged before the call (a linearizable read), unless
// WithConsistency(Serializable) asks for its own copy as it is, which works
// without a leader. The start is retried, as a read, for up to
// startWithin; the transfer then lasts as long as ctx allows.
func (c *Client) SaveBackup(ctx context.Context, startWithin time.Duration, opts ...ReadOption) (*Backup, error) {
	req := &api.SaveBackupRequest{Consistency: readOpts(opts).consistency.proto()}
	startCtx, cancelStart := context.WithTimeout(ctx, startWithin)
	defer cancelStart()
	var b *Backup
	err := withRetry(startCtx, always, func(startCtx context.Context) error {
		streamCtx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(startCtx, cancel) // only the start is bounded
		stream, err := c.control.SaveBackup(streamCtx, req, callOptions(startCtx)...)
		var first *api.SaveBackupResponse
		if err == nil {
			first, err = stream.Recv()
		}
		if !stop() {
			cancel()
			return status.Errorf(codes.DeadlineExceeded, "the manager did not start the backup within %v", startWithin)
		}
		switch {
		case errors.Is(err, io.EOF):
			err = status.Error(codes.Unavailable, "the manager ended the backup before it started")
		case err == nil && first.GetHeader() == nil:
			err = status.Error(codes.Internal, "the manager's backup began without its header")
		}
		if err != nil {
			cancel()
			return err
		}
		b = &Backup{stream: stream, cancel: cancel, header: first.GetHeader()}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Header describes the backup: where and when it was taken, the Raft
// index, the objects per kind and the length of the stream.
func (b *Backup) Header() *api.BackupHeader { return b.header }

// Read reads the store's snapshot stream; io.EOF at its end.
func (b *Backup) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		resp, err := b.stream.Recv()
		if err != nil {
			return 0, err
		}
		b.buf = resp.GetChunk()
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	b.received.Add(int64(n))
	return n, nil
}

// Received is how many bytes of the stream Read has returned.
func (b *Backup) Received() int64 { return b.received.Load() }

// Close ends the transfer.
func (b *Backup) Close() { b.cancel() }
