package store

import (
	"fmt"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
)

// Remembered requests (docs/design.md, "Request IDs"): a write may carry
// an ID its client chose. The store remembers the IDs of the last
// RememberedRequests writes it applied, with the objects they touched, and
// answers a repeat of one with that, applying nothing. A client that does
// not know whether a write went through (the manager it called died, the
// leader changed) sends it again with the same ID, to any manager, and
// learns what the first attempt did instead of doing it twice. The memory
// is part of the replicated state: applied identically everywhere, kept in
// snapshots, and forgotten oldest first, by count, so that every manager
// forgets the same requests at the same index.
const (
	// RememberedRequests is how many request IDs the store remembers: at
	// 15,000 writes a second, the last 9 s of writes, more than a retry
	// after a failover needs. Every manager must use the same value.
	RememberedRequests = 1 << 17
	// MaxRequestIDLen bounds a request ID.
	MaxRequestIDLen = 64
)

// remembered is a request as held: the index of the entry that applied
// it, its ID, and the deterministic encoding of its api.RememberedRequest,
// of which the ID is a substring. The B-tree orders them by index, so the
// newest is added at its right edge and the oldest forgotten at its left,
// each copying one path of nodes per run of entries; a map finds them by
// ID (Store.requestIndex).
type remembered struct {
	index    uint64
	id, blob string
}

func lessRequest(a, b remembered) bool { return a.index < b.index }

// rememberedRef is one action of a remembered request.
type rememberedRef struct {
	kind, id string
	deleted  bool
}

// newRemembered encodes a request as held: an api.RememberedRequest,
// written here field by field (one allocation, no reflection, on the
// apply path), the same bytes whether Apply or Restore makes it.
func newRemembered(id string, index uint64, refs []rememberedRef) remembered {
	size := 1 + protowire.SizeBytes(len(id)) + 1 + protowire.SizeVarint(index)
	for _, r := range refs {
		size += 1 + protowire.SizeBytes(refSize(r))
	}
	b := make([]byte, 0, size)
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, id)
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, index)
	for _, r := range refs {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(refSize(r)))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, r.kind)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, r.id)
		if r.deleted {
			b = protowire.AppendTag(b, 3, protowire.VarintType)
			b = protowire.AppendVarint(b, 1)
		}
	}
	blob := unsafe.String(unsafe.SliceData(b), len(b)) // never written again
	start := 1 + protowire.SizeVarint(uint64(len(id)))
	return remembered{index: index, id: blob[start : start+len(id)], blob: blob}
}

func refSize(r rememberedRef) int {
	n := 1 + protowire.SizeBytes(len(r.kind)) + 1 + protowire.SizeBytes(len(r.id))
	if r.deleted {
		n += 2
	}
	return n
}

// validRequestID checks a request ID's length; any bytes will do.
func validRequestID(id []byte) error {
	if len(id) > MaxRequestIDLen {
		return fmt.Errorf("%w: request ID of %d bytes, more than %d", ErrInvalid, len(id), MaxRequestIDLen)
	}
	return nil
}

// remember records that the entry at index, which carried request ID id,
// did res (whose Objects match actions), and forgets the oldest request
// beyond RememberedRequests.
func (s *Store) remember(id string, index uint64, actions []*api.StoreAction, res *Result) {
	refs := make([]rememberedRef, len(res.Objects))
	for i, o := range res.Objects {
		refs[i] = rememberedRef{kind: o.GetKind(), id: o.GetId(),
			deleted: actions[i].GetKind() == api.StoreActionKind_STORE_ACTION_KIND_DELETE}
	}
	r := newRemembered(id, index, refs)
	s.work.requests.ReplaceOrInsert(r)
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	s.requestIndex[r.id] = index
	for s.work.requests.Len() > RememberedRequests {
		old, _ := s.work.requests.DeleteMin()
		delete(s.requestIndex, old.id)
	}
}

// repeated returns the Result of the remembered request id in t, if t
// holds it: the version it was applied at, and for each action the object
// as it is now if that version has not changed it since, or else its
// kind, id and that version (a deleted object's kind and id).
func (s *Store) repeated(t tables, id string) (*Result, bool) {
	s.reqMu.RLock()
	index, ok := s.requestIndex[id]
	s.reqMu.RUnlock()
	if !ok {
		return nil, false
	}
	// Apply may have remembered it in a run that t, a published state,
	// does not hold yet: the write is then not answered here, but by
	// Apply when it is proposed again.
	r, ok := t.requests.Get(remembered{index: index})
	if !ok || r.id != id {
		return nil, false
	}
	rec := &api.RememberedRequest{}
	if err := proto.Unmarshal(bytesOf(r.blob), rec); err != nil {
		panic(fmt.Sprintf("store: decoding a remembered request: %v", err)) // written by remember
	}
	res := &Result{Version: rec.GetIndex(), Repeated: true, Objects: make([]*api.Object, len(rec.GetRefs()))}
	for i, ref := range rec.GetRefs() {
		o := &api.Object{Kind: ref.GetKind(), Id: ref.GetId()}
		if !ref.GetDeleted() {
			o.Version = rec.GetIndex()
			if held, found := t.lookupID(ref.GetId()); found {
				if cur := decode(held.blob); cur.GetVersion() == rec.GetIndex() {
					o = cur
				}
			}
		}
		res.Objects[i] = o
	}
	return res, true
}

// Repeated returns what the write with request ID id did, if the store
// remembers it (see RememberedRequests): a Result with Repeated set.
// The answer is as of the last entry applied here, which may be behind
// the cluster's.
func (s *Store) Repeated(id []byte) (*Result, bool) {
	if len(id) == 0 {
		return nil, false
	}
	return s.repeated(s.cur.Load().tables, string(id))
}

// checkRemembered checks a remembered request read from a snapshot taken
// at snapIndex and returns it as held.
func checkRemembered(rec *api.RememberedRequest, snapIndex uint64) (remembered, error) {
	switch {
	case len(rec.GetId()) == 0:
		return remembered{}, fmt.Errorf("a remembered request without an ID")
	case validRequestID(rec.GetId()) != nil:
		return remembered{}, validRequestID(rec.GetId())
	case rec.GetIndex() == 0 || rec.GetIndex() > snapIndex:
		return remembered{}, fmt.Errorf("a remembered request at index %d, outside [1, %d]", rec.GetIndex(), snapIndex)
	case len(rec.GetRefs()) == 0 || len(rec.GetRefs()) > HardMaxActions:
		return remembered{}, fmt.Errorf("a remembered request of %d actions", len(rec.GetRefs()))
	}
	refs := make([]rememberedRef, len(rec.GetRefs()))
	for i, ref := range rec.GetRefs() {
		if err := ValidateKind(ref.GetKind()); err != nil {
			return remembered{}, err
		}
		if err := ValidateID(ref.GetId()); err != nil {
			return remembered{}, err
		}
		refs[i] = rememberedRef{kind: ref.GetKind(), id: ref.GetId(), deleted: ref.GetDeleted()}
	}
	return newRemembered(string(rec.GetId()), rec.GetIndex(), refs), nil
}

// indexRequests returns the IDs of the requests t remembers, with their
// indexes.
func indexRequests(t tables) map[string]uint64 {
	m := make(map[string]uint64, t.requests.Len())
	t.requests.Ascend(func(r remembered) bool {
		m[r.id] = r.index
		return true
	})
	return m
}
