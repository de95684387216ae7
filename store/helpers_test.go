package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/store"
)

// fakeClock returns a time that moves one second per call, so that every
// transaction gets a distinct, predictable stamp.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

func testConfig(t testing.TB) store.Config {
	cfg := store.DefaultConfig()
	cfg.Now = newFakeClock().Now
	return cfg
}

// newStore returns the one replica of a fake log.
func newStore(t testing.TB, cfg store.Config) *store.Store {
	t.Helper()
	return newFakeLog(t, 1, cfg).replicas[0].store
}

func obj(kind, name string, labels ...string) *api.Object {
	o := &api.Object{Kind: kind, Name: name, Spec: []byte(`{"name":"` + name + `"}`)}
	for _, kv := range labels {
		k, v, _ := strings.Cut(kv, "=")
		if o.Labels == nil {
			o.Labels = map[string]string{}
		}
		o.Labels[k] = v
	}
	return o
}

func mustCreate(t testing.TB, s *store.Store, objs ...*api.Object) []*api.Object {
	t.Helper()
	res, err := s.Update(context.Background(), func(tx store.Tx) error {
		for _, o := range objs {
			if _, err := tx.Create(o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return res.Objects
}

func get(t testing.TB, s *store.Store, id string) (o *api.Object, err error) {
	t.Helper()
	s.View(func(tx store.ReadTx) { o, err = tx.Get(id) })
	return o, err
}

func list(t testing.TB, s *store.Store, sel store.Selector) []*api.Object {
	t.Helper()
	var out []*api.Object
	var err error
	s.View(func(tx store.ReadTx) { out, err = tx.List(sel) })
	if err != nil {
		t.Fatalf("List(%+v): %v", sel, err)
	}
	return out
}

func names(objs []*api.Object) string {
	var n []string
	for _, o := range objs {
		n = append(n, o.GetKind()+"/"+o.GetName())
	}
	return strings.Join(n, " ")
}

func dump(t testing.TB, s *store.Store) string {
	t.Helper()
	var b strings.Builder
	if err := s.Dump(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// errClass names the sentinel an error wraps, for comparing outcomes.
func errClass(err error) string {
	for _, e := range []error{store.ErrExists, store.ErrNotFound, store.ErrVersionConflict, store.ErrInvalid, store.ErrTooLarge} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	if err != nil {
		return fmt.Sprintf("other: %v", err)
	}
	return "ok"
}

func stampOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }

func newRand(seed int) *rand.Rand { return rand.New(rand.NewPCG(uint64(seed), 7)) }

// writeToBuffer runs a snapshot's write function into memory.
func writeToBuffer(t testing.TB, write func(io.Writer) error) *bytes.Reader {
	t.Helper()
	var b bytes.Buffer
	if err := write(&b); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b.Bytes())
}
