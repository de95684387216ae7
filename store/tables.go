package store

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"unsafe"

	"github.com/google/btree"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/api"
)

// How objects are held (docs/design.md, "The store's memory"): each object
// is one immutable string, its deterministic protobuf encoding (a blob),
// and three copy-on-write B-trees index the blobs. Index entries hold the
// id, kind, name and labels as substrings of the blob, so an object costs
// one allocation plus its share of the trees' nodes, and the garbage
// collector scans a few pointers per object instead of a graph of
// messages, maps and radix nodes. Reads decode the blob into a fresh
// *api.Object.

// treeDegree is the B-trees' degree: nodes hold up to 2*treeDegree-1
// entries. A write copies the nodes on its path (copy-on-write), so small
// nodes copy less; large ones make shallower trees (BenchmarkApply).
const treeDegree = 16

// byID orders objects by id: the order of snapshots and of Hash. It holds
// the blob and where the id is in it, so that the collector follows one
// pointer per entry, not one per field, and the id's first 8 bytes, which
// decide nearly every comparison of random ids without reading the blob:
// with a million objects, the blobs a lookup compared against were cache
// misses.
type byID struct {
	blob   string
	prefix uint64 // idPrefix of the id
	at, n  uint16 // the id is blob[at:at+n]
}

// byName orders objects by kind, then name: the order of every list. Like
// byID, it holds the blob and where the fields are in it.
type byName struct {
	blob                             string
	kindAt, kindLen, nameAt, nameLen uint16
}

func (e byID) id() string     { return e.blob[e.at : int(e.at)+int(e.n)] }
func (e byName) kind() string { return e.blob[e.kindAt : int(e.kindAt)+int(e.kindLen)] }
func (e byName) name() string { return e.blob[e.nameAt : int(e.nameAt)+int(e.nameLen)] }

// idKey is the entry to look up id with. Stored ids are at most MaxIDLen
// bytes: callers check longer ones, which find nothing, before.
func idKey(id string) byID { return byID{blob: id, prefix: idPrefix(id), n: uint16(len(id))} }

// idPrefix is the first 8 bytes of id, big-endian, padded with zeros. Ids
// hold no zero bytes ([a-z0-9]), so prefixes order as the ids do, and
// equal prefixes leave the order to the ids themselves.
func idPrefix(id string) uint64 {
	var b [8]byte
	copy(b[:], id)
	return binary.BigEndian.Uint64(b[:])
}

// nameKey is the entry to look up kind and name with, or the first name
// of kind at or after name; kind and name at most MaxKindLen and
// MaxNameLen bytes, which callers check.
func nameKey(kind, name string) byName {
	return byName{blob: kind + name, kindLen: uint16(len(kind)), nameAt: uint16(len(kind)), nameLen: uint16(len(name))}
}

// byLabel has one entry per label of an object: kind, label key, label
// value, then id.
type byLabel struct{ kind, key, value, id string }

func lessID(a, b byID) bool {
	if a.prefix != b.prefix {
		return a.prefix < b.prefix
	}
	return a.id() < b.id()
}

// The comparisons test equality before order: most entries compared share
// their kind (and a label's key), and != is one length check and one
// memory comparison, where cmp.Compare of equal strings orders them twice.

func lessName(a, b byName) bool {
	if ak, bk := a.kind(), b.kind(); ak != bk {
		return ak < bk
	}
	return a.name() < b.name()
}

func lessLabel(a, b byLabel) bool {
	switch {
	case a.kind != b.kind:
		return a.kind < b.kind
	case a.key != b.key:
		return a.key < b.key
	case a.value != b.value:
		return a.value < b.value
	}
	return a.id < b.id
}

// tables are the three indexes of one version of the store, and the
// requests it remembers (requests.go). A published version is never
// written again: Apply writes clones.
type tables struct {
	ids      *btree.BTreeG[byID]
	names    *btree.BTreeG[byName]
	labels   *btree.BTreeG[byLabel]
	requests *btree.BTreeG[remembered]
}

func newTables() tables {
	return tables{
		ids:      btree.NewG(treeDegree, lessID),
		names:    btree.NewG(treeDegree, lessName),
		labels:   btree.NewG(treeDegree, lessLabel),
		requests: btree.NewG(treeDegree, lessRequest),
	}
}

