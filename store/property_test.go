package store_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/store"
)

// The property test runs random transactions against the store and
// against refModel, a plain map that follows the rules as the
// documentation states them, and requires the same outcome (the same
// error class or the same new version) and the same objects after every
// step.

type refModel struct {
	objs    map[string]*api.Object // by id
	version uint64                 // index of the last entry in the log
}

// op is one change within a generated transaction.
type op struct {
	action   string // create, update, delete
	kind     string
	id       string // for update and delete; for create, "" or an id to reuse
	name     string
	labels   map[string]string
	spec     []byte
	expected uint64
}

func (o op) String() string {
	return fmt.Sprintf("%s %s/%s id=%q labels=%v spec=%d bytes expected=%d", o.action, o.kind, o.name, o.id, o.labels, len(o.spec), o.expected)
}

const (
	propMaxObjectBytes = 400
	propMaxActions     = 3
)

var (
	propKinds  = []string{"service", "node", "Bad-Kind"}
	propNames  = []string{"a", "b", "c", "-bad"}
	propLabels = []string{"tier", "env"}
	propValues = []string{"x", "y"}
)

func drawLabels(t *rapid.T, label string) map[string]string {
	m := map[string]string{}
	for _, k := range propLabels {
		if rapid.Bool().Draw(t, label+"-has-"+k) {
			m[k] = rapid.SampledFrom(propValues).Draw(t, label+"-"+k)
		}
	}
	return m
}

func drawSpec(t *rapid.T, label string) []byte {
	if rapid.IntRange(0, 9).Draw(t, label+"-huge") == 0 {
		return make([]byte, propMaxObjectBytes) // always too large once framed
	}
	return []byte(rapid.StringN(0, 20, -1).Draw(t, label))
}

// drawOp picks a change, aiming at existing objects most of the time and
// with right, absent, stale and future expected versions.
func drawOp(t *rapid.T, m *refModel, i int) op {
	l := fmt.Sprint("op", i)
	ids := slices.Sorted(maps.Keys(m.objs))
	action := rapid.SampledFrom([]string{"create", "create", "update", "update", "delete"}).Draw(t, l+"-action")
	o := op{action: action}
	if action == "create" {
		o.kind = rapid.SampledFrom(propKinds).Draw(t, l+"-kind")
		o.name = rapid.SampledFrom(propNames).Draw(t, l+"-name")
		o.labels = drawLabels(t, l+"-labels")
		o.spec = drawSpec(t, l+"-spec")
		if len(ids) > 0 && rapid.IntRange(0, 9).Draw(t, l+"-reuse-id") == 0 {
			o.id = rapid.SampledFrom(ids).Draw(t, l+"-id")
		}
		return o
	}
	var cur *api.Object
	if len(ids) > 0 && rapid.IntRange(0, 5).Draw(t, l+"-missing") > 0 {
		cur = m.objs[rapid.SampledFrom(ids).Draw(t, l+"-id")]
		o.id, o.kind, o.name = cur.GetId(), cur.GetKind(), cur.GetName()
	} else {
		o.id, o.kind, o.name = "missing", "service", "a"
	}
	if rapid.IntRange(0, 9).Draw(t, l+"-other-kind") == 0 {
		o.kind = "node"
	}
	switch rapid.IntRange(0, 3).Draw(t, l+"-expected") {
	case 0:
		o.expected = cur.GetVersion()
	case 1:
		o.expected = 0
	case 2:
		o.expected = max(cur.GetVersion(), 2) - 1
	case 3:
		o.expected = cur.GetVersion() + 5
	}
	if action == "update" {
		if rapid.Bool().Draw(t, l+"-rename") {
			o.name = rapid.SampledFrom(propNames).Draw(t, l+"-name")
		}
		o.labels = drawLabels(t, l+"-labels")
		o.spec = drawSpec(t, l+"-spec")
	}
	return o
}

// staticError is what Update's own checks say before proposing.
func staticError(ops []op) error {
	for i, o := range ops {
		if o.action != "delete" {
			if store.ValidateKind(o.kind) != nil || store.ValidateName(o.name) != nil {
				return store.ErrInvalid
			}
			if len(o.spec) >= propMaxObjectBytes {
				return store.ErrTooLarge
			}
		} else if store.ValidateKind(o.kind) != nil {
			return store.ErrInvalid
		}
		if i >= propMaxActions {
			return store.ErrTooLarge
		}
	}
	return nil
}

