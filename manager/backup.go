package manager

import (
	"errors"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/backup"
	"github.com/shoal-project/shoal/internal/buildinfo"
	"github.com/shoal-project/shoal/store"
)

// backupChunk is the most store bytes one SaveBackup response carries.
const backupChunk = 256 << 10

// SaveBackup streams a copy of the whole store: a linearizable read (unless
// serializable is asked for) brings this manager's store up to date with
// every write acknowledged before the call, then the store is captured
// (O(1), an immutable version) and written out while applying goes on. The
// header comes first, with the capture's index, its objects per kind and
// the exact length of the stream, which is written twice for that: once
// counted, once sent. The copy holds the cluster object's secrets, so the
// policy lets only admin certificates and the control socket call it.
func (s *controlServer) SaveBackup(req *api.SaveBackupRequest, stream grpc.ServerStreamingServer[api.SaveBackupResponse]) error {
	ctx := stream.Context()
	if err := s.read(ctx, req.GetConsistency()); err != nil {
		return err
	}
	capture := s.m.store.Capture()
	perKind, _ := capture.Objects()
	if perKind[store.KindCluster] == 0 {
		return status.Error(codes.Unavailable, "the cluster is not initialised yet (no cluster object): a backup could not found a cluster; try again once it has a leader")
	}
	size := &countingWriter{w: io.Discard}
	if err := capture.WriteSnapshot(size); err != nil {
		return status.Errorf(codes.Internal, "measuring the backup: %v", err)
	}
	header := &api.BackupHeader{
		ClusterId:    s.m.sec.identity.ClusterID,
		NodeId:       s.m.sec.identity.NodeID,
		ShoalVersion: shoalVersion(),
		CreatedAt:    timestamppb.Now(),
		RaftIndex:    capture.Index(),
		Objects:      perKind,
		BodyBytes:    uint64(size.n),
	}
	if err := stream.Send(&api.SaveBackupResponse{Header: header}); err != nil {
		return err
	}
	w := &chunkSender{stream: stream, buf: make([]byte, 0, backupChunk)}
	err := capture.WriteSnapshot(w)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		if errors.Is(err, errSend) {
			return w.err
		}
		return status.Errorf(codes.Internal, "writing the backup: %v", err)
	}
	s.m.log.Info("sent a backup", "index", capture.Index(), "objects", backup.CountsString(perKind), "bytes", size.n,
		"consistency", req.GetConsistency().String())
	return nil
}

// shoalVersion names this build for a backup's header.
func shoalVersion() string {
	bi := buildinfo.Read()
	if c := bi.ShortCommit(); c != "" {
		return bi.Version + " " + c
	}
	return bi.Version
}

// errSend marks a failed Send, whose error chunkSender keeps.
var errSend = errors.New("sending a chunk failed")

// chunkSender sends what is written to it in chunks of backupChunk bytes.
type chunkSender struct {
	stream grpc.ServerStreamingServer[api.SaveBackupResponse]
	buf    []byte
	err    error
}

func (c *chunkSender) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(c.buf[len(c.buf):cap(c.buf)], p)
		c.buf = c.buf[:len(c.buf)+k]
		p = p[k:]
		if len(c.buf) == cap(c.buf) {
			if err := c.flush(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (c *chunkSender) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	if err := c.stream.Send(&api.SaveBackupResponse{Chunk: c.buf}); err != nil {
		c.err = err
		return errSend
	}
	// A message must not change once sent: the next chunk gets a buffer
	// of its own.
	c.buf = make([]byte, 0, backupChunk)
	return nil
}
