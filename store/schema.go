package store

import (
	"fmt"

	"github.com/hashicorp/go-memdb"

	"github.com/shoal-project/shoal/api"
)

// Tables and indexes. Index keys are built by hand, fields separated and
// ended by NUL (which no kind, name, id or label may hold), so that an
// exact lookup, which go-memdb runs as a prefix seek, cannot match a
// longer value.
const (
	tableObjects = "objects"
	tableMeta    = "meta"

	indexID = "id" // id; unique
	// indexKindName is kind, name; unique (enforced by Apply: go-memdb
	// would silently let a second object take over the key). Its order is
	// the order of every list.
	indexKindName = "kind_name"
	// indexLabel holds one key per label: kind, label key, label value.
	indexLabel = "label"
)

// metaRow holds the index of the last applied entry inside the database,
// so that every read transaction sees the version that goes with its data.
type metaRow struct {
	index uint64
}

func newSchema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableObjects: {
			Name: tableObjects,
			Indexes: map[string]*memdb.IndexSchema{
				indexID:       {Name: indexID, Unique: true, Indexer: idIndexer{}},
				indexKindName: {Name: indexKindName, Unique: true, Indexer: kindNameIndexer{}},
				indexLabel:    {Name: indexLabel, AllowMissing: true, Indexer: labelIndexer{}},
			},
		},
		tableMeta: {
			Name: tableMeta,
			Indexes: map[string]*memdb.IndexSchema{
				indexID: {Name: indexID, Unique: true, Indexer: metaIndexer{}},
			},
		},
	}}
}

// key joins parts, each followed by NUL.
func key(parts ...string) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	for _, p := range parts {
		b = append(b, p...)
		b = append(b, 0)
	}
	return b
}

// stringArgs checks that args are n strings.
func stringArgs(n int, args []any) ([]string, error) {
	if len(args) != n {
		return nil, fmt.Errorf("want %d arguments, got %d", n, len(args))
	}
	out := make([]string, n)
	for i, a := range args {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("argument %d is %T, not string", i, a)
		}
		out[i] = s
	}
	return out, nil
}

type idIndexer struct{}

func (idIndexer) FromObject(raw any) (bool, []byte, error) {
	return true, key(raw.(*api.Object).GetId()), nil
}

func (idIndexer) FromArgs(args ...any) ([]byte, error) {
	s, err := stringArgs(1, args)
	if err != nil {
		return nil, err
	}
	return key(s[0]), nil
}

type kindNameIndexer struct{}

func (kindNameIndexer) FromObject(raw any) (bool, []byte, error) {
	o := raw.(*api.Object)
	return true, key(o.GetKind(), o.GetName()), nil
}

func (kindNameIndexer) FromArgs(args ...any) ([]byte, error) {
	s, err := stringArgs(2, args)
	if err != nil {
		return nil, err
	}
	return key(s[0], s[1]), nil
}

// PrefixFromArgs takes a kind and a name prefix (maybe empty); the name
// prefix is left open. With no kind it scans all kinds.
func (kindNameIndexer) PrefixFromArgs(args ...any) ([]byte, error) {
	s, err := stringArgs(2, args)
	if err != nil {
		return nil, err
	}
	if s[0] == "" {
		return nil, nil
	}
	return append(key(s[0]), s[1]...), nil
}

type labelIndexer struct{}

func (labelIndexer) FromObject(raw any) (bool, [][]byte, error) {
	o := raw.(*api.Object)
	if len(o.GetLabels()) == 0 {
		return false, nil, nil
	}
	vals := make([][]byte, 0, len(o.GetLabels()))
	for k, v := range o.GetLabels() {
		vals = append(vals, key(o.GetKind(), k, v))
	}
	return true, vals, nil
}

// FromArgs takes kind, label key, label value.
func (labelIndexer) FromArgs(args ...any) ([]byte, error) {
	s, err := stringArgs(3, args)
	if err != nil {
		return nil, err
	}
	return key(s[0], s[1], s[2]), nil
}

type metaIndexer struct{}

// There is one meta row; its key is fixed.
func (metaIndexer) FromObject(any) (bool, []byte, error) { return true, []byte("applied\x00"), nil }
func (metaIndexer) FromArgs(...any) ([]byte, error)      { return []byte("applied\x00"), nil }

// appliedIndex reads the index of the last applied entry.
func appliedIndex(txn *memdb.Txn) uint64 {
	row, err := txn.First(tableMeta, indexID)
	if err != nil || row == nil {
		return 0
	}
	return row.(*metaRow).index
}

func setAppliedIndex(txn *memdb.Txn, index uint64) error {
	return txn.Insert(tableMeta, &metaRow{index: index})
}
