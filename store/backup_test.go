package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/shoal-project/shoal/store"
)

// A capture for a backup counts what it holds, stays as it was while the
// store moves on, and its stream passes CheckSnapshot, which gives back
// the same objects without a Store.
func TestCaptureAndCheckSnapshot(t *testing.T) {
	s := newStore(t, testConfig(t))
	fillStore(t, s, 90)
	want := map[string]uint64{}
	for _, kind := range []string{"service", "node", "volume"} {
		want[kind] = uint64(len(list(t, s, store.Selector{Kind: kind})))
	}
	wantDump := dump(t, s)
	c := s.Capture()
	if c.Index() != s.Version() {
		t.Fatalf("capture index %d, store version %d", c.Index(), s.Version())
	}
	mustCreate(t, s, obj("service", "after-the-capture"))

	perKind, size := c.Objects()
	if !maps.Equal(perKind, want) {
		t.Errorf("capture counts %v, want %v", perKind, want)
	}
	if size == 0 {
		t.Error("capture counts no bytes")
	}
	var stream bytes.Buffer
	if err := c.WriteSnapshot(&stream); err != nil {
		t.Fatal(err)
	}
	contents, err := store.CheckSnapshot(c.Index(), bytes.NewReader(stream.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got := contents.Objects(); !maps.Equal(got, want) {
		t.Errorf("contents count %v, want %v", got, want)
	}
	// The same objects as the store had at the capture.
	restored := newStore(t, testConfig(t))
	if err := restored.Restore(c.Index(), bytes.NewReader(stream.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := dump(t, restored); got != wantDump {
		t.Errorf("restored:\n%s\nwant:\n%s", got, wantDump)
	}
	contents.View(func(tx store.ReadTx) {
		if tx.Version() != c.Index() {
			t.Errorf("contents at version %d, want %d", tx.Version(), c.Index())
		}
		if _, err := tx.GetByName("service", "after-the-capture"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an object created after the capture is in it: %v", err)
		}
		if _, err := tx.GetByName("service", "o0"); err != nil {
			t.Errorf("o0: %v", err)
		}
	})
}

// CheckSnapshot refuses what Restore refuses.
func TestCheckSnapshotRefusesDamage(t *testing.T) {
	s := newStore(t, testConfig(t))
	fillStore(t, s, 30)
	var stream bytes.Buffer
	if err := s.Capture().WriteSnapshot(&stream); err != nil {
		t.Fatal(err)
	}
	good := stream.Bytes()
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	for _, tt := range []struct {
		name  string
		index uint64
		data  []byte
	}{
		{"empty", s.Version(), nil},
		{"truncated", s.Version(), good[:len(good)-3]},
		{"a flipped byte", s.Version(), flipped},
		{"taken after the index given", s.Version() - 1, good},
		{"data after the trailer", s.Version(), append(bytes.Clone(good), 0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.CheckSnapshot(tt.index, bytes.NewReader(tt.data))
			if !errors.Is(err, store.ErrCorruptSnapshot) {
				t.Fatalf("CheckSnapshot = %v, want ErrCorruptSnapshot", err)
			}
		})
	}
	if _, err := store.CheckSnapshot(s.Version(), bytes.NewReader(good)); err != nil {
		t.Fatal(fmt.Errorf("the undamaged stream: %w", err))
	}
}
