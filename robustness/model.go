package robustness

import (
	"fmt"
	"hash/fnv"
	"sort"

	"github.com/anishathalye/porcupine"
)

// OpKind is what an operation does to one object.
type OpKind uint8

// The operations of the workload.
const (
	OpCreate OpKind = iota + 1
	OpGet
	OpUpdate
	OpDelete
)

func (k OpKind) String() string {
	switch k {
	case OpCreate:
		return "create"
	case OpGet:
		return "get"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	}
	return fmt.Sprintf("OpKind(%d)", k)
}

// Input is an operation as called: on the object named Key, with the
// Value (unique in a run) for a create or update, and the Expected version
// for an update or delete (0: none).
type Input struct {
	Kind     OpKind
	Key      string
	Value    string
	Expected uint64
}

// Status is how an operation ended.
type Status uint8

// Statuses. Only StatusOK and the definite failures (NotFound, Exists,
// Conflict) say what happened; Unknown is a write whose outcome the
// client could not learn (a timeout, a lost connection, lost leadership):
// it may or may not have taken effect. Failed is a read that got no
// answer; it says nothing and is left out of the check.
const (
	StatusOK Status = iota + 1
	StatusNotFound
	StatusExists
	StatusConflict
	StatusUnknown
	StatusFailed
)

func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusNotFound:
		return "not-found"
	case StatusExists:
		return "exists"
	case StatusConflict:
		return "conflict"
	case StatusUnknown:
		return "unknown"
	case StatusFailed:
		return "failed"
	}
	return fmt.Sprintf("Status(%d)", s)
}

// Output is what an operation returned: for StatusOK, the value read (a
// get) and the version of the object read or written (for a delete, the
// version of the deletion).
type Output struct {
	Status  Status
	Value   string
	Version uint64
}

// State is the model's state of one object.
//
// Versions are Raft indexes chosen by the system, so the model takes the
// version an operation returns as the new one, provided versions only grow
// per object. A write whose outcome is unknown may have taken effect with
// a version nobody saw: then Exact is false and Version is a floor, the
// real version being above it. The first read or write that reports the
// version makes it exact again. For an absent object, Version is the
// floor the version of the next create must exceed (the deletion's
// version, or the last version known before it) and Exact is false.
type State struct {
	Exists  bool
	Value   string
	Version uint64
	Exact   bool
}

func (s State) String() string {
	if !s.Exists {
		return fmt.Sprintf("absent (next version > %d)", s.Version)
	}
	if s.Exact {
		return fmt.Sprintf("%s@%d", s.Value, s.Version)
	}
	return fmt.Sprintf("%s@>%d", s.Value, s.Version)
}

// absent is the state of a deleted or never created object whose next
// version must exceed floor.
func absent(floor uint64) State { return State{Version: floor} }

