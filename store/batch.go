package store

import (
	"context"
	"fmt"

	"github.com/shoal-project/shoal/api"
)

// Batch splits a large change into several Raft entries, each within the
// Config's limits. See Store.Batch.
type Batch struct {
	s       *Store
	ctx     context.Context
	actions []*api.StoreAction // of the units not yet proposed
	units   int
	bytes   int
	applied int // units in entries that were applied
}

// Batch runs fn, whose b.Update calls each collect a unit of changes, and
// proposes the units in as few entries as the limits allow, one entry at a
// time and in order. A unit is never split; each entry is all-or-nothing,
// the batch as a whole is not. Units read the state as it was when they
// started, which does not include units of the batch not yet proposed.
//
// It returns how many units were applied and the first error: fn's, a
// unit's, or the rejection of an entry, after which nothing more is
// proposed (units collected but not yet proposed are dropped). Like Update it holds no lock across Raft round trips, and a
// ctx error leaves the last entry's fate unknown.
func (s *Store) Batch(ctx context.Context, fn func(b *Batch) error) (applied int, err error) {
	b := &Batch{s: s, ctx: ctx}
	if err := fn(b); err != nil {
		return b.applied, err
	}
	err = b.flush()
	return b.applied, err
}

// Update collects one unit of changes from fn, as Store.Update does, first
// proposing the units collected before it if this one would not fit in the
// same entry. A unit is limited as one transaction is (ErrTooLarge). It
// returns fn's error, or the rejection of an entry it proposed.
func (b *Batch) Update(fn func(tx Tx) error) error {
	tx := b.s.newWriteTx()
	if err := fn(tx); err != nil {
		return err
	}
	if tx.err != nil {
		return tx.err
	}
	if len(tx.actions) == 0 {
		return nil
	}
	cfg := &b.s.cfg
	if len(b.actions)+len(tx.actions) > cfg.MaxActions || b.bytes+tx.bytes > cfg.MaxTxBytes {
		if err := b.flush(); err != nil {
			return err
		}
	}
	b.actions = append(b.actions, tx.actions...)
	b.bytes += tx.bytes
	b.units++
	return nil
}

func (b *Batch) flush() error {
	if len(b.actions) == 0 {
		return nil
	}
	actions, units := b.actions, b.units
	b.actions, b.units, b.bytes = nil, 0, 0
	if _, err := b.s.propose(b.ctx, nil, actions); err != nil {
		return fmt.Errorf("batch entry after %d applied units: %w", b.applied, err)
	}
	b.applied += units
	return nil
}
