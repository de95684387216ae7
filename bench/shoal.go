package bench

import (
	"context"
	"slices"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/client"
)

// ShoalConfig says how Shoal reaches a shoal cluster.
type ShoalConfig struct {
	// Client is the configuration of every connection. With several
	// Addrs, the conn-th connection tries them from the (conn % len)-th
	// on, so the connections of a run spread over the managers.
	Client client.Config
	// Kind is the kind of the objects written and read; the keys are
	// their names.
	Kind string
	// Consistency is that of the gets.
	Consistency client.Consistency
}

// Shoal returns a Dialer of shoal clients: each connection is one
// client.Client, one gRPC connection to one manager.
func Shoal(cfg ShoalConfig) Dialer {
	return func(ctx context.Context, conn int) (Target, error) {
		cc := cfg.Client
		if n := len(cc.Addrs); n > 1 {
			k := conn % n
			cc.Addrs = append(slices.Clone(cc.Addrs[k:]), cc.Addrs[:k]...)
		}
		c, err := client.New(ctx, cc)
		if err != nil {
			return nil, err
		}
		return &shoalTarget{c: c, kind: cfg.Kind, read: client.WithConsistency(cfg.Consistency)}, nil
	}
}

// shoalTarget is a Target, Transactor and Watchable on one client: keys
// are names of objects of one kind, values their specs.
type shoalTarget struct {
	c    *client.Client
	kind string
	read client.ReadOption
}

func (t *shoalTarget) Create(ctx context.Context, key string, val []byte) error {
	_, err := t.c.Create(ctx, &api.Object{Kind: t.kind, Name: key, Spec: val})
	return err
}

// Put updates the object named key; one that is missing (deleted since it
// was created) is created again, so a put costs a second call then.
func (t *shoalTarget) Put(ctx context.Context, key string, val []byte) error {
	_, err := t.c.Update(ctx, t.kind, key, client.Update{Spec: val})
	if client.IsNotFound(err) {
		return t.Create(ctx, key, val)
	}
	return err
}

func (t *shoalTarget) Get(ctx context.Context, key string) error {
	_, err := t.c.Get(ctx, t.kind, key, t.read)
	return err
}

func (t *shoalTarget) Txn(ctx context.Context, keys []string, val []byte, fresh bool) error {
	ops := make([]client.Op, 0, len(keys))
	for _, k := range keys {
		if fresh {
			ops = append(ops, client.CreateOp(&api.Object{Kind: t.kind, Name: k, Spec: val}))
		} else {
			ops = append(ops, client.UpdateOp(t.kind, k, client.Update{Spec: val}))
		}
	}
	_, _, err := t.c.Transaction(ctx, ops...)
	return err
}

func (t *shoalTarget) Watch(ctx context.Context, prefix string) (WatchStream, error) {
	w, err := t.c.Watch(ctx, client.Selector{Kind: t.kind, NamePrefix: prefix}, 0)
	if err != nil {
		return nil, err
	}
	return shoalWatch{w}, nil
}

func (t *shoalTarget) Close() error { return t.c.Close() }

type shoalWatch struct{ w *client.Watcher }

func (s shoalWatch) Next() (string, []byte, error) {
	for {
		ev, err := s.w.Next()
		if err != nil {
			return "", nil, err
		}
		if ev.GetType() != api.EventType_EVENT_TYPE_DELETE {
			return ev.GetObject().GetName(), ev.GetObject().GetSpec(), nil
		}
	}
}

func (s shoalWatch) Close() { s.w.Close() }