// Step returns every state the object may be in after op ran in state s
// and returned out; none if it could not have returned out.
//
// A definite failure (not found, exists, conflict) changes nothing, and
// says something about s: not found means absent, exists and conflict mean
// present. An unknown outcome gives two states: unchanged, and changed
// with a version above the old one.
func Step(s State, in Input, out Output) []State {
	switch in.Kind {
	case OpCreate:
		switch out.Status {
		case StatusOK:
			if s.Exists || out.Version <= s.Version {
				return nil
			}
			return []State{{Exists: true, Value: in.Value, Version: out.Version, Exact: true}}
		case StatusExists:
			if !s.Exists {
				return nil
			}
			return []State{s}
		case StatusUnknown:
			if s.Exists {
				return []State{s} // it failed: the name was taken
			}
			return []State{s, {Exists: true, Value: in.Value, Version: s.Version}}
		}
	case OpGet:
		switch out.Status {
		case StatusNotFound:
			if s.Exists {
				return nil
			}
			return []State{s}
		case StatusOK:
			if !s.Exists || s.Value != out.Value {
				return nil
			}
			if (s.Exact && out.Version != s.Version) || (!s.Exact && out.Version <= s.Version) {
				return nil
			}
			return []State{{Exists: true, Value: s.Value, Version: out.Version, Exact: true}}
		}
	case OpUpdate, OpDelete:
		// Whether the object's version may be the expected one, and the
		// floor of a version the change would get.
		mayMatch := in.Expected == 0 || (s.Exact && s.Version == in.Expected) || (!s.Exact && in.Expected > s.Version)
		floor := s.Version
		if in.Expected != 0 {
			floor = in.Expected
		}
		changed := func(version uint64, exact bool) State {
			if in.Kind == OpDelete {
				return absent(version)
			}
			return State{Exists: true, Value: in.Value, Version: version, Exact: exact}
		}
		switch out.Status {
		case StatusOK:
			if !s.Exists || !mayMatch || out.Version <= floor {
				return nil
			}
			return []State{changed(out.Version, true)}
		case StatusNotFound:
			if s.Exists {
				return nil
			}
			return []State{s}
		case StatusConflict:
			// The version check failed when the entry was applied, so
			// the object was there; with an expected version, it had
			// another one. (Without one, the manager expected the
			// version it had read and gave up after retries.)
			if !s.Exists || (in.Expected != 0 && s.Exact && s.Version == in.Expected) {
				return nil
			}
			return []State{s}
		case StatusUnknown:
			if !s.Exists || !mayMatch {
				return []State{s}
			}
			return []State{s, changed(floor, false)}
		}
	}
	return nil
}

// Model is the porcupine model of the object store: one independent
// object per key, so histories are partitioned by key.
var Model = porcupine.NondeterministicModel{
	Partition: partitionByKey,
	Init:      func() []any { return []any{absent(0)} },
	Step: func(state, input, output any) []any {
		next := Step(state.(State), input.(Input), output.(Output))
		out := make([]any, len(next))
		for i, s := range next {
			out[i] = s
		}
		return out
	},
	Equal: func(a, b any) bool { return a.(State) == b.(State) },
	Hash: func(state any) uint64 {
		s := state.(State)
		h := fnv.New64a()
		fmt.Fprintf(h, "%t|%s|%d|%t", s.Exists, s.Value, s.Version, s.Exact)
		return h.Sum64()
	},
	DescribeOperation: func(input, output any) string { return describe(input.(Input), output.(Output)) },
	DescribeState:     func(state any) string { return state.(State).String() },
}

func describe(in Input, out Output) string {
	var call string
	switch in.Kind {
	case OpCreate:
		call = fmt.Sprintf("create(%s, %s)", in.Key, in.Value)
	case OpGet:
		call = fmt.Sprintf("get(%s)", in.Key)
	case OpUpdate:
		call = fmt.Sprintf("update(%s, %s, if=%d)", in.Key, in.Value, in.Expected)
	case OpDelete:
		call = fmt.Sprintf("delete(%s, if=%d)", in.Key, in.Expected)
	}
	switch {
	case out.Status != StatusOK:
		return call + " -> " + out.Status.String()
	case in.Kind == OpGet:
		return fmt.Sprintf("%s -> %s@%d", call, out.Value, out.Version)
	default:
		return fmt.Sprintf("%s -> ok@%d", call, out.Version)
	}
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, op := range history {
		k := op.Input.(Input).Key
		byKey[k] = append(byKey[k], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

// MarshalText makes histories readable as JSON.
func (k OpKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// MarshalText makes histories readable as JSON.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads what MarshalText wrote, for saved histories.
func (k *OpKind) UnmarshalText(b []byte) error {
	for c := OpCreate; c <= OpDelete; c++ {
		if c.String() == string(b) {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("robustness: unknown operation %q", b)
}

// UnmarshalText reads what MarshalText wrote, for saved histories.
func (s *Status) UnmarshalText(b []byte) error {
	for c := StatusOK; c <= StatusFailed; c++ {
		if c.String() == string(b) {
			*s = c
			return nil
		}
	}
	return fmt.Errorf("robustness: unknown status %q", b)
}
