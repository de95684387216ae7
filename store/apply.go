package store

import (
	"errors"
	"fmt"
	"strings"

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
	results, errs := s.ApplyBatch(index, [][]byte{payload})
	return results[0], errs[0]
}

// ApplyBatch applies payloads, those of the committed entries at indexes
// first, first+1, ..., in order, each as Apply does, and makes their changes
// visible to readers at once when it returns: one new version of the store
// for the whole run, which copies less of the indexes than one per entry.
// It returns one result (a *Result or nil) and one error per payload; it
// implements raft.BatchApplier.
func (s *Store) ApplyBatch(first uint64, payloads [][]byte) ([]any, []error) {
	if len(payloads) == 0 {
		return nil, nil
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	results, errs := make([]any, len(payloads)), make([]error, len(payloads))
	cur := s.cur.Load()
	if first <= cur.index {
		for i := range errs {
			errs[i] = fmt.Errorf("%w: entry index %d is not above the applied index %d", ErrInvalid, first+uint64(i), cur.index)
		}
		return results, errs
	}
	events := make([][]Event, len(payloads))
	for i, payload := range payloads {
		index := first + uint64(i)
		res, evs, err := s.applyEntry(index, payload)
		if err != nil {
			s.log.Debug("store entry rejected", "index", index, "err", err)
			errs[i] = err
			continue
		}
		results[i], events[i] = res, evs
	}
	s.publish(&state{index: first + uint64(len(payloads)) - 1, restores: cur.restores, tables: s.work})
	for i, evs := range events {
		// After Close the queue refuses events on purpose: nobody is
		// left to watch. Any other refusal means versions went
		// backwards, a bug.
		if err := s.events.Publish(first+uint64(i), evs...); err != nil && !errors.Is(err, watch.ErrClosed) {
			s.log.Error("store events not published", "index", first+uint64(i), "err", err)
		}
	}
	return results, errs
}

// applyEntry applies one entry to s.work, all of it or, when it is
// rejected, nothing. Only an entry of several actions needs a copy to go
// back to: one action is checked whole before it changes anything.
func (s *Store) applyEntry(index uint64, payload []byte) (*Result, []Event, error) {
	msg, err := decodeEntry(payload)
	if err != nil {
		return nil, nil, err
	}
	id := string(msg.GetRequestId())
	if id != "" {
		if res, ok := s.repeated(s.work, id); ok {
			return res, nil, nil
		}
	}
	var undo tables
	several := len(msg.GetActions()) > 1
	if several {
		undo = s.work.clone()
	}
	res := &Result{Version: index, Objects: make([]*api.Object, 0, len(msg.GetActions()))}
	events := make([]Event, 0, len(msg.GetActions()))
	for i, a := range msg.GetActions() {
		ev, err := applyAction(s.work, index, a)
		if err != nil {
			if several {
				s.work = undo
			}
			return nil, nil, fmt.Errorf("%w (action %d of %d)", err, i+1, len(msg.GetActions()))
		}
		res.Objects = append(res.Objects, ev.Object)
		events = append(events, ev)
	}
	if id != "" {
		s.remember(id, index, msg.GetActions(), res)
	}
	return res, events, nil
}

// decodeEntry decodes and bounds an entry's payload.
func decodeEntry(payload []byte) (*api.StoreActions, error) {
	if len(payload) > HardMaxTxBytes {
		return nil, fmt.Errorf("%w: entry of %d bytes exceeds %d", ErrTooLarge, len(payload), HardMaxTxBytes)
	}
	msg := &api.StoreActions{}
	if err := proto.Unmarshal(payload, msg); err != nil {
		return nil, fmt.Errorf("%w: entry payload: %v", ErrInvalid, err)
	}
	if err := validRequestID(msg.GetRequestId()); err != nil {
		return nil, err
	}
	switch n := len(msg.GetActions()); {
	case n == 0:
		return nil, fmt.Errorf("%w: entry without actions", ErrInvalid)
	case n > HardMaxActions:
		return nil, fmt.Errorf("%w: entry of %d actions exceeds %d", ErrTooLarge, n, HardMaxActions)
	}
	return msg, nil
}

// applyAction applies one action to t, which holds the actions before it
// in the same entry, and returns its event.
func applyAction(t tables, index uint64, a *api.StoreAction) (Event, error) {
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
	// The object as held is checked without decoding it; only a delete,
	// whose event carries the object, decodes it.
	held, found := t.lookupID(o.GetId())
	switch kind {
	case api.StoreActionKind_STORE_ACTION_KIND_CREATE:
		if a.GetExpectedVersion() != 0 {
			return Event{}, fmt.Errorf("%w: create %s %q with expected version %d", ErrInvalid, o.GetKind(), o.GetName(), a.GetExpectedVersion())
		}
		if found {
			return Event{}, fmt.Errorf("%w: id %q is taken by %s %q", ErrExists, o.GetId(), held.kind, held.name)
		}
		o.Version = index
		s, err := storeObject(o)
		if err != nil {
			return Event{}, err
		}
		if err := checkNameFree(t, s); err != nil {
			return Event{}, err
		}
		t.put(s, stored{})
		return Event{Type: EventCreate, Version: index, Object: o, size: eventOverhead + len(s.blob)}, nil

	case api.StoreActionKind_STORE_ACTION_KIND_UPDATE:
		if err := checkCurrent(held, found, o, a.GetExpectedVersion()); err != nil {
			return Event{}, err
		}
		o.Version = index
		o.CreatedAt = held.createdAtTime()
		s, err := storeObject(o)
		if err != nil {
			return Event{}, err
		}
		if s.name != held.name {
			if err := checkNameFree(t, s); err != nil {
				return Event{}, err
			}
		}
		t.put(s, held)
		old, oldBytes := selectedFields(held)
		return Event{Type: EventUpdate, Version: index, Object: o, Old: old, size: eventOverhead + len(s.blob) + oldBytes}, nil

	case api.StoreActionKind_STORE_ACTION_KIND_DELETE:
		if err := checkCurrent(held, found, o, a.GetExpectedVersion()); err != nil {
			return Event{}, err
		}
		t.remove(held)
		return Event{Type: EventDelete, Version: index, Object: decode(held.blob), size: eventOverhead + len(held.blob)}, nil
	}
	return Event{}, fmt.Errorf("%w: action kind %d", ErrInvalid, kind)
}

// checkCurrent checks that the object an update or delete names exists with
// its kind (held, if found) and, if asked, the expected version.
func checkCurrent(held stored, found bool, o *api.Object, expected uint64) error {
	if !found || held.kind != o.GetKind() {
		return fmt.Errorf("%w: %s with id %q", ErrNotFound, o.GetKind(), o.GetId())
	}
	if expected != 0 && expected != held.version {
		return fmt.Errorf("%w: %s %q has version %d, expected %d", ErrVersionConflict, held.kind, held.name, held.version, expected)
	}
	return nil
}

// selectedFields is the part of a held object that selectors read: its
// kind, id, name and labels, copied out of the blob. The event keeps it in
// the watch history after the object has changed again; substrings would
// keep the whole old blob alive with it, spec and all. It also returns
// the bytes copied.
func selectedFields(held stored) (*api.Object, int) {
	n := len(held.kind) + len(held.id) + len(held.name)
	for _, l := range held.labels {
		n += len(l.key) + len(l.value)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(held.kind)
	b.WriteString(held.id)
	b.WriteString(held.name)
	for _, l := range held.labels {
		b.WriteString(l.key)
		b.WriteString(l.value)
	}
	rest := b.String() // one allocation; the fields are substrings of it
	next := func(n int) string {
		s := rest[:n]
		rest = rest[n:]
		return s
	}
	o := &api.Object{Kind: next(len(held.kind)), Id: next(len(held.id)), Name: next(len(held.name))}
	if len(held.labels) > 0 {
		o.Labels = make(map[string]string, len(held.labels))
		for _, l := range held.labels {
			key := next(len(l.key))
			o.Labels[key] = next(len(l.value))
		}
	}
	return o, n
}

// checkNameFree checks that no object holds s's kind and name, looking
// them up with s's own entry: no key to build.
func checkNameFree(t tables, s stored) error {
	if e, taken := t.names.Get(s.nameEntry()); taken {
		other, err := parseStored(e.blob)
		if err != nil {
			return err
		}
		return fmt.Errorf("%w: %s %q is taken by id %q", ErrExists, s.kind, s.name, other.id)
	}
	return nil
}