// apply is what the documentation says an applied entry does.
func (m *refModel) apply(ops []op, ids []string, now time.Time, index uint64) error {
	next := maps.Clone(m.objs)
	nameTaken := func(kind, name, except string) bool {
		for id, o := range next {
			if id != except && o.GetKind() == kind && o.GetName() == name {
				return true
			}
		}
		return false
	}
	for i, o := range ops {
		cur := next[ids[i]]
		switch o.action {
		case "create":
			if cur != nil || nameTaken(o.kind, o.name, "") {
				return store.ErrExists
			}
			next[ids[i]] = newModelObject(o, ids[i], now, now, index)
		case "update", "delete":
			if cur == nil || cur.GetKind() != o.kind {
				return store.ErrNotFound
			}
			if o.expected != 0 && o.expected != cur.GetVersion() {
				return store.ErrVersionConflict
			}
			if o.action == "delete" {
				delete(next, ids[i])
				continue
			}
			if nameTaken(o.kind, o.name, ids[i]) {
				return store.ErrExists
			}
			next[ids[i]] = newModelObject(o, ids[i], cur.GetCreatedAt().AsTime(), now, index)
		}
	}
	m.objs = next
	return nil
}

func newModelObject(o op, id string, created, updated time.Time, index uint64) *api.Object {
	out := &api.Object{Kind: o.kind, Id: id, Name: o.name, Labels: o.labels, Spec: o.spec, Version: index}
	out.CreatedAt, out.UpdatedAt = stampOf(created), stampOf(updated)
	if len(out.Labels) == 0 {
		out.Labels = nil
	}
	if len(out.Spec) == 0 {
		out.Spec = nil
	}
	return out
}

// manualClock is set by the test before each transaction.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func TestPropertyStoreMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		clock := &manualClock{}
		cfg := store.DefaultConfig()
		cfg.MaxObjectBytes = propMaxObjectBytes
		cfg.MaxActions = propMaxActions
		cfg.MaxTxBytes = propMaxObjectBytes * 8
		cfg.Now = clock.Now
		l, err := startFakeLog(1, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer l.close()
		s := l.replicas[0].store
		m := &refModel{objs: map[string]*api.Object{}}
		base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

		steps := rapid.IntRange(1, 40).Draw(t, "steps")
		for step := range steps {
			n := rapid.IntRange(1, propMaxActions+1).Draw(t, fmt.Sprint("step", step, "-ops"))
			ops := make([]op, n)
			for i := range ops {
				ops[i] = drawOp(t, m, i)
			}
			now := base.Add(time.Duration(step) * time.Second)
			clock.set(now)
			ids := make([]string, n)
			res, err := s.Update(context.Background(), func(tx store.Tx) error {
				return runOps(tx, ops, ids)
			})

			want := staticError(ops)
			if want == nil {
				m.version++
				want = m.apply(ops, ids, now, m.version)
			}
			if errClass(err) != errClass(want) {
				t.Fatalf("step %d %v: Update = %v, model says %v", step, ops, err, want)
			}
			if err == nil && res.Version != m.version {
				t.Fatalf("step %d: version %d, model says %d", step, res.Version, m.version)
			}
			if v := s.Version(); v != m.version {
				t.Fatalf("step %d: store version %d, model says %d", step, v, m.version)
			}
			compareWithModel(t, s, m)
		}
	})
}

// runOps makes the changes of ops in tx, noting the ids they act on.
func runOps(tx store.Tx, ops []op, ids []string) error {
	for i, o := range ops {
		switch o.action {
		case "create":
			created, err := tx.Create(&api.Object{Kind: o.kind, Id: o.id, Name: o.name, Labels: o.labels, Spec: o.spec})
			if err != nil {
				return err
			}
			ids[i] = created.GetId()
		case "update":
			ids[i] = o.id
			if err := tx.Update(&api.Object{Kind: o.kind, Id: o.id, Name: o.name, Labels: o.labels, Spec: o.spec, Version: o.expected}); err != nil {
				return err
			}
		case "delete":
			ids[i] = o.id
			if err := tx.Delete(o.kind, o.id, o.expected); err != nil {
				return err
			}
		}
	}
	return nil
}

func compareWithModel(t *rapid.T, s *store.Store, m *refModel) {
	var got []*api.Object
	var err error
	s.View(func(tx store.ReadTx) { got, err = tx.List(store.Selector{}) })
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Collect(maps.Values(m.objs))
	slices.SortFunc(want, func(a, b *api.Object) int {
		return strings.Compare(a.GetKind()+"\x00"+a.GetName(), b.GetKind()+"\x00"+b.GetName())
	})
	if len(got) != len(want) {
		t.Fatalf("store has %d objects, model %d:\nstore %s\nmodel %s", len(got), len(want), names(got), names(want))
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("object %d differs:\nstore %v\nmodel %v", i, got[i], want[i])
		}
	}
}

// TestPropertyModelDisagreesWithoutVersionChecks checks the model itself
// on the rule the store is likeliest to be wrong about.
func TestPropertyModelDisagreesWithoutVersionChecks(t *testing.T) {
	m := &refModel{objs: map[string]*api.Object{
		"x": {Kind: "service", Id: "x", Name: "a", Version: 3, CreatedAt: stampOf(time.Unix(0, 0)), UpdatedAt: stampOf(time.Unix(0, 0))},
	}}
	err := m.apply([]op{{action: "update", kind: "service", id: "x", name: "a", expected: 2}}, []string{"x"}, time.Unix(1, 0), 4)
	if !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("model applied a stale update: %v", err)
	}
}
