package store

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/api"
)

// heldSnapIndex is the snapshot index the record tests restore at.
const heldSnapIndex = 100

// objectRecord returns o's snapshot record as writeSnapshot writes it:
// the store's encoding of o as field 2.
func objectRecord(t testing.TB, o *api.Object) []byte {
	t.Helper()
	s, err := storeObject(o)
	if err != nil {
		t.Fatal(err)
	}
	return protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), s.blob)
}

func heldObject() *api.Object {
	return &api.Object{
		Kind: "service", Id: "abc123", Name: "web-1", Labels: map[string]string{"tier": "front", "zone": "b"},
		Spec: []byte(`{"replicas": 3}`), Version: 7,
		CreatedAt: &timestamppb.Timestamp{Seconds: 1700000000, Nanos: 5}, UpdatedAt: &timestamppb.Timestamp{Seconds: 1700000001},
	}
}

// TestHeldAsIsTakesTheStoresOwnRecords: a record as writeSnapshot writes
// it is restored without decoding; one that decoding would take
// differently, or that a check refuses, is left to decoding.
func TestHeldAsIsTakesTheStoresOwnRecords(t *testing.T) {
	tag := protowire.AppendTag(nil, 2, protowire.BytesType)
	withField := func(o *api.Object, extra ...byte) []byte {
		s, err := storeObject(o)
		if err != nil {
			t.Fatal(err)
		}
		return protowire.AppendBytes(tag, append([]byte(s.blob), extra...))
	}
	modified := func(change func(o *api.Object)) []byte {
		o := heldObject()
		change(o)
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		return protowire.AppendBytes(tag, b)
	}
	for _, tc := range []struct {
		name   string
		record []byte
		asIs   bool
	}{
		{"the store's own", objectRecord(t, heldObject()), true},
		{"no labels", objectRecord(t, func() *api.Object { o := heldObject(); o.Labels = nil; return o }()), true},
		{"an unknown field", withField(heldObject(), 0x48, 0x01), false},
		{"the kind twice", withField(heldObject(), 0x0a, 0x01, 'x'), false},
		{"created_at twice", withField(heldObject(), 0x3a, 0x00), false},
		{"version as bytes", withField(heldObject(), 0x32, 0x00), false},
		{"a label key twice", withField(heldObject(), 0x22, 0x06, 0x0a, 0x04, 't', 'i', 'e', 'r'), false},
		{"no updated_at", modified(func(o *api.Object) { o.UpdatedAt = nil }), false},
		{"invalid nanos", modified(func(o *api.Object) { o.CreatedAt.Nanos = -1 }), false},
		{"version 0", modified(func(o *api.Object) { o.Version = 0 }), false},
		{"version after the snapshot", modified(func(o *api.Object) { o.Version = heldSnapIndex + 1 }), false},
		{"invalid name", modified(func(o *api.Object) { o.Name = "-x" }), false},
		{"invalid label value", modified(func(o *api.Object) { o.Labels["zone"] = "\x01" }), false},
		{"another record", protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), nil), false},
		{"data after the object", append(objectRecord(t, heldObject()), 0x18, 0x01), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sr := &snapshotReader{buf: tc.record}
			s, ok := sr.heldAsIs(heldSnapIndex)
			if ok != tc.asIs {
				t.Fatalf("held as is: %v, want %v", ok, tc.asIs)
			}
			if ok {
				sameAsDecoded(t, sr, s)
			}
		})
	}
}

// FuzzHeldAsIs: whatever heldAsIs takes without decoding, decoding and
// checking take too, and hold the same way.
//
//	go test -run '^$' -fuzz FuzzHeldAsIs ./store/
func FuzzHeldAsIs(f *testing.F) {
	f.Add(objectRecord(f, heldObject()))
	o := heldObject()
	o.Labels = nil
	f.Add(objectRecord(f, o))
	f.Add([]byte{0x12, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		sr := &snapshotReader{buf: data}
		if s, ok := sr.heldAsIs(heldSnapIndex); ok {
			sameAsDecoded(t, sr, s)
		}
	})
}

// sameAsDecoded requires the record sr read to decode into an object that
// checkStored accepts and that is held as s.
func sameAsDecoded(t *testing.T, sr *snapshotReader, s stored) {
	t.Helper()
	rec, err := sr.record()
	if err != nil {
		t.Fatalf("held as is, but decoding fails: %v", err)
	}
	o := rec.GetObject()
	if o == nil {
		t.Fatal("held as is, but not an object record")
	}
	if err := checkStored(o, heldSnapIndex); err != nil {
		t.Fatalf("held as is, but checkStored refuses it: %v", err)
	}
	d, err := sr.held(o, snapshotFormat)
	if err != nil {
		t.Fatal(err)
	}
	if s.blob != d.blob || s.id != d.id || s.kind != d.kind || s.name != d.name || s.version != d.version ||
		s.createdAt != d.createdAt || s.hasCreatedAt != d.hasCreatedAt || len(s.labels) != len(d.labels) {
		t.Fatalf("held as is as %+v, decoded as %+v", s, d)
	}
	for i := range s.labels {
		if s.labels[i] != d.labels[i] {
			t.Fatalf("label %d held as is as %+v, decoded as %+v", i, s.labels[i], d.labels[i])
		}
	}
}
