package backup_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/backup"
	"github.com/shoal-project/shoal/store"
)

// fixture is a store's snapshot stream and the header a manager would
// send with it.
type fixture struct {
	header *api.BackupHeader
	body   []byte
}

// newFixture applies n objects of kind "item" and one of kind "cluster" to
// a store, as committed entries, and captures it.
func newFixture(t testing.TB, n int, specBytes int) fixture {
	t.Helper()
	s, err := store.New(store.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	now := timestamppb.New(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC))
	index := uint64(0)
	apply := func(objs ...*api.Object) {
		var actions api.StoreActions
		for _, o := range objs {
			o.CreatedAt, o.UpdatedAt = now, now
			actions.Actions = append(actions.Actions, &api.StoreAction{Kind: api.StoreActionKind_STORE_ACTION_KIND_CREATE, Object: o})
		}
		payload, err := proto.Marshal(&actions)
		if err != nil {
			t.Fatal(err)
		}
		index += 3 // entries between that changed nothing in the store
		if _, err := s.Apply(index, payload); err != nil {
			t.Fatalf("apply: %v", err)
		}
	}
	apply(&api.Object{Kind: "cluster", Id: "c0000000000000000000000000", Name: "default", Spec: []byte(`{"cluster_id":"abc"}`)})
	spec := bytes.Repeat([]byte("x"), specBytes)
	for i := 0; i < n; i += 100 {
		var batch []*api.Object
		for j := i; j < min(n, i+100); j++ {
			batch = append(batch, &api.Object{Kind: "item", Id: fmt.Sprintf("i%025d", j), Name: fmt.Sprintf("item-%d", j),
				Spec: []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, j, spec))})
		}
		apply(batch...)
	}
	c := s.Capture()
	var body bytes.Buffer
	if err := c.WriteSnapshot(&body); err != nil {
		t.Fatal(err)
	}
	perKind, _ := c.Objects()
	return fixture{
		header: &api.BackupHeader{ClusterId: "abc", NodeId: "manager-1", ShoalVersion: "test", CreatedAt: now,
			RaftIndex: c.Index(), Objects: perKind, BodyBytes: uint64(body.Len())},
		body: body.Bytes(),
	}
}

// write writes f as a backup file, encrypted with key unless it is nil.
func (f fixture) write(t testing.TB, key *backup.Key) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := backup.NewWriter(&out, f.header, key)
	if err != nil {
		t.Fatal(err)
	}
	// In pieces of odd sizes, as chunks of a stream arrive.
	for rest := f.body; len(rest) > 0; {
		n := min(len(rest), 77777)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func mustKey(t testing.TB, secret string) *backup.Key {
	t.Helper()
	k, err := backup.NewKey("test.key", []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