// clone returns tables that share every node with t until either is
// written: O(1).
func (t tables) clone() tables {
	return tables{ids: t.ids.Clone(), names: t.names.Clone(), labels: t.labels.Clone(), requests: t.requests.Clone()}
}

// state is one immutable version of the store: what a read transaction
// sees.
type state struct {
	index    uint64 // of the last entry applied, or of the snapshot restored
	restores uint64 // how many Restores made this state's history
	tables
}

// stored is an object as held: the blob and the fields the indexes and
// the checks of Apply use, the strings all substrings of it.
type stored struct {
	blob           string
	id, kind, name string
	labels         []byLabel // without their id, set by insert
	version        uint64
	createdAt      string // the encoding of created_at, if hasCreatedAt
	hasCreatedAt   bool
}

// storeObject encodes o, which must be valid, as it is held.
func storeObject(o *api.Object) (stored, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(o)
	if err != nil {
		return stored{}, fmt.Errorf("store: encoding %s %q: %w", o.GetKind(), o.GetName(), err)
	}
	if len(b) == 0 {
		return stored{}, fmt.Errorf("store: %s %q encodes to nothing", o.GetKind(), o.GetName())
	}
	// The bytes are never written again, so the string may share them.
	return parseStored(unsafe.String(&b[0], len(b)))
}

// parseStored finds the indexed fields of a blob, its version and its
// created_at. A blob is a deterministic encoding, which writes every field
// once.
func parseStored(blob string) (stored, error) {
	s := stored{blob: blob}
	err := eachField(blob, func(num protowire.Number, v string, n uint64) error {
		switch num {
		case 1:
			s.kind = v
		case 2:
			s.id = v
		case 3:
			s.name = v
		case 4: // a map entry of the labels: key 1, value 2
			var l byLabel
			if err := eachField(v, func(num protowire.Number, v string, _ uint64) error {
				switch num {
				case 1:
					l.key = v
				case 2:
					l.value = v
				}
				return nil
			}); err != nil {
				return err
			}
			s.labels = append(s.labels, l)
		case 6:
			s.version = n
		case 7:
			s.createdAt, s.hasCreatedAt = v, true
		}
		return nil
	})
	if err != nil {
		return stored{}, fmt.Errorf("store: a stored object's encoding: %w", err)
	}
	for i := range s.labels {
		s.labels[i].kind = s.kind
	}
	for _, f := range []string{s.kind, s.id, s.name} {
		// Not reached with a deterministic encoding, which writes these
		// fields first.
		if offsetIn(blob, f)+len(f) > math.MaxUint16 {
			return stored{}, fmt.Errorf("store: a stored object's kind, id and name must be in its first %d bytes", math.MaxUint16)
		}
	}
	return s, nil
}

// offsetIn returns where sub, a substring of s, starts in s.
func offsetIn(s, sub string) int {
	if sub == "" {
		return 0
	}
	return int(uintptr(unsafe.Pointer(unsafe.StringData(sub))) - uintptr(unsafe.Pointer(unsafe.StringData(s))))
}

// idEntry and nameEntry are s's entries in the ids and names trees.
func (s stored) idEntry() byID {
	return byID{blob: s.blob, prefix: idPrefix(s.id), at: uint16(offsetIn(s.blob, s.id)), n: uint16(len(s.id))}
}

func (s stored) nameEntry() byName {
	return byName{blob: s.blob, kindAt: uint16(offsetIn(s.blob, s.kind)), kindLen: uint16(len(s.kind)),
		nameAt: uint16(offsetIn(s.blob, s.name)), nameLen: uint16(len(s.name))}
}

