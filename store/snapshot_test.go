package store_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/store"
)

// fillStore makes n objects of several kinds with labels, then updates and
// deletes some, so that versions differ.
func fillStore(t testing.TB, s *store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := s.Batch(ctx, func(b *store.Batch) error {
		for i := range n {
			kind := []string{"service", "node", "volume"}[i%3]
			if err := b.Update(func(tx store.Tx) error {
				_, err := tx.Create(obj(kind, fmt.Sprint("o", i), fmt.Sprint("shard=", i%4), "app=x"))
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list(t, s, store.Selector{Kind: "node"})[:n/10] {
		if _, err := s.Update(ctx, func(tx store.Tx) error { return tx.Delete(o.GetKind(), o.GetId(), o.GetVersion()) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, o := range list(t, s, store.Selector{Kind: "service"})[:n/10] {
		next := proto.CloneOf(o)
		next.Labels["shard"] = "moved"
		if _, err := s.Update(ctx, func(tx store.Tx) error { return tx.Update(next) }); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSnapshotRoundTrip captures a store, keeps applying while the capture
// is written, restores it elsewhere and finds it identical to the state at
// the capture, indexes included.
func TestSnapshotRoundTrip(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxActions = 50
	s := newStore(t, cfg)
	fillStore(t, s, 300)
	version, wantHash := s.Hash()
	wantDump := dump(t, s)
	write, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}

	// Write while more entries are applied: the capture must not move.
	var snap bytes.Buffer
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := write(&snap); err != nil {
			t.Error(err)
		}
	})
	for i := range 50 {
		mustCreate(t, s, obj("service", fmt.Sprint("later", i)))
	}
	wg.Wait()

	for _, restoreAt := range []uint64{version, version + 7} {
		r, err := store.New(testConfig(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		if err := r.Restore(restoreAt, bytes.NewReader(snap.Bytes())); err != nil {
			t.Fatal(err)
		}
		gotVersion, gotHash := r.Hash()
		if gotHash != wantHash || gotVersion != restoreAt {
			t.Fatalf("restored at %d: hash %s version %d, want %s %d", restoreAt, gotHash, gotVersion, wantHash, restoreAt)
		}
		if _, got, _ := strings.Cut(dump(t, r), "\n"); !strings.HasSuffix(wantDump, got) {
			t.Fatalf("restored dump differs:\n%s\nwant\n%s", got, wantDump)
		}
		sel := store.Selector{Kind: "service", Labels: map[string]string{"shard": "moved"}}
		if got, want := names(list(t, r, sel)), names(list(t, s, sel)); got != want {
			t.Fatalf("label index after restore: %s, want %s", got, want)
		}
		if got, want := names(list(t, r, store.Selector{Kind: "volume", NamePrefix: "o1"})), names(list(t, s, store.Selector{Kind: "volume", NamePrefix: "o1"})); got != want {
			t.Fatalf("name index after restore: %s, want %s", got, want)
		}
	}
}

func TestSnapshotOfEmptyStore(t *testing.T) {
	s := newStore(t, testConfig(t))
	write, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r := newStore(t, testConfig(t))
	mustCreate(t, r, obj("service", "goes-away"))
	if err := r.Restore(3, writeToBuffer(t, write)); err != nil {
		t.Fatal(err)
	}
	if got := list(t, r, store.Selector{}); len(got) != 0 || r.Version() != 3 {
		t.Fatalf("after restoring an empty snapshot: %s at %d", names(got), r.Version())
	}
}

// snapshotBytes returns a snapshot of a small store taken at its version.
func snapshotBytes(t testing.TB) ([]byte, uint64) {
	t.Helper()
	s := newStore(t, testConfig(t))
	fillStore(t, s, 6)
	for _, id := range []string{"request-2", "request-1"} { // remembered requests too
		if _, err := s.UpdateRequest(context.Background(), []byte(id), func(tx store.Tx) error {
			_, err := tx.Create(obj("service", id))
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	write, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), s.Version()
}

// requireRestoreFails checks that restoring data fails with
// ErrCorruptSnapshot and leaves the store as it was.
func requireRestoreFails(t *testing.T, s *store.Store, index uint64, data []byte, what string) {
	t.Helper()
	version, hash := s.Hash()
	err := s.Restore(index, bytes.NewReader(data))
	if !errors.Is(err, store.ErrCorruptSnapshot) {
		t.Fatalf("%s: Restore = %v, want ErrCorruptSnapshot", what, err)
	}
	if v, h := s.Hash(); v != version || h != hash {
		t.Fatalf("%s: a failed Restore changed the store", what)
	}
}

func TestRestoreRejectsDamage(t *testing.T) {
	good, index := snapshotBytes(t)
	s := newStore(t, testConfig(t))
	mustCreate(t, s, obj("service", "survivor"))

	for n := range len(good) {
		requireRestoreFails(t, s, index, good[:n], fmt.Sprint("truncated to ", n))
	}
	for i := range good {
		for _, mask := range []byte{0x01, 0xff} {
			bad := bytes.Clone(good)
			bad[i] ^= mask
			requireRestoreFails(t, s, index, bad, fmt.Sprintf("byte %d ^ %#x", i, mask))
		}
	}
	requireRestoreFails(t, s, index, append(bytes.Clone(good), 0), "a byte after the trailer")
	requireRestoreFails(t, s, index-1, good, "restored below the header's index")
	if err := s.Restore(index, bytes.NewReader(good)); err != nil {
		t.Fatalf("the undamaged snapshot: %v", err)
	}
}

// craft builds a snapshot from records, with a correct trailer, so that
// the checks behind the CRC can be reached.
func craft(t testing.TB, header *api.StoreSnapshotHeader, objs ...*api.Object) []byte {
	t.Helper()
	return craftWithRequests(t, header, objs, nil)
}

// craftWithRequests is craft with remembered requests after the objects.
func craftWithRequests(t testing.TB, header *api.StoreSnapshotHeader, objs []*api.Object, reqs []*api.RememberedRequest) []byte {
	t.Helper()
	var recs []*api.StoreSnapshotRecord
	for _, o := range objs {
		recs = append(recs, &api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Object{Object: o}})
	}
	for _, r := range reqs {
		recs = append(recs, &api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Request{Request: r}})
	}
	return craftRecords(t, header, recs...)
}

// craftRecords frames the header, recs in their order, and a trailer that
// counts them right.
func craftRecords(t testing.TB, header *api.StoreSnapshotHeader, recs ...*api.StoreSnapshotRecord) []byte {
	t.Helper()
	b := []byte("SHOALSNP")
	add := func(rec *api.StoreSnapshotRecord) {
		enc, err := proto.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		b = binary.AppendUvarint(b, uint64(len(enc)))
		b = append(b, enc...)
	}
	add(&api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Header{Header: header}})
	var objects, requests uint64
	for _, rec := range recs {
		add(rec)
		if rec.GetRequest() != nil {
			requests++
		} else {
			objects++
		}
	}
	crc := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
	add(&api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Trailer{
		Trailer: &api.StoreSnapshotTrailer{Objects: objects, Crc32C: crc, Requests: requests},
	}})
	return b
}

func TestRestoreRejectsInconsistentContent(t *testing.T) {
	stored := func(kind, name, id string, version uint64) *api.Object {
		o := validAction(api.StoreActionKind_STORE_ACTION_KIND_CREATE, withID(obj(kind, name), id), 0).GetObject()
		o.Version = version
		return o
	}
	h := &api.StoreSnapshotHeader{Format: 1, Index: 10}
	h2 := &api.StoreSnapshotHeader{Format: 2, Index: 10}
	req := func(id string, index uint64) *api.RememberedRequest {
		return &api.RememberedRequest{Id: []byte(id), Index: index, Refs: []*api.RememberedRef{{Kind: "service", Id: "ida"}}}
	}
	withRequests := func(h *api.StoreSnapshotHeader, reqs ...*api.RememberedRequest) []byte {
		return craftWithRequests(t, h, []*api.Object{stored("service", "a", "ida", 3)}, reqs)
	}
	tests := []struct {
		name string
		data []byte
		ok   bool
	}{
		{"valid", craft(t, h, stored("service", "a", "ida", 3), stored("service", "b", "idb", 10)), true},
		{"duplicate id", craft(t, h, stored("service", "a", "ida", 3), stored("node", "b", "ida", 4)), false},
		{"duplicate name", craft(t, h, stored("service", "a", "ida", 3), stored("service", "a", "idb", 4)), false},
		{"version above the header", craft(t, h, stored("service", "a", "ida", 11)), false},
		{"version 0", craft(t, h, stored("service", "a", "ida", 0)), false},
		{"invalid kind", craft(t, h, stored("Service", "a", "ida", 1)), false},
		{"no times", craft(t, h, &api.Object{Kind: "service", Name: "a", Id: "ida", Version: 1}), false},
		{"unknown format", craft(t, &api.StoreSnapshotHeader{Format: 3, Index: 10}), false},
		{"remembered requests", withRequests(h2, req("r1", 3), req("r2", 10)), true},
		{"a request above the header", withRequests(h2, req("r1", 11)), false},
		{"a request at index 0", withRequests(h2, req("r1", 0)), false},
		{"requests out of index order", withRequests(h2, req("r1", 4), req("r2", 3)), false},
		{"a request twice", withRequests(h2, req("r1", 3), req("r1", 4)), false},
		{"a request without refs", withRequests(h2, &api.RememberedRequest{Id: []byte("r1"), Index: 3}), false},
		{"a request without an ID", withRequests(h2, &api.RememberedRequest{Index: 3, Refs: []*api.RememberedRef{{Kind: "service", Id: "ida"}}}), false},
		{"a request ID too long", withRequests(h2, req(string(make([]byte, store.MaxRequestIDLen+1)), 3)), false},
		{"an object after a request", craftRecords(t, h2,
			&api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Request{Request: req("r1", 3)}},
			&api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Object{Object: stored("service", "a", "ida", 3)}}), false},
		{"no header", craft(t, nil), false},
		{"empty input", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, testConfig(t))
			if tt.ok {
				if err := s.Restore(10, bytes.NewReader(tt.data)); err != nil {
					t.Fatal(err)
				}
				return
			}
			requireRestoreFails(t, s, 10, tt.data, tt.name)
		})
	}
}

// A snapshot's object records are kept as the store's own encodings when
// they check out; one whose encoding repeats a label key (which a decoder
// reads as the last value) is encoded again: the store then holds what it
// holds when the snapshot says it plainly.
func TestRestoreEncodesAgainWhatItCannotKeep(t *testing.T) {
	object := func(name, id, tier string, version uint64) *api.Object {
		o := validAction(api.StoreActionKind_STORE_ACTION_KIND_CREATE, withID(obj("service", name, "tier="+tier), id), 0).GetObject()
		o.Version = version
		o.CreatedAt, o.UpdatedAt = timestamppb.New(time.Unix(1e9, 0)), timestamppb.New(time.Unix(1e9, 0))
		return o
	}
	repeated := object("a", "ida", "front", 3)
	entry := protowire.AppendTag(nil, 1, protowire.BytesType)
	entry = protowire.AppendString(entry, "tier")
	entry = protowire.AppendTag(entry, 2, protowire.BytesType)
	entry = protowire.AppendString(entry, "back")
	repeated.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 4, protowire.BytesType), entry))
	h := &api.StoreSnapshotHeader{Format: 2, Index: 10}

	got, want := newStore(t, testConfig(t)), newStore(t, testConfig(t))
	if err := got.Restore(10, bytes.NewReader(craft(t, h, repeated, object("b", "idb", "front", 4)))); err != nil {
		t.Fatal(err)
	}
	if err := want.Restore(10, bytes.NewReader(craft(t, h, object("a", "ida", "back", 3), object("b", "idb", "front", 4)))); err != nil {
		t.Fatal(err)
	}
	_, gotHash := got.Hash()
	_, wantHash := want.Hash()
	if gotHash != wantHash {
		t.Error("the store restored from the repeated label key holds other bytes than the one restored from the plain snapshot")
	}
	if got := names(list(t, got, store.Selector{Kind: "service", Labels: map[string]string{"tier": "back"}})); got != "service/a" {
		t.Errorf("services with tier=back: %s, want service/a", got)
	}
}
