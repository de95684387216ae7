package store_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/store"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*store.Config)
		wantErr string
	}{
		{"default", func(*store.Config) {}, ""},
		{"zero object size", func(c *store.Config) { c.MaxObjectBytes = 0 }, "MaxObjectBytes 0"},
		{"object above hard limit", func(c *store.Config) { c.MaxObjectBytes = store.HardMaxObjectBytes + 1 }, "MaxObjectBytes"},
		{"zero actions", func(c *store.Config) { c.MaxActions = 0 }, "MaxActions 0"},
		{"actions above hard limit", func(c *store.Config) { c.MaxActions = store.HardMaxActions + 1 }, "MaxActions"},
		{"tx above hard limit", func(c *store.Config) { c.MaxTxBytes = store.HardMaxTxBytes + 1 }, "MaxTxBytes"},
		{"tx smaller than an object", func(c *store.Config) { c.MaxTxBytes = c.MaxObjectBytes }, "at least MaxObjectBytes"},
		{"no history", func(c *store.Config) { c.WatchHistory = 0 }, "WatchHistory 0"},
		{"no bound in bytes", func(c *store.Config) { c.WatchHistoryBytes = 0 }, ""},
		{"negative history bytes", func(c *store.Config) { c.WatchHistoryBytes = -1 }, "WatchHistoryBytes -1"},
		{"no clock", func(c *store.Config) { c.Now = nil }, "Now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := store.DefaultConfig()
			tt.change(&cfg)
			err := cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want it to mention %q", err, tt.wantErr)
			}
			if _, err := store.New(cfg, nil); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestValidateRules(t *testing.T) {
	long := func(n int, c string) string { return strings.Repeat(c, n) }
	tests := []struct {
		name  string
		check func() error
		ok    bool
	}{
		{"kind simple", func() error { return store.ValidateKind("service") }, true},
		{"kind with digit and dash", func() error { return store.ValidateKind("a1-b") }, true},
		{"kind 63", func() error { return store.ValidateKind(long(63, "a")) }, true},
		{"kind 64", func() error { return store.ValidateKind(long(64, "a")) }, false},
		{"kind empty", func() error { return store.ValidateKind("") }, false},
		{"kind upper", func() error { return store.ValidateKind("Service") }, false},
		{"kind starts with digit", func() error { return store.ValidateKind("1a") }, false},
		{"kind underscore", func() error { return store.ValidateKind("a_b") }, false},
		{"name mixed", func() error { return store.ValidateName("Web-1.prod_x") }, true},
		{"name 253", func() error { return store.ValidateName(long(253, "n")) }, true},
		{"name 254", func() error { return store.ValidateName(long(254, "n")) }, false},
		{"name empty", func() error { return store.ValidateName("") }, false},
		{"name starts with dot", func() error { return store.ValidateName(".x") }, false},
		{"name slash", func() error { return store.ValidateName("a/b") }, false},
		{"name NUL", func() error { return store.ValidateName("a\x00") }, false},
		{"id", func() error { return store.ValidateID("abc123") }, true},
		{"id upper", func() error { return store.ValidateID("ABC") }, false},
		{"id 65", func() error { return store.ValidateID(long(65, "a")) }, false},
		{"labels ok", func() error { return store.ValidateLabels(map[string]string{"app.io/tier": "web", "empty": ""}) }, true},
		{"label key empty", func() error { return store.ValidateLabels(map[string]string{"": "x"}) }, false},
		{"label key space", func() error { return store.ValidateLabels(map[string]string{"a b": "x"}) }, false},
		{"label key 129", func() error { return store.ValidateLabels(map[string]string{long(129, "k"): "x"}) }, false},
		{"label value 257", func() error { return store.ValidateLabels(map[string]string{"k": long(257, "v")}) }, false},
		{"label value NUL", func() error { return store.ValidateLabels(map[string]string{"k": "a\x00b"}) }, false},
		{"label value newline", func() error { return store.ValidateLabels(map[string]string{"k": "a\nb"}) }, false},
		{"label value bad UTF-8", func() error { return store.ValidateLabels(map[string]string{"k": "\xff"}) }, false},
		{"label value unicode", func() error { return store.ValidateLabels(map[string]string{"k": "café ☕"}) }, true},
		{"too many labels", func() error {
			m := map[string]string{}
			for i := range store.MaxLabels + 1 {
				m["k"+strings.Repeat("x", i)] = ""
			}
			return store.ValidateLabels(m)
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check()
			if tt.ok && err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if !tt.ok && !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	if !store.IsBuiltinKind(store.KindNode) || !store.IsBuiltinKind(store.KindCluster) || store.IsBuiltinKind("service") {
		t.Error("IsBuiltinKind is wrong")
	}
}

// TestLifecycle walks one object through create, read, update and delete,
// checking versions and times at each step.
func TestLifecycle(t *testing.T) {
	s := newStore(t, testConfig(t))
	ctx := context.Background()

	created := mustCreate(t, s, obj("service", "web", "tier=front"))[0]
	if created.GetVersion() != 1 || len(created.GetId()) != 26 {
		t.Fatalf("created = %v, want version 1 and a 26-character id", created)
	}
	if !created.GetCreatedAt().AsTime().Equal(created.GetUpdatedAt().AsTime()) {
		t.Fatalf("created_at %v != updated_at %v", created.GetCreatedAt(), created.GetUpdatedAt())
	}
	got, err := get(t, s, created.GetId())
	if err != nil || !proto.Equal(got, created) {
		t.Fatalf("Get = %v, %v; want %v", got, err, created)
	}
	s.View(func(tx store.ReadTx) {
		if o, err := tx.GetByName("service", "web"); err != nil || o.GetId() != created.GetId() {
			t.Errorf("GetByName = %v, %v", o, err)
		}
		if _, err := tx.GetByName("node", "web"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetByName of another kind = %v, want ErrNotFound", err)
		}
		if v, err := tx.VersionByName("service", "web"); err != nil || v != 1 {
			t.Errorf("VersionByName = %d, %v; want 1", v, err)
		}
		if _, err := tx.VersionByName("node", "web"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("VersionByName of another kind = %v, want ErrNotFound", err)
		}
		if tx.Version() != 1 {
			t.Errorf("Version = %d, want 1", tx.Version())
		}
	})

	changed := proto.CloneOf(created)
	changed.Name = "www"
	changed.Spec = []byte(`{"replicas":3}`)
	res, err := s.Update(ctx, func(tx store.Tx) error { return tx.Update(changed) })
	if err != nil {
		t.Fatal(err)
	}
	updated := res.Objects[0]
	if updated.GetVersion() != 2 || updated.GetName() != "www" || string(updated.GetSpec()) != `{"replicas":3}` {
		t.Fatalf("updated = %v", updated)
	}
	s.View(func(tx store.ReadTx) {
		if v, err := tx.VersionByName("service", "www"); err != nil || v != 2 {
			t.Errorf("VersionByName after the update = %d, %v; want 2", v, err)
		}
	})
	if !updated.GetCreatedAt().AsTime().Equal(created.GetCreatedAt().AsTime()) ||
		!updated.GetUpdatedAt().AsTime().After(created.GetUpdatedAt().AsTime()) {
		t.Fatalf("times after update: created %v updated %v", updated.GetCreatedAt(), updated.GetUpdatedAt())
	}
	if names(list(t, s, store.Selector{Kind: "service"})) != "service/www" {
		t.Fatal("rename did not move the name index")
	}

	// The stale version 1 is refused; the current one works.
	_, err = s.Update(ctx, func(tx store.Tx) error { return tx.Delete("service", created.GetId(), 1) })
	if !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("delete with stale version = %v, want ErrVersionConflict", err)
	}
	if _, err := s.Update(ctx, func(tx store.Tx) error { return tx.Delete("service", created.GetId(), 2) }); err != nil {
		t.Fatal(err)
	}
	if _, err := get(t, s, created.GetId()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after delete = %v, want ErrNotFound", err)
	}
	if v := s.Version(); v != 4 {
		t.Fatalf("store version = %d, want 4 (the rejected entry counts)", v)
	}
}

// TestLongKeysFindNothing looks up ids, kinds and names longer than
// any held, which the index entries, holding lengths of 16 bits, must
// not cut to a held one.
func TestLongKeysFindNothing(t *testing.T) {
	s := newStore(t, testConfig(t))
	created := mustCreate(t, s, obj("service", "web"))[0]
	long := func(s string) string { return s + strings.Repeat("x", 1<<16) }
	if _, err := get(t, s, long(created.GetId())); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get of a long id = %v, want ErrNotFound", err)
	}
	s.View(func(tx store.ReadTx) {
		if _, err := tx.GetByName("service", long("web")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetByName of a long name = %v, want ErrNotFound", err)
		}
		if _, err := tx.GetByName(long("service"), "web"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetByName of a long kind = %v, want ErrNotFound", err)
		}
	})
}

func TestUpdateWithoutChangesProposesNothing(t *testing.T) {
	s, err := store.New(testConfig(t), proposerFunc(func(context.Context, []byte) (any, error) {
		t.Fatal("proposed an empty transaction")
		return nil, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Update(context.Background(), func(store.Tx) error { return nil })
	if err != nil || res.Version != 0 || len(res.Objects) != 0 {
		t.Fatalf("Update = %v, %v", res, err)
	}
}

func TestNoProposer(t *testing.T) {
	s, err := store.New(testConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.Create(obj("service", "a"))
		return err
	})
	if !errors.Is(err, store.ErrNoProposer) {
		t.Fatalf("Update = %v, want ErrNoProposer", err)
	}
}

type proposerFunc func(ctx context.Context, payload []byte) (any, error)

func (f proposerFunc) ProposeValue(ctx context.Context, payload []byte) (any, error) {
	return f(ctx, payload)
}

func TestList(t *testing.T) {
	s := newStore(t, testConfig(t))
	mustCreate(t, s,
		obj("service", "web-b", "tier=front", "env=prod"),
		obj("service", "web-a", "tier=front", "env=dev"),
		obj("service", "db", "tier=back", "env=prod"),
		obj("node", "web-n1", "env=prod"),
		obj("cluster", "default"),
	)
	tests := []struct {
		name    string
		sel     store.Selector
		want    string
		wantErr bool
	}{
		{name: "all", sel: store.Selector{}, want: "cluster/default node/web-n1 service/db service/web-a service/web-b"},
		{name: "kind", sel: store.Selector{Kind: "service"}, want: "service/db service/web-a service/web-b"},
		{name: "prefix", sel: store.Selector{Kind: "service", NamePrefix: "web-"}, want: "service/web-a service/web-b"},
		{name: "prefix is not a kind", sel: store.Selector{Kind: "serv"}, want: ""},
		{name: "label", sel: store.Selector{Kind: "service", Labels: map[string]string{"tier": "front"}}, want: "service/web-a service/web-b"},
		{name: "two labels", sel: store.Selector{Kind: "service", Labels: map[string]string{"tier": "front", "env": "prod"}}, want: "service/web-b"},
		{name: "label and prefix", sel: store.Selector{Kind: "service", NamePrefix: "d", Labels: map[string]string{"env": "prod"}}, want: "service/db"},
		{name: "label any kind", sel: store.Selector{Labels: map[string]string{"env": "prod"}}, want: "node/web-n1 service/db service/web-b"},
		{name: "label missing", sel: store.Selector{Kind: "service", Labels: map[string]string{"nope": ""}}, want: ""},
		{name: "prefix without kind", sel: store.Selector{NamePrefix: "web"}, wantErr: true},
		{name: "bad kind", sel: store.Selector{Kind: "Bad"}, wantErr: true},
		{name: "bad label", sel: store.Selector{Kind: "service", Labels: map[string]string{"a b": ""}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []*api.Object
			var err error
			s.View(func(tx store.ReadTx) { got, err = tx.List(tt.sel) })
			if tt.wantErr {
				if !errors.Is(err, store.ErrInvalid) {
					t.Fatalf("List = %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if names(got) != tt.want {
				t.Fatalf("List = %q, want %q", names(got), tt.want)
			}
		})
	}
}

// stateMachine repeats the raft package's StateMachine, which the store
// satisfies without importing raft.
type stateMachine interface {
	Apply(index uint64, payload []byte) (result any, err error)
	Snapshot() (write func(w io.Writer) error, err error)
	Restore(index uint64, r io.Reader) error
}

var _ stateMachine = (*store.Store)(nil)

// The store's own Proposer is what the raft node's ProposeValue must fit.
var _ store.Proposer = (*replica)(nil)
