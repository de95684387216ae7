package transport

import (
	"bytes"
	"testing"

	"github.com/shoal-project/shoal/api"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	var seeds [][]byte
	for _, m := range []*raftpb.Message{
		msg(raftpb.MsgHeartbeat, 1, 2, 0),
		fullMessage(raftpb.MsgApp, 1, 2),
		snapshotMsg(1, 2, 300),
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return append(seeds, []byte{0x0f, 0x01}, nil)
}

// FuzzDecodeMessage feeds ProcessRaftMessage's decoding with bytes as they
// come from the network.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := decodeMessage(data)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("refused with %v, want InvalidArgument", err)
			}
			return
		}
		again, err := proto.Marshal(m)
		if err != nil {
			t.Fatalf("a decoded message does not encode: %v", err)
		}
		m2 := &raftpb.Message{}
		if err := proto.Unmarshal(again, m2); err != nil || !proto.Equal(m, m2) {
			t.Fatalf("re-encoding does not round-trip: %v", err)
		}
	})
}

// FuzzStreamReassembly feeds StreamRaftMessage's reassembly and decoding
// with a stream of chunks: data cut into chunks of chunkSize bytes, the
// first announcing len(data)+sizeDelta bytes, against a limit of limit
// bytes.
func FuzzStreamReassembly(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s, uint16(7), int16(0), uint32(1<<20))
		f.Add(s, uint16(0), int16(-1), uint32(1<<20))
		f.Add(s, uint16(3), int16(5), uint32(1<<20))
		f.Add(s, uint16(100), int16(0), uint32(10))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunkSize uint16, sizeDelta int16, limit uint32) {
		total := uint64(max(int64(len(data))+int64(sizeDelta), 0))
		r := reassembler{max: uint64(limit)}
		size := int(chunkSize)
		if size == 0 {
			size = max(len(data), 1)
		}
		var addErr error
		for off, first := 0, true; off < len(data) || first; first = false {
			end := min(off+size, len(data))
			req := &api.StreamRaftMessageRequest{Chunk: data[off:end]}
			if first {
				req.TotalSize = total
			}
			off = end
			if addErr = r.add(req); addErr != nil {
				break
			}
			if uint64(cap(r.buf)) > total {
				t.Fatalf("buffer of %d bytes for a message announced at %d", cap(r.buf), total)
			}
		}
		if addErr != nil {
			switch code := status.Code(addErr); {
			case code == codes.ResourceExhausted && total > uint64(limit):
			case code == codes.InvalidArgument:
			default:
				t.Fatalf("chunk refused with %v (total %d, limit %d)", addErr, total, limit)
			}
			return
		}
		if total > uint64(limit) {
			t.Fatalf("accepted %d bytes over a limit of %d", total, limit)
		}
		m, err := r.message()
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("refused with %v, want InvalidArgument", err)
			}
			return
		}
		if total != uint64(len(data)) || !bytes.Equal(r.buf, data) {
			t.Fatalf("accepted %d bytes announced as %d", len(r.buf), total)
		}
		want := &raftpb.Message{}
		if err := proto.Unmarshal(data, want); err != nil || !proto.Equal(m, want) {
			t.Fatalf("reassembled message differs from the bytes sent (%v)", err)
		}
	})
}
