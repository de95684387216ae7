package store

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/api"
)

// Proposer is how the store gets a change agreed; the raft node satisfies it.
type Proposer interface {
	// ProposeValue returns after the entry is committed and applied
	// locally, with what Apply returned for it: a *Result, or the error
	// that rejected the entry. It may also fail on its own (ctx ended, no
	// leader, node stopped); the entry's fate is then unknown. The store
	// calls it from many goroutines at once, and never touches payload
	// again: the proposer may keep it.
	ProposeValue(ctx context.Context, payload []byte) (result any, err error)
}

// Result is what an accepted transaction did. Apply returns it, and
// Update hands it to its caller.
type Result struct {
	// Version is the Raft index of the entry: the new version of every
	// object it created or updated.
	Version uint64
	// Objects has one object per action, in order: the object as stored
	// after a create or update, the object as it was before a delete. They
	// are shared with the store and must not be modified.
	Objects []*api.Object
	// Repeated is set when the write repeated an earlier one's request ID,
	// which the store remembered: nothing was applied, and Version is the
	// earlier write's. Objects are then as they are now where that write
	// is still their last change, and otherwise hold only kind, id and
	// Version (kind and id for a deletion).
	Repeated bool
}

// Tx is a ReadTx that also collects changes, for Update. Reads see the
// state the transaction started from, not the transaction's own changes.
// Each method validates its change at once (ErrInvalid, ErrTooLarge); the
// first such error fails the whole Update even if fn ignores it. Whether
// a change can be made (exists, not found, version conflict) is decided
// only when the entry is applied.
type Tx interface {
	ReadTx
	// Create adds obj. It assigns a random id if obj.Id is empty and
	// stamps created_at and updated_at; obj.Version must be 0. It returns
	// the object to be created (version 0 until applied); obj itself is
	// not kept or changed.
	Create(obj *api.Object) (*api.Object, error)
	// Update replaces the object with obj.Id by obj (kind and created_at
	// cannot change) and stamps updated_at. obj.Version is the expected
	// version: the update fails with ErrVersionConflict if the object has
	// another one when the entry is applied. 0 means no check.
	Update(obj *api.Object) error
	// Delete removes the object of kind with id; expectedVersion as for
	// Update.
	Delete(kind, id string, expectedVersion uint64) error
}

type writeTx struct {
	readTx
	cfg     *Config
	now     *timestamppb.Timestamp
	actions []*api.StoreAction
	bytes   int // encoded size of actions as a StoreActions payload
	err     error
}

// Update runs fn in a Tx and proposes the changes it collected as one Raft
// entry, all-or-nothing. It returns once the entry is committed and
// applied on this manager, with the entry's Result, or with the error that
// rejected it (see the package's error variables). It returns fn's error,
// or the first error of a Tx method, without proposing anything; a Tx
// with no changes proposes nothing and returns a Result without objects.
//
// Update holds no lock across the Raft round trip: any number of Updates
// may be in flight at once, from any goroutines. Two that change the same
// object with the same expected version cannot both succeed. If ctx ends
// first, the error is ctx's and the change may or may not have been
// applied.
func (s *Store) Update(ctx context.Context, fn func(tx Tx) error) (*Result, error) {
	return s.UpdateRequest(ctx, nil, fn)
}

// UpdateRequest is Update for a write that carries the request ID id
// (none if empty; at most MaxRequestIDLen bytes): a write that repeats the
// ID of one the store remembers is answered with that write's Result, with
// Repeated set, and applies nothing. That is checked here first, so a
// repeat is answered even when fn would now fail (the object it deletes is
// gone, say), and again when the entry is applied, for a first attempt
// applied meanwhile. A Result is remembered only when the write was
// applied: one rejected, or not applied at all, may be tried again with
// the same ID.
func (s *Store) UpdateRequest(ctx context.Context, id []byte, fn func(tx Tx) error) (*Result, error) {
	if err := validRequestID(id); err != nil {
		return nil, err
	}
	if res, ok := s.Repeated(id); ok {
		return res, nil
	}
	tx := s.newWriteTx()
	if err := fn(tx); err != nil {
		return nil, err
	}
	if tx.err != nil {
		return nil, tx.err
	}
	if len(tx.actions) == 0 {
		return &Result{Version: tx.Version()}, nil
	}
	return s.propose(ctx, id, tx.actions)
}

func (s *Store) newWriteTx() *writeTx {
	return &writeTx{
		readTx: readTx{st: s.cur.Load()},
		cfg:    &s.cfg,
		now:    timestamppb.New(s.cfg.Now()),
	}
}

