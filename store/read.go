package store

import (
	"fmt"
	"slices"
	"strings"

	"github.com/shoal-project/shoal/api"
)

// ReadTx reads one consistent state of the store. It is valid only inside
// the function it was passed to, and from that function's goroutine. Each
// object it returns is decoded for that call and belongs to the caller,
// who may modify it.
type ReadTx interface {
	// Version is the Raft index of the last entry applied (or snapshot
	// restored) in the state this transaction reads.
	Version() uint64
	// Get returns the object with id, or an error wrapping ErrNotFound.
	Get(id string) (*api.Object, error)
	// GetByName returns the object of kind named name, or an error
	// wrapping ErrNotFound.
	GetByName(kind, name string) (*api.Object, error)
	// VersionByName returns the version of the object of kind named name
	// without decoding it, or an error wrapping ErrNotFound: a cheap check
	// of whether something derived from the object is still current.
	VersionByName(kind, name string) (uint64, error)
	// List returns the objects sel matches, sorted by kind then name. It
	// fails with ErrInvalid if sel is not valid.
	List(sel Selector) ([]*api.Object, error)
	// Each calls fn with the objects sel matches, in List's order, until
	// fn returns false, decoding one object at a time: a list of any
	// length without holding it. It fails with ErrInvalid if sel is not
	// valid.
	Each(sel Selector, fn func(*api.Object) bool) error
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
	st *state
}

func (tx *readTx) Version() uint64 { return tx.st.index }

func (tx *readTx) Get(id string) (*api.Object, error) {
	e, ok := tx.st.getID(id)
	if !ok {
		return nil, fmt.Errorf("%w: id %q", ErrNotFound, id)
	}
	return decode(e.blob), nil
}

func (tx *readTx) GetByName(kind, name string) (*api.Object, error) {
	blob, ok := tx.st.lookupName(kind, name)
	if !ok {
		return nil, fmt.Errorf("%w: %s %q", ErrNotFound, kind, name)
	}
	return decode(blob), nil
}

func (tx *readTx) VersionByName(kind, name string) (uint64, error) {
	blob, ok := tx.st.lookupName(kind, name)
	if !ok {
		return 0, fmt.Errorf("%w: %s %q", ErrNotFound, kind, name)
	}
	return blobVersion(blob), nil
}

func (tx *readTx) List(sel Selector) ([]*api.Object, error) {
	var out []*api.Object
	err := tx.Each(sel, func(o *api.Object) bool {
		out = append(out, o)
		return true
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (tx *readTx) Each(sel Selector, fn func(*api.Object) bool) error {
	if err := sel.Validate(); err != nil {
		return err
	}
	// With a kind and a label but no name prefix, the label index is the
	// narrower scan; its order (by id) is then fixed up by sorting the
	// objects it matched, which are held for that.
	if sel.Kind != "" && sel.NamePrefix == "" && len(sel.Labels) > 0 {
		var out []*api.Object
		k := minKey(sel.Labels)
		from := byLabel{kind: sel.Kind, key: k, value: sel.Labels[k]}
		tx.st.labels.AscendGreaterOrEqual(from, func(l byLabel) bool {
			if l.kind != from.kind || l.key != from.key || l.value != from.value {
				return false
			}
			if e, ok := tx.st.getID(l.id); ok {
				if o := decode(e.blob); sel.Matches(o) {
					out = append(out, o)
				}
			}
			return true
		})
		slices.SortFunc(out, func(a, b *api.Object) int { return strings.Compare(a.GetName(), b.GetName()) })
		for _, o := range out {
			if !fn(o) {
				break
			}
		}
		return nil
	}
	visit := func(e byName) bool {
		if sel.Kind != "" && (e.kind() != sel.Kind || !strings.HasPrefix(e.name(), sel.NamePrefix)) {
			return false
		}
		if o := decode(e.blob); sel.Matches(o) {
			return fn(o)
		}
		return true
	}
	if sel.Kind == "" {
		tx.st.names.Ascend(visit)
	} else { // sel.Validate checked the lengths nameKey needs
		tx.st.names.AscendGreaterOrEqual(nameKey(sel.Kind, sel.NamePrefix), visit)
	}
	return nil
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
