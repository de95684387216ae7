package store

import (
	"fmt"
	"maps"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/shoal-project/shoal/api"
)

// Built-in kinds. They describe the cluster itself; every other valid kind
// is a user kind. The store treats both alike: the difference matters to
// the packages above it.
const (
	KindNode    = "node"
	KindCluster = "cluster"
)

// IsBuiltinKind reports whether kind is one that the cluster itself uses.
func IsBuiltinKind(kind string) bool {
	return kind == KindNode || kind == KindCluster
}

// Naming rules. They are checked by hand rather than with regular
// expressions because Restore checks every object of a snapshot.
const (
	// MaxKindLen: a kind is 1-63 characters of [a-z0-9-] starting with a
	// letter (a DNS label, so it can appear in URLs and metric labels).
	MaxKindLen = 63
	// MaxNameLen: a name is 1-253 characters of [A-Za-z0-9._-] starting
	// with a letter or digit.
	MaxNameLen = 253
	// MaxIDLen: an id is 1-64 characters of [a-z0-9]. The store makes ids
	// of 26 characters (128 random bits in base 32).
	MaxIDLen = 64
	// MaxLabels is the most labels one object may carry.
	MaxLabels = 64
	// MaxLabelKeyLen: a label key is 1-128 characters of [A-Za-z0-9._/-]
	// starting with a letter or digit.
	MaxLabelKeyLen = 128
	// MaxLabelValueLen: a label value is 0-256 bytes of UTF-8 without
	// control characters.
	MaxLabelValueLen = 256
)

func isLower(c byte) bool { return 'a' <= c && c <= 'z' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlnum(c byte) bool { return isLower(c) || isDigit(c) || ('A' <= c && c <= 'Z') }

// ValidateKind checks a kind against the rules above.
func ValidateKind(kind string) error {
	if kind == "" || len(kind) > MaxKindLen || !isLower(kind[0]) {
		return fmt.Errorf("%w: kind %q must be 1-%d characters of [a-z0-9-] starting with a letter", ErrInvalid, kind, MaxKindLen)
	}
	for i := 1; i < len(kind); i++ {
		if c := kind[i]; !isLower(c) && !isDigit(c) && c != '-' {
			return fmt.Errorf("%w: kind %q must be 1-%d characters of [a-z0-9-] starting with a letter", ErrInvalid, kind, MaxKindLen)
		}
	}
	return nil
}

// ValidateName checks an object name against the rules above.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLen || !isAlnum(name[0]) {
		return fmt.Errorf("%w: name %q must be 1-%d characters of [A-Za-z0-9._-] starting with a letter or digit", ErrInvalid, name, MaxNameLen)
	}
	for i := 1; i < len(name); i++ {
		if c := name[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%w: name %q must be 1-%d characters of [A-Za-z0-9._-] starting with a letter or digit", ErrInvalid, name, MaxNameLen)
		}
	}
	return nil
}

// validateNamePrefix accepts what can begin a valid name, and "".
func validateNamePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	return ValidateName(prefix)
}

// ValidateID checks an object id against the rules above.
func ValidateID(id string) error {
	if id == "" || len(id) > MaxIDLen {
		return fmt.Errorf("%w: id %q must be 1-%d characters of [a-z0-9]", ErrInvalid, id, MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isLower(c) && !isDigit(c) {
			return fmt.Errorf("%w: id %q must be 1-%d characters of [a-z0-9]", ErrInvalid, id, MaxIDLen)
		}
	}
	return nil
}

// ValidateLabels checks a label set against the rules above.
func ValidateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fmt.Errorf("%w: %d labels, at most %d allowed", ErrInvalid, len(labels), MaxLabels)
	}
	for k, v := range labels {
		if validateLabel(k, v) != nil {
			// Report the first bad label in key order, so that every
			// manager rejecting an entry gives the same message.
			for _, k := range slices.Sorted(maps.Keys(labels)) {
				if err := validateLabel(k, labels[k]); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func validateLabel(k, v string) error {
	if err := validateLabelKey(k); err != nil {
		return err
	}
	return validateLabelValue(k, v)
}

func validateLabelKey(k string) error {
	if k == "" || len(k) > MaxLabelKeyLen || !isAlnum(k[0]) {
		return fmt.Errorf("%w: label key %q must be 1-%d characters of [A-Za-z0-9._/-] starting with a letter or digit", ErrInvalid, k, MaxLabelKeyLen)
	}
	for i := 1; i < len(k); i++ {
		if c := k[i]; !isAlnum(c) && c != '.' && c != '_' && c != '-' && c != '/' {
			return fmt.Errorf("%w: label key %q must be 1-%d characters of [A-Za-z0-9._/-] starting with a letter or digit", ErrInvalid, k, MaxLabelKeyLen)
		}
	}
	return nil
}

// validateLabelValue also keeps NUL out of values: the label index
// separates its fields with NUL.
func validateLabelValue(k, v string) error {
	if len(v) > MaxLabelValueLen {
		return fmt.Errorf("%w: value of label %q is %d bytes, at most %d allowed", ErrInvalid, k, len(v), MaxLabelValueLen)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: value of label %q is not UTF-8", ErrInvalid, k)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: value of label %q holds control character %U", ErrInvalid, k, r)
		}
	}
	return nil
}

// validateObject checks the fields every stored object must have valid.
// Sizes and timestamps are checked by the callers, whose limits differ.
func validateObject(o *api.Object) error {
	if err := ValidateKind(o.GetKind()); err != nil {
		return err
	}
	if err := ValidateID(o.GetId()); err != nil {
		return err
	}
	if err := ValidateName(o.GetName()); err != nil {
		return err
	}
	return ValidateLabels(o.GetLabels())
}

// validateTimes checks that the timestamps a stored object needs are set
// and representable.
func validateTimes(o *api.Object) error {
	if err := o.GetCreatedAt().CheckValid(); err != nil {
		return fmt.Errorf("%w: created_at: %v", ErrInvalid, err)
	}
	if err := o.GetUpdatedAt().CheckValid(); err != nil {
		return fmt.Errorf("%w: updated_at: %v", ErrInvalid, err)
	}
	return nil
}
