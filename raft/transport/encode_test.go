package transport

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

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
