package store

import (
	"math/rand/v2"
	"testing"
	"unsafe"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
)

// TestLessIDOrdersAsStrings checks that comparing ids by their prefix
// first gives the strings' own order, for ids that share a prefix of 8
// bytes or more, ids shorter than 8 bytes, and random ones.
func TestLessIDOrdersAsStrings(t *testing.T) {
	pairs := [][2]string{
		{"a", "b"}, {"abc", "abcd"}, {"abcdefgh", "abcdefghi"}, {"abcdefgh1", "abcdefgh2"},
		{"abcdefgh9", "abcdefgi"}, {"9", "a"}, {"zz", "zzzzzzzzzzzz"}, {"same", "same"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789"
	randomID := func() string {
		b := make([]byte, 1+rng.IntN(14))
		for i := range b {
			b[i] = chars[rng.IntN(3)] // few letters: long shared prefixes
		}
		return string(b)
	}
	for range 10000 {
		pairs = append(pairs, [2]string{randomID(), randomID()})
	}
	for _, p := range pairs {
		a, b := idKey(p[0]), idKey(p[1])
		if lessID(a, b) != (p[0] < p[1]) || lessID(b, a) != (p[1] < p[0]) {
			t.Fatalf("lessID(%q, %q) = %v, lessID(%q, %q) = %v; want the strings' order", p[0], p[1], lessID(a, b), p[1], p[0], lessID(b, a))
		}
	}
}

// TestSelectedFieldsKeepNoBlob checks that an update event's Old object
// holds copies of the fields, not substrings of the old blob, which would
// keep the old object's whole encoding alive in the watch history.
func TestSelectedFieldsKeepNoBlob(t *testing.T) {
	s, err := storeObject(&api.Object{Kind: "svc", Id: "abc123", Name: "web",
		Labels: map[string]string{"tier": "front", "team": "a"}, Spec: make([]byte, 4096)})
	if err != nil {
		t.Fatal(err)
	}
	old, n := selectedFields(s)
	if n != len("svc"+"abc123"+"web"+"tier"+"front"+"team"+"a") {
		t.Errorf("%d bytes copied", n)
	}
	want := &api.Object{Kind: "svc", Id: "abc123", Name: "web", Labels: map[string]string{"tier": "front", "team": "a"}}
	if !proto.Equal(old, want) {
		t.Fatalf("selected fields %v, want %v", old, want)
	}
	lo := uintptr(unsafe.Pointer(unsafe.StringData(s.blob)))
	hi := lo + uintptr(len(s.blob))
	inBlob := func(f string) bool {
		p := uintptr(unsafe.Pointer(unsafe.StringData(f)))
		return p >= lo && p < hi
	}
	fields := []string{old.GetKind(), old.GetId(), old.GetName()}
	for k, v := range old.GetLabels() {
		fields = append(fields, k, v)
	}
	for _, f := range fields {
		if inBlob(f) {
			t.Errorf("field %q is a substring of the blob", f)
		}
	}
}
