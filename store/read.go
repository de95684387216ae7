package store

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/go-memdb"

	"github.com/shoal-project/shoal/api"
)

// ReadTx reads one consistent state of the store. It is valid only inside
// the function it was passed to, and from that function's goroutine. The
// objects it returns are shared with the store and with other readers:
// they must not be modified (clone them with proto.Clone first).
type ReadTx interface {
	// Version is the Raft index of the last entry applied (or snapshot
	// restored) in the state this transaction reads.
	Version() uint64
	// Get returns the object with id, or an error wrapping ErrNotFound.
	Get(id string) (*api.Object, error)
	// GetByName returns the object of kind named name, or an error
	// wrapping ErrNotFound.
	GetByName(kind, name string) (*api.Object, error)
	// List returns the objects sel matches, sorted by kind then name. It
	// fails with ErrInvalid if sel is not valid.
	List(sel Selector) ([]*api.Object, error)
}

// Selector chooses objects by kind, name prefix and labels; the zero
// Selector chooses every object.
type Selector struct {
	// Kind, if set, is the only kind chosen.
	Kind string
	// NamePrefix, if set, is how chosen names begin. It needs Kind.
	NamePrefix string
	// Labels, if set, must all be present on a chosen object with these
	// exact values.
	Labels map[string]string
}

// Validate reports an invalid selector with ErrInvalid.
func (sel Selector) Validate() error {
	if sel.Kind != "" {
		if err := ValidateKind(sel.Kind); err != nil {
			return err
		}
	} else if sel.NamePrefix != "" {
		return fmt.Errorf("%w: selector: a name prefix needs a kind", ErrInvalid)
	}
	if err := validateNamePrefix(sel.NamePrefix); err != nil {
		return err
	}
	return ValidateLabels(sel.Labels)
}

// Matches reports whether sel chooses o.
func (sel Selector) Matches(o *api.Object) bool {
	if sel.Kind != "" && o.GetKind() != sel.Kind {
		return false
	}
	if !strings.HasPrefix(o.GetName(), sel.NamePrefix) {
		return false
	}
	for k, v := range sel.Labels {
		if got, ok := o.GetLabels()[k]; !ok || got != v {
			return false
		}
	}
	return true
}

type readTx struct {
	txn *memdb.Txn
}

func (tx *readTx) Version() uint64 { return appliedIndex(tx.txn) }

func (tx *readTx) Get(id string) (*api.Object, error) {
	raw, err := tx.txn.First(tableObjects, indexID, id)
	if err != nil {
		return nil, fmt.Errorf("store: id index: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: id %q", ErrNotFound, id)
	}
	return raw.(*api.Object), nil
}

func (tx *readTx) GetByName(kind, name string) (*api.Object, error) {
	raw, err := tx.txn.First(tableObjects, indexKindName, kind, name)
	if err != nil {
		return nil, fmt.Errorf("store: kind_name index: %w", err)
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: %s %q", ErrNotFound, kind, name)
	}
	return raw.(*api.Object), nil
}

func (tx *readTx) List(sel Selector) ([]*api.Object, error) {
	if err := sel.Validate(); err != nil {
		return nil, err
	}
	// With a kind and a label but no name prefix, the label index is the
	// narrower scan; its order (by id) is then fixed up by sorting.
	if sel.Kind != "" && sel.NamePrefix == "" && len(sel.Labels) > 0 {
		k := minKey(sel.Labels)
		it, err := tx.txn.Get(tableObjects, indexLabel, sel.Kind, k, sel.Labels[k])
		if err != nil {
			return nil, fmt.Errorf("store: label index: %w", err)
		}
		out := collect(it, sel)
		slices.SortFunc(out, func(a, b *api.Object) int { return strings.Compare(a.GetName(), b.GetName()) })
		return out, nil
	}
	it, err := tx.txn.Get(tableObjects, indexKindName+"_prefix", sel.Kind, sel.NamePrefix)
	if err != nil {
		return nil, fmt.Errorf("store: kind_name index: %w", err)
	}
	return collect(it, sel), nil
}

func collect(it memdb.ResultIterator, sel Selector) []*api.Object {
	var out []*api.Object
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if o := raw.(*api.Object); sel.Matches(o) {
			out = append(out, o)
		}
	}
	return out
}

// minKey picks a label key deterministically.
func minKey(m map[string]string) string {
	first := true
	var k string
	for key := range m {
		if first || key < k {
			k, first = key, false
		}
	}
	return k
}
