package transport

import (
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Field numbers of raftpb that encodeSnapshotMessage writes by hand.
const (
	messageSnapshotField protowire.Number = 9 // raftpb.Message.snapshot
	snapshotDataField    protowire.Number = 1 // raftpb.Snapshot.data
)

// copyWithout returns a new message of m's type holding every populated
// field of m (unknown fields included) except skip. Composite fields are
// shared with m, not copied, so this costs the same whatever the size of the
// snapshot data.
func copyWithout[M proto.Message](m M, skip protoreflect.Name) M {
	src := m.ProtoReflect()
	dst := src.New()
	src.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Name() != skip {
			dst.Set(fd, v)
		}
		return true
	})
	dst.SetUnknown(src.GetUnknown())
	return dst.Interface().(M)
}

// detachSnapshotMessage returns a message equal to m that the caller may
// marshal on another goroutine: the message itself is new, and it shares only
// the snapshot, which Raft never modifies once it was handed out.
func detachSnapshotMessage(m *raftpb.Message) *raftpb.Message {
	c := copyWithout(m, "snapshot")
	c.Snapshot = m.Snapshot
	return c
}

// encodeSnapshotMessage returns the protobuf encoding of m as segments whose
// concatenation equals a valid encoding of m, without copying the snapshot
// data: the first segment holds every field but the data, the second segment
// is the data itself. proto.Unmarshal accepts fields in any order, so the
// receiver decodes the result as usual. A snapshot's data can be as large as
// the whole store, and one full copy per follower being caught up would
// double the leader's memory for as long as the transfer lasts.
func encodeSnapshotMessage(m *raftpb.Message) ([][]byte, error) {
	snap := m.GetSnapshot()
	if snap == nil || snap.Data == nil {
		b, err := proto.Marshal(m)
		if err != nil {
			return nil, err
		}
		return [][]byte{b}, nil
	}
	head, err := proto.Marshal(copyWithout(m, "snapshot"))
	if err != nil {
		return nil, fmt.Errorf("encode message header: %w", err)
	}
	snapHead, err := proto.Marshal(copyWithout(snap, "data"))
	if err != nil {
		return nil, fmt.Errorf("encode snapshot metadata: %w", err)
	}
	data := snap.Data
	dataHead := protowire.AppendTag(nil, snapshotDataField, protowire.BytesType)
	dataHead = protowire.AppendVarint(dataHead, uint64(len(data)))
	snapLen := len(snapHead) + len(dataHead) + len(data)

	head = protowire.AppendTag(head, messageSnapshotField, protowire.BytesType)
	head = protowire.AppendVarint(head, uint64(snapLen))
	head = append(head, snapHead...)
	head = append(head, dataHead...)
	return [][]byte{head, data}, nil
}

// totalLen returns the summed length of segs.
func totalLen(segs [][]byte) int {
	n := 0
	for _, s := range segs {
		n += len(s)
	}
	return n
}

// forEachChunk calls yield with consecutive chunks of the concatenation of
// segs, each size bytes long except the last, and stops at the first error.
// A chunk that lies inside one segment is a subslice of it; only chunks
// that straddle segments are copied. yield must not modify the chunks.
func forEachChunk(segs [][]byte, size int, yield func(chunk []byte) error) error {
	var pending []byte
	for _, s := range segs {
		for len(s) > 0 {
			if len(pending) == 0 && len(s) >= size {
				if err := yield(s[:size]); err != nil {
					return err
				}
				s = s[size:]
				continue
			}
			if pending == nil {
				pending = make([]byte, 0, size)
			}
			n := min(size-len(pending), len(s))
			pending = append(pending, s[:n]...)
			s = s[n:]
			if len(pending) == size {
				if err := yield(pending); err != nil {
					return err
				}
				pending = nil
			}
		}
	}
	if len(pending) > 0 {
		return yield(pending)
	}
	return nil
}
