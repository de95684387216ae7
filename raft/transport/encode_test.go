package transport

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func TestEncodeSnapshotMessage(t *testing.T) {
	withUnknown := snapshotMsg(1, 2, 100)
	withUnknown.ProtoReflect().SetUnknown([]byte{0xf8, 0x07, 0x01}) // field 127, varint 1
	withUnknown.Snapshot.ProtoReflect().SetUnknown([]byte{0xf8, 0x07, 0x02})
	noMetadata := snapshotMsg(1, 2, 10)
	noMetadata.Snapshot.Metadata = nil
	emptyData := snapshotMsg(1, 2, 0)
	nilData := snapshotMsg(1, 2, 0)
	nilData.Snapshot.Data = nil
	noSnapshot := msg(raftpb.MsgSnap, 1, 2, 0)

	tests := []struct {
		name string
		m    *raftpb.Message
	}{
		{"large data", snapshotMsg(1, 2, 3<<20)},
		{"data over 127 bytes (multi-byte length)", snapshotMsg(1, 2, 200)},
		{"unknown fields", withUnknown},
		{"no metadata", noMetadata},
		{"empty data", emptyData},
		{"nil data", nilData},
		{"no snapshot", noSnapshot},
		{"every field", func() *raftpb.Message {
			m := fullMessage(raftpb.MsgSnap, 1, 2)
			m.Snapshot = snapshotMsg(1, 2, 1000).Snapshot
			return m
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			segs, err := encodeSnapshotMessage(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			got := &raftpb.Message{}
			if err := proto.Unmarshal(bytes.Join(segs, nil), got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !proto.Equal(got, tt.m) {
				t.Fatalf("decoded\n%v\nwant\n%v", got, tt.m)
			}
			if data := tt.m.GetSnapshot().GetData(); len(data) > 0 {
				if last := segs[len(segs)-1]; &last[0] != &data[0] {
					t.Fatal("the snapshot data was copied")
				}
			}
		})
	}
}

func TestDetachSnapshotMessage(t *testing.T) {
	m := fullMessage(raftpb.MsgSnap, 1, 2)
	m.Snapshot = snapshotMsg(1, 2, 10).Snapshot
	c := detachSnapshotMessage(m)
	if c == m || !proto.Equal(c, m) {
		t.Fatal("copy is not a distinct equal message")
	}
	if c.Snapshot != m.Snapshot {
		t.Fatal("the snapshot was copied")
	}
}

func TestForEachChunk(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	seg := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	tests := []struct {
		segs [][]byte
		size int
	}{
		{nil, 4},
		{[][]byte{seg(10)}, 4},
		{[][]byte{seg(12)}, 4},
		{[][]byte{seg(3), seg(10)}, 4},
		{[][]byte{seg(3), nil, seg(1), seg(9)}, 4},
		{[][]byte{seg(100), seg(1 << 12)}, 1000},
		{[][]byte{seg(5)}, 1},
		{[][]byte{seg(5)}, 100},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d bytes by %d", totalLen(tt.segs), tt.size), func(t *testing.T) {
			var chunks [][]byte
			err := forEachChunk(tt.segs, tt.size, func(c []byte) error {
				chunks = append(chunks, c)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := bytes.Join(chunks, nil), bytes.Join(tt.segs, nil); !bytes.Equal(got, want) {
				t.Fatal("chunks do not add up to the segments")
			}
			for i, c := range chunks {
				if len(c) == 0 || len(c) > tt.size || (i < len(chunks)-1 && len(c) != tt.size) {
					t.Fatalf("chunk %d of %d has %d bytes", i, len(chunks), len(c))
				}
			}
		})
	}
	stop := fmt.Errorf("stop")
	calls := 0
	err := forEachChunk([][]byte{seg(100)}, 10, func([]byte) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("err = %v after %d calls, want the first error at once", err, calls)
	}
}
