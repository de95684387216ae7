package keys

import (
	"fmt"
	"testing"
)

// The cost of sealing one Raft entry: a per-message key derivation, then
// AES-GCM.
func BenchmarkSeal(b *testing.B) {
	k := mustCreate(b, testConfig(b))
	for _, size := range []int{0, 256, 4 << 10, 1 << 20} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			plain := make([]byte, size)
			ad := make([]byte, 24)
			b.SetBytes(int64(size))
			for b.Loop() {
				if _, err := k.Seal(plain, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	k := mustCreate(b, testConfig(b))
	sealed := mustSeal(b, k, string(make([]byte, 4<<10)), "ad")
	b.SetBytes(4 << 10)
	for b.Loop() {
		if _, err := k.Open(sealed, []byte("ad")); err != nil {
			b.Fatal(err)
		}
	}
}
