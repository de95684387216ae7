package store

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/watch"
)

// Apply applies the payload of the committed entry at index: a StoreActions
// message, all of whose actions take effect or none. It is deterministic:
// it reads only the payload, the index and the stored state (never the
// clock or the local Config), so every manager reaches the same state and
// the same answer.
//
// It returns a *Result, or an error wrapping ErrExists, ErrNotFound,
// ErrVersionConflict, ErrInvalid or ErrTooLarge that rejects the whole
// entry. Either way the store's version becomes index. Garbage payloads
// are rejected, never a panic. Apply is meant to be called by the Raft
// node, from one goroutine, with growing indexes; an index not above the
// store's version is refused with ErrInvalid and changes nothing.
func (s *Store) Apply(index uint64, payload []byte) (any, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	db := s.db.Load()
	txn := db.Txn(true)
	defer txn.Abort() // after Commit it does nothing
	if last := appliedIndex(txn); index <= last {
		return nil, fmt.Errorf("%w: entry index %d is not above the applied index %d", ErrInvalid, index, last)
	}
	res, events, err := applyPayload(txn, index, payload)
	if err != nil {
		// Nothing of the entry stays; only the version moves on.
		txn.Abort()
		txn = db.Txn(true)
		s.log.Debug("store entry rejected", "index", index, "err", err)
	}
	if err := setAppliedIndex(txn, index); err != nil {
		panic(fmt.Sprintf("store: writing the applied index: %v", err)) // only a schema bug gets here
	}
	txn.Commit()
	// After Close the queue refuses events on purpose: nobody is left to
	// watch. Any other refusal means versions went backwards, a bug.
	if perr := s.events.Publish(index, events...); perr != nil && !errors.Is(perr, watch.ErrClosed) {
		s.log.Error("store events not published", "index", index, "err", perr)
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

func applyPayload(txn *memdb.Txn, index uint64, payload []byte) (*Result, []Event, error) {
	if len(payload) > HardMaxTxBytes {
		return nil, nil, fmt.Errorf("%w: entry of %d bytes exceeds %d", ErrTooLarge, len(payload), HardMaxTxBytes)
	}
	var msg api.StoreActions
	if err := proto.Unmarshal(payload, &msg); err != nil {
		return nil, nil, fmt.Errorf("%w: entry payload: %v", ErrInvalid, err)
	}
	switch n := len(msg.GetActions()); {
	case n == 0:
		return nil, nil, fmt.Errorf("%w: entry without actions", ErrInvalid)
	case n > HardMaxActions:
		return nil, nil, fmt.Errorf("%w: entry of %d actions exceeds %d", ErrTooLarge, n, HardMaxActions)
	}
	res := &Result{Version: index, Objects: make([]*api.Object, 0, len(msg.GetActions()))}
	events := make([]Event, 0, len(msg.GetActions()))
	for i, a := range msg.GetActions() {
		ev, err := applyAction(txn, index, a)
		if err != nil {
			return nil, nil, fmt.Errorf("%w (action %d of %d)", err, i+1, len(msg.GetActions()))
		}
		res.Objects = append(res.Objects, ev.Object)
		events = append(events, ev)
	}
	return res, events, nil
}

// applyAction applies one action to txn, which holds the actions before it
// in the same entry, and returns its event.
func applyAction(txn *memdb.Txn, index uint64, a *api.StoreAction) (Event, error) {
	o := a.GetObject()
	if o == nil {
		return Event{}, fmt.Errorf("%w: action without object", ErrInvalid)
	}
	kind := a.GetKind()
	if kind == api.StoreActionKind_STORE_ACTION_KIND_DELETE {
		if err := ValidateKind(o.GetKind()); err != nil {
			return Event{}, err
		}
		if err := ValidateID(o.GetId()); err != nil {
			return Event{}, err
		}
	} else {
		if err := validateObject(o); err != nil {
			return Event{}, err
		}
		if err := validateTimes(o); err != nil {
			return Event{}, err
		}
		if n := proto.Size(o); n > HardMaxObjectBytes {
			return Event{}, fmt.Errorf("%w: %s %q is %d bytes, more than %d", ErrTooLarge, o.GetKind(), o.GetName(), n, HardMaxObjectBytes)
		}
	}
	cur, err := lookupID(txn, o.GetId())
	if err != nil {
		return Event{}, err
	}
	switch kind {
	case api.StoreActionKind_STORE_ACTION_KIND_CREATE:
		if a.GetExpectedVersion() != 0 {
			return Event{}, fmt.Errorf("%w: create %s %q with expected version %d", ErrInvalid, o.GetKind(), o.GetName(), a.GetExpectedVersion())
		}
		if cur != nil {
			return Event{}, fmt.Errorf("%w: id %q is taken by %s %q", ErrExists, o.GetId(), cur.GetKind(), cur.GetName())
		}
		if err := checkNameFree(txn, o); err != nil {
			return Event{}, err
		}
		o.Version = index
		if err := txn.Insert(tableObjects, o); err != nil {
			return Event{}, fmt.Errorf("store: insert: %w", err)
		}
		return Event{Type: EventCreate, Version: index, Object: o}, nil

	case api.StoreActionKind_STORE_ACTION_KIND_UPDATE:
		if err := checkCurrent(cur, o, a.GetExpectedVersion()); err != nil {
			return Event{}, err
		}
		if o.GetName() != cur.GetName() {
			if err := checkNameFree(txn, o); err != nil {
				return Event{}, err
			}
		}
		o.Version = index
		o.CreatedAt = cur.GetCreatedAt()
		if err := txn.Insert(tableObjects, o); err != nil {
			return Event{}, fmt.Errorf("store: insert: %w", err)
		}
		return Event{Type: EventUpdate, Version: index, Object: o, Old: cur}, nil

	case api.StoreActionKind_STORE_ACTION_KIND_DELETE:
		if err := checkCurrent(cur, o, a.GetExpectedVersion()); err != nil {
			return Event{}, err
		}
		if err := txn.Delete(tableObjects, cur); err != nil {
			return Event{}, fmt.Errorf("store: delete: %w", err)
		}
		return Event{Type: EventDelete, Version: index, Object: cur}, nil
	}
	return Event{}, fmt.Errorf("%w: action kind %d", ErrInvalid, kind)
}

func lookupID(txn *memdb.Txn, id string) (*api.Object, error) {
	raw, err := txn.First(tableObjects, indexID, id)
	if err != nil {
		return nil, fmt.Errorf("store: id index: %w", err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*api.Object), nil
}

// checkCurrent checks that the object an update or delete names exists with
// its kind and, if asked, the expected version.
func checkCurrent(cur, o *api.Object, expected uint64) error {
	if cur == nil || cur.GetKind() != o.GetKind() {
		return fmt.Errorf("%w: %s with id %q", ErrNotFound, o.GetKind(), o.GetId())
	}
	if expected != 0 && expected != cur.GetVersion() {
		return fmt.Errorf("%w: %s %q has version %d, expected %d", ErrVersionConflict, cur.GetKind(), cur.GetName(), cur.GetVersion(), expected)
	}
	return nil
}

func checkNameFree(txn *memdb.Txn, o *api.Object) error {
	raw, err := txn.First(tableObjects, indexKindName, o.GetKind(), o.GetName())
	if err != nil {
		return fmt.Errorf("store: kind_name index: %w", err)
	}
	if raw != nil {
		return fmt.Errorf("%w: %s %q is taken by id %q", ErrExists, o.GetKind(), o.GetName(), raw.(*api.Object).GetId())
	}
	return nil
}