// propose sends actions as one entry and waits for its result.
func (s *Store) propose(ctx context.Context, id []byte, actions []*api.StoreAction) (*Result, error) {
	if s.proposer == nil {
		return nil, ErrNoProposer
	}
	payload, err := proto.Marshal(&api.StoreActions{Actions: actions, RequestId: id})
	if err != nil {
		return nil, fmt.Errorf("%w: encoding the entry: %v", ErrInvalid, err)
	}
	res, err := s.proposer.ProposeValue(ctx, payload)
	if err != nil {
		return nil, err
	}
	r, ok := res.(*Result)
	if !ok {
		return nil, fmt.Errorf("store: proposer returned %T, not the *store.Result that Apply returns", res)
	}
	return r, nil
}

func (tx *writeTx) Create(obj *api.Object) (*api.Object, error) {
	o := proto.CloneOf(obj)
	if o == nil {
		return nil, tx.fail(fmt.Errorf("%w: create: nil object", ErrInvalid))
	}
	if o.GetVersion() != 0 {
		return nil, tx.fail(fmt.Errorf("%w: create %s %q: version must be 0", ErrInvalid, o.GetKind(), o.GetName()))
	}
	if o.Id == "" {
		o.Id = newID()
	}
	o.CreatedAt, o.UpdatedAt = tx.now, tx.now
	if err := tx.add(api.StoreActionKind_STORE_ACTION_KIND_CREATE, o, 0); err != nil {
		return nil, err
	}
	return proto.CloneOf(o), nil
}

func (tx *writeTx) Update(obj *api.Object) error {
	o := proto.CloneOf(obj)
	if o == nil {
		return tx.fail(fmt.Errorf("%w: update: nil object", ErrInvalid))
	}
	expected := o.GetVersion()
	o.Version = 0
	o.UpdatedAt = tx.now
	if o.CreatedAt == nil {
		// Apply keeps the stored created_at; this only makes the
		// object valid on its own.
		o.CreatedAt = tx.now
	}
	return tx.add(api.StoreActionKind_STORE_ACTION_KIND_UPDATE, o, expected)
}

func (tx *writeTx) Delete(kind, id string, expectedVersion uint64) error {
	if err := ValidateKind(kind); err != nil {
		return tx.fail(fmt.Errorf("%w (in a delete)", err))
	}
	if err := ValidateID(id); err != nil {
		return tx.fail(fmt.Errorf("%w (in a delete)", err))
	}
	return tx.add(api.StoreActionKind_STORE_ACTION_KIND_DELETE, &api.Object{Kind: kind, Id: id}, expectedVersion)
}

// add validates one action against the Config's limits and appends it.
func (tx *writeTx) add(kind api.StoreActionKind, o *api.Object, expected uint64) error {
	if kind != api.StoreActionKind_STORE_ACTION_KIND_DELETE {
		if err := validateObject(o); err != nil {
			return tx.fail(fmt.Errorf("%w (in a %s)", err, actionName(kind)))
		}
		if n := proto.Size(o); n > tx.cfg.MaxObjectBytes {
			return tx.fail(fmt.Errorf("%w: %s %s %q is %d bytes, MaxObjectBytes is %d",
				ErrTooLarge, actionName(kind), o.GetKind(), o.GetName(), n, tx.cfg.MaxObjectBytes))
		}
	}
	if len(tx.actions) >= tx.cfg.MaxActions {
		return tx.fail(fmt.Errorf("%w: more than MaxActions %d changes in one transaction", ErrTooLarge, tx.cfg.MaxActions))
	}
	a := &api.StoreAction{Kind: kind, Object: o, ExpectedVersion: expected}
	n := actionBytes(a)
	if tx.bytes+n > tx.cfg.MaxTxBytes {
		return tx.fail(fmt.Errorf("%w: transaction exceeds MaxTxBytes %d", ErrTooLarge, tx.cfg.MaxTxBytes))
	}
	tx.actions = append(tx.actions, a)
	tx.bytes += n
	return nil
}

func (tx *writeTx) fail(err error) error {
	if tx.err == nil {
		tx.err = err
	}
	return err
}

// actionBytes is what a adds to an encoded StoreActions: field 1, length
// delimited.
func actionBytes(a *api.StoreAction) int {
	return protowire.SizeTag(1) + protowire.SizeBytes(proto.Size(a))
}

func actionName(k api.StoreActionKind) string {
	return strings.ToLower(strings.TrimPrefix(k.String(), "STORE_ACTION_KIND_"))
}

// newID returns 128 random bits as 26 characters of [a-z2-7].
func newID() string {
	return strings.ToLower(rand.Text())
}
