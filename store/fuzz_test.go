package store_test

import (
	"bytes"
	"testing"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/store"
)

// FuzzApply feeds arbitrary entry payloads to Apply, on top of a store that
// already holds objects: no panic, and whatever was accepted survives a
// snapshot round trip unchanged.
//
//	go test -run '^$' -fuzz FuzzApply ./store/
func FuzzApply(f *testing.F) {
	create := api.StoreActionKind_STORE_ACTION_KIND_CREATE
	update := api.StoreActionKind_STORE_ACTION_KIND_UPDATE
	del := api.StoreActionKind_STORE_ACTION_KIND_DELETE
	f.Add(payload(f, validAction(create, withID(obj("service", "b", "k=v"), "idb"), 0)))
	f.Add(payload(f, validAction(update, withID(obj("service", "a2"), "ida"), 1)))
	f.Add(payload(f, validAction(del, withID(obj("service", "a"), "ida"), 0), validAction(create, withID(obj("node", "a"), "ida"), 0)))
	f.Add(entryWithID(f, "request-1", validAction(create, withID(obj("service", "c"), "idc"), 0)))
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x00})
	seed := payload(f, validAction(create, withID(obj("service", "a", "tier=x"), "ida"), 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := store.New(testConfig(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.Apply(1, seed); err != nil {
			t.Fatal(err)
		}
		res, err := s.Apply(2, data)
		if err == nil {
			if r, ok := res.(*store.Result); !ok || r.Version != 2 {
				t.Fatalf("accepted entry returned %#v", res)
			}
		}
		roundTrip(t, s)
	})
}

// FuzzRestore feeds arbitrary bytes to Restore: no panic, and an accepted
// snapshot survives another round trip unchanged.
//
//	go test -run '^$' -fuzz FuzzRestore ./store/
func FuzzRestore(f *testing.F) {
	good, _ := snapshotBytes(f)
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte("SHOALSNP"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := store.New(testConfig(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Restore(1<<40, bytes.NewReader(data)); err != nil {
			return
		}
		roundTrip(t, s)
	})
}

// roundTrip snapshots s, restores the snapshot into a new store and
// requires the same hash.
func roundTrip(t *testing.T, s *store.Store) {
	t.Helper()
	version, want := s.Hash()
	write, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.New(testConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Restore(version, writeToBuffer(t, write)); err != nil {
		t.Fatalf("restoring a snapshot of an accepted state: %v", err)
	}
	if _, got := r.Hash(); got != want {
		t.Fatalf("hash after round trip %s, want %s", got, want)
	}
}