// eachField calls fn with the number and value of every length-delimited
// field (v, a substring of msg) and every varint field (n) of the encoded
// message msg, in order, and skips the other fields.
func eachField(msg string, fn func(num protowire.Number, v string, n uint64) error) error {
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(bytesOf(msg))
		if n < 0 {
			return protowire.ParseError(n)
		}
		msg = msg[n:]
		if typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(bytesOf(msg))
			if n < 0 {
				return protowire.ParseError(n)
			}
			if err := fn(num, "", v); err != nil {
				return err
			}
			msg = msg[n:]
			continue
		}
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, bytesOf(msg)); n < 0 {
				return protowire.ParseError(n)
			}
			msg = msg[n:]
			continue
		}
		size, n := protowire.ConsumeVarint(bytesOf(msg))
		if n < 0 {
			return protowire.ParseError(n)
		}
		if size > uint64(len(msg)-n) {
			return io.ErrUnexpectedEOF
		}
		if err := fn(num, msg[n:n+int(size)], 0); err != nil {
			return err
		}
		msg = msg[n+int(size):]
	}
	return nil
}

// blobVersion reads the version (field 6) of a stored object's blob
// without allocating; 0 if it has none.
func blobVersion(blob string) uint64 {
	var version uint64
	_ = eachField(blob, func(num protowire.Number, _ string, n uint64) error { // written by storeObject
		if num == 6 {
			version = n
		}
		return nil
	})
	return version
}

// createdAtTime decodes s's created_at; nil if it has none.
func (s stored) createdAtTime() *timestamppb.Timestamp {
	if !s.hasCreatedAt {
		return nil
	}
	ts := &timestamppb.Timestamp{}
	if err := proto.Unmarshal(bytesOf(s.createdAt), ts); err != nil {
		panic(fmt.Sprintf("store: decoding a stored object's created_at: %v", err)) // written by storeObject
	}
	return ts
}

// bytesOf views s as bytes, for decoders that only read their input.
func bytesOf(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

// decode returns a new object from a blob. The blobs are written by
// storeObject, so a failure is a bug.
func decode(blob string) *api.Object {
	o := &api.Object{}
	if err := proto.Unmarshal(bytesOf(blob), o); err != nil {
		panic(fmt.Sprintf("store: decoding a stored object: %v", err))
	}
	return o
}

// put adds s to t, or replaces old by it: the object's previous version
// (stored{} if none), which has the same id. Apply has checked that the
// kind and name are free.
func (t tables) put(s, old stored) {
	t.ids.ReplaceOrInsert(s.idEntry())
	if old.blob != "" && old.name != s.name {
		t.names.Delete(old.nameEntry())
	}
	t.names.ReplaceOrInsert(s.nameEntry())
	t.putLabels(s, old)
}

func (t tables) putLabels(s, old stored) {
	for _, l := range old.labels {
		l.id = old.id
		t.labels.Delete(l)
	}
	for _, l := range s.labels {
		l.id = s.id
		t.labels.ReplaceOrInsert(l)
	}
}

// add adds s to t, which must not hold it, and reports whether its id or
// its kind and name were taken, which Restore counts as a corrupt
// snapshot. t is then left with the newer entry.
func (t tables) add(s stored) (taken bool) {
	_, idTaken := t.ids.ReplaceOrInsert(s.idEntry())
	_, nameTaken := t.names.ReplaceOrInsert(s.nameEntry())
	t.putLabels(s, stored{})
	return idTaken || nameTaken
}

// remove deletes every entry of s from t.
func (t tables) remove(s stored) {
	t.ids.Delete(s.idEntry())
	t.names.Delete(s.nameEntry())
	for _, l := range s.labels {
		l.id = s.id
		t.labels.Delete(l)
	}
}

// lookupID returns the object held under id.
func (t tables) lookupID(id string) (stored, bool) {
	e, ok := t.getID(id)
	if !ok {
		return stored{}, false
	}
	s, err := parseStored(e.blob)
	if err != nil {
		panic(err.Error()) // written by storeObject
	}
	return s, true
}

// lookupName returns the blob of the object of kind named name.
func (t tables) lookupName(kind, name string) (string, bool) {
	if len(kind) > MaxKindLen || len(name) > MaxNameLen { // none held: nameKey would cut it
		return "", false
	}
	e, ok := t.names.Get(nameKey(kind, name))
	return e.blob, ok
}

// getID returns the entry of id.
func (t tables) getID(id string) (byID, bool) {
	if len(id) > MaxIDLen { // none held: idKey would cut it
		return byID{}, false
	}
	return t.ids.Get(idKey(id))
}
