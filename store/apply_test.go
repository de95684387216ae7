package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/store"
)

// TestRejections runs transactions that must fail, each against the same
// starting state, and checks the sentinel and that nothing changed.
func TestRejections(t *testing.T) {
	type fixture struct {
		web, db *api.Object // service/web (labels tier=front), service/db
	}
	tests := []struct {
		name string
		tx   func(f fixture, tx store.Tx) error
		want error
	}{
		{"create duplicate name", func(f fixture, tx store.Tx) error {
			_, err := tx.Create(obj("service", "web"))
			return err
		}, store.ErrExists},
		{"create duplicate id", func(f fixture, tx store.Tx) error {
			o := obj("node", "other")
			o.Id = f.web.GetId()
			_, err := tx.Create(o)
			return err
		}, store.ErrExists},
		{"two creates of one name in one tx", func(f fixture, tx store.Tx) error {
			_, err := tx.Create(obj("service", "new"))
			if err == nil {
				_, err = tx.Create(obj("service", "new"))
			}
			return err
		}, store.ErrExists},
		{"rename onto a taken name", func(f fixture, tx store.Tx) error {
			o := proto.CloneOf(f.db)
			o.Name = "web"
			return tx.Update(o)
		}, store.ErrExists},
		{"update missing", func(f fixture, tx store.Tx) error {
			o := proto.CloneOf(f.web)
			o.Id = "missing"
			return tx.Update(o)
		}, store.ErrNotFound},
		{"update changes kind", func(f fixture, tx store.Tx) error {
			o := proto.CloneOf(f.web)
			o.Kind = "node"
			return tx.Update(o)
		}, store.ErrNotFound},
		{"delete missing", func(f fixture, tx store.Tx) error {
			return tx.Delete("service", "missing", 0)
		}, store.ErrNotFound},
		{"delete twice in one tx", func(f fixture, tx store.Tx) error {
			if err := tx.Delete("service", f.web.GetId(), 0); err != nil {
				return err
			}
			return tx.Delete("service", f.web.GetId(), 0)
		}, store.ErrNotFound},
		{"update stale version", func(f fixture, tx store.Tx) error {
			o := proto.CloneOf(f.db) // version 2
			o.Version--
			return tx.Update(o)
		}, store.ErrVersionConflict},
		{"delete future version", func(f fixture, tx store.Tx) error {
			return tx.Delete("service", f.db.GetId(), f.db.GetVersion()+1)
		}, store.ErrVersionConflict},
		{"good change then a conflict", func(f fixture, tx store.Tx) error {
			if _, err := tx.Create(obj("service", "fine")); err != nil {
				return err
			}
			if err := tx.Delete("service", f.db.GetId(), 0); err != nil {
				return err
			}
			o := proto.CloneOf(f.web)
			o.Version = 1000
			return tx.Update(o)
		}, store.ErrVersionConflict},
		{"invalid kind", func(f fixture, tx store.Tx) error {
			_, err := tx.Create(obj("Service", "x"))
			return err
		}, store.ErrInvalid},
		{"invalid name", func(f fixture, tx store.Tx) error {
			_, err := tx.Create(obj("service", "-x"))
			return err
		}, store.ErrInvalid},
		{"invalid id", func(f fixture, tx store.Tx) error {
			o := obj("service", "x")
			o.Id = "Not_An_Id"
			_, err := tx.Create(o)
			return err
		}, store.ErrInvalid},
		{"create with a version", func(f fixture, tx store.Tx) error {
			o := obj("service", "x")
			o.Version = 3
			_, err := tx.Create(o)
			return err
		}, store.ErrInvalid},
		{"nil object", func(f fixture, tx store.Tx) error {
			_, err := tx.Create(nil)
			return err
		}, store.ErrInvalid},
		{"invalid label", func(f fixture, tx store.Tx) error {
			o := proto.CloneOf(f.web)
			o.Labels = map[string]string{"": "x"}
			return tx.Update(o)
		}, store.ErrInvalid},
		{"object too large", func(f fixture, tx store.Tx) error {
			o := obj("service", "big")
			o.Spec = make([]byte, 1025)
			_, err := tx.Create(o)
			return err
		}, store.ErrTooLarge},
		{"too many actions", func(f fixture, tx store.Tx) error {
			for i := range 9 {
				if _, err := tx.Create(obj("service", strings.Repeat("n", i+1))); err != nil {
					return err
				}
			}
			return nil
		}, store.ErrTooLarge},
		{"transaction too large", func(f fixture, tx store.Tx) error {
			for i := range 5 {
				o := obj("service", strings.Repeat("n", i+1))
				o.Spec = make([]byte, 900)
				if _, err := tx.Create(o); err != nil {
					return err
				}
			}
			return nil
		}, store.ErrTooLarge},
		{"error ignored by fn still fails", func(f fixture, tx store.Tx) error {
			_, _ = tx.Create(obj("service", "ok"))
			_, _ = tx.Create(obj("BAD", "x"))
			return nil
		}, store.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MaxObjectBytes = 1024
			cfg.MaxTxBytes = 4096
			cfg.MaxActions = 8
			s := newStore(t, cfg)
			web := mustCreate(t, s, obj("service", "web", "tier=front"))[0]
			db := mustCreate(t, s, obj("service", "db"))[0]
			before := dump(t, s)
			_, err := s.Update(context.Background(), func(tx store.Tx) error {
				return tt.tx(fixture{web: web, db: db}, tx)
			})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Update = %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "store: ") {
				t.Errorf("error %q lacks the store: prefix", err)
			}
			// Nothing changed but, for entries that reached the log, the
			// store's version.
			after := dump(t, s)
			_, beforeObjs, _ := strings.Cut(before, "\n")
			_, afterObjs, _ := strings.Cut(after, "\n")
			if beforeObjs != afterObjs {
				t.Fatalf("a rejected transaction changed the store:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func TestLimitsAreCheckedBeforeProposing(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxObjectBytes = 100
	cfg.MaxTxBytes = 200
	s, err := store.New(cfg, proposerFunc(func(context.Context, []byte) (any, error) {
		t.Fatal("an oversized transaction was proposed")
		return nil, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o := obj("service", "x")
	o.Spec = make([]byte, 200)
	_, err = s.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.Create(o)
		return err
	})
	if !errors.Is(err, store.ErrTooLarge) || !strings.Contains(err.Error(), "MaxObjectBytes is 100") {
		t.Fatalf("Update = %v, want ErrTooLarge naming MaxObjectBytes", err)
	}
}

// validAction builds an action as Update would, for raw payload tests.
func validAction(kind api.StoreActionKind, o *api.Object, expected uint64) *api.StoreAction {
	now := timestamppb.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	o = proto.CloneOf(o)
	if o.CreatedAt == nil {
		o.CreatedAt = now
	}
	if o.UpdatedAt == nil {
		o.UpdatedAt = now
	}
	return &api.StoreAction{Kind: kind, Object: o, ExpectedVersion: expected}
}

func payload(t testing.TB, actions ...*api.StoreAction) []byte {
	t.Helper()
	b, err := proto.Marshal(&api.StoreActions{Actions: actions})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestApplyRejectsBadPayloads feeds Apply entries that no correct proposer
// makes: Apply is the last line of defence and must refuse them the same
// way on every manager, moving only the version on.
func TestApplyRejectsBadPayloads(t *testing.T) {
	create := api.StoreActionKind_STORE_ACTION_KIND_CREATE
	good := obj("service", "a")
	good.Id = "aaaa"
	noTimes := proto.CloneOf(good)
	tests := []struct {
		name    string
		payload []byte
		want    error
	}{
		{"empty", nil, store.ErrInvalid},
		{"garbage", []byte{0xff, 0xff, 0xff}, store.ErrInvalid},
		{"no object", payload(t, &api.StoreAction{Kind: create}), store.ErrInvalid},
		{"unknown action kind", payload(t, validAction(api.StoreActionKind(9), good, 0)), store.ErrInvalid},
		{"unspecified action kind", payload(t, validAction(api.StoreActionKind_STORE_ACTION_KIND_UNSPECIFIED, good, 0)), store.ErrInvalid},
		{"create without id", payload(t, validAction(create, obj("service", "b"), 0)), store.ErrInvalid},
		{"create with expected version", payload(t, validAction(create, good, 4)), store.ErrInvalid},
		{"create without times", payload(t, &api.StoreAction{Kind: create, Object: noTimes}), store.ErrInvalid},
		{"good then bad", payload(t, validAction(create, good, 0), validAction(create, obj("BAD", "b"), 0)), store.ErrInvalid},
		{"object above the hard limit", func() []byte {
			big := proto.CloneOf(good)
			big.Spec = make([]byte, store.HardMaxObjectBytes)
			return payload(t, validAction(create, big, 0))
		}(), store.ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := store.New(testConfig(t), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			res, err := s.Apply(5, tt.payload)
			if !errors.Is(err, tt.want) || res != nil {
				t.Fatalf("Apply = %v, %v; want nil, %v", res, err, tt.want)
			}
			if v := s.Version(); v != 5 {
				t.Fatalf("version after a rejected entry = %d, want 5", v)
			}
			if got := list(t, s, store.Selector{}); len(got) != 0 {
				t.Fatalf("a rejected entry left objects: %s", names(got))
			}
		})
	}
}

func TestApplyRefusesOldIndex(t *testing.T) {
	s, err := store.New(testConfig(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	good := obj("service", "a")
	good.Id = "aaaa"
	p := payload(t, validAction(api.StoreActionKind_STORE_ACTION_KIND_CREATE, good, 0))
	if _, err := s.Apply(3, p); err != nil {
		t.Fatal(err)
	}
	for _, index := range []uint64{3, 2, 0} {
		if _, err := s.Apply(index, p); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("Apply(%d) after 3 = %v, want ErrInvalid", index, err)
		}
	}
	if v := s.Version(); v != 3 {
		t.Fatalf("version = %d, want 3", v)
	}
}
