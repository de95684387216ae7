package robustness

import (
	"strings"
	"testing"
)

func ev(typ OpKind, version uint64, key, value string, objVersion uint64) WatchEvent {
	return WatchEvent{Type: typ, Version: version, Key: key, Value: value, ObjectVersion: objVersion}
}

func TestCheckWatches(t *testing.T) {
	ops := []Op{
		{Input: Input{Kind: OpCreate, Key: "a", Value: "a1"}, Output: ok(5)},
		{Input: Input{Kind: OpUpdate, Key: "a", Value: "a2"}, Output: ok(7)},
		{Input: Input{Kind: OpCreate, Key: "b", Value: "b1"}, Output: Output{Status: StatusUnknown}},
		{Input: Input{Kind: OpDelete, Key: "a"}, Output: ok(9)},
		{Input: Input{Kind: OpUpdate, Key: "b", Value: "b2"}, Output: Output{Status: StatusConflict}},
	}
	good := []WatchEvent{
		ev(OpCreate, 5, "a", "a1", 5),
		ev(OpUpdate, 7, "a", "a2", 7),
		ev(OpCreate, 8, "b", "b1", 8),
		ev(OpDelete, 9, "a", "a2", 7),
	}
	tests := []struct {
		name     string
		segments []WatchSegment
		want     string // a word of the expected problem; "" for none
	}{
		{"complete", []WatchSegment{{Watcher: 0, Start: 1, Events: good}, {Watcher: 1, Start: 6, Events: good[1:]}}, ""},
		{"duplicate", []WatchSegment{{Watcher: 0, Start: 1, Events: append(append([]WatchEvent{}, good[:2]...), good[1:]...)}}, "duplicate"},
		{"out of order", []WatchSegment{{Watcher: 0, Start: 1, Events: []WatchEvent{good[1], good[0], good[2], good[3]}}}, "out of order"},
		{"gap in one watcher", []WatchSegment{
			{Watcher: 0, Start: 1, Events: good},
			{Watcher: 1, Start: 1, Events: []WatchEvent{good[0], good[1], good[3]}},
		}, "gap"},
		{"acknowledged write missing everywhere", []WatchSegment{{Watcher: 0, Start: 1, Events: []WatchEvent{good[0], good[2], good[3]}}}, "missing"},
		{"watchers disagree", []WatchSegment{
			{Watcher: 0, Start: 1, Events: good},
			{Watcher: 1, Start: 1, Events: []WatchEvent{good[0], good[1], ev(OpCreate, 8, "b", "bX", 8), good[3]}},
		}, "another watcher"},
		{"refused write took effect", []WatchSegment{{Watcher: 0, Start: 1, Events: append(append([]WatchEvent{}, good...), ev(OpUpdate, 10, "b", "b2", 10))}}, "was told conflict"},
		{"value nobody wrote", []WatchSegment{{Watcher: 0, Start: 1, Events: append(append([]WatchEvent{}, good...), ev(OpUpdate, 10, "b", "zz", 10))}}, "no client wrote"},
		{"delete of a value that is not there", []WatchSegment{{Watcher: 0, Start: 1, Events: []WatchEvent{good[0], good[1], good[2], ev(OpDelete, 9, "a", "a1", 5)}}}, "previous change"},
		{"wrong object version", []WatchSegment{{Watcher: 0, Start: 1, Events: []WatchEvent{good[0], ev(OpUpdate, 7, "a", "a2", 6), good[2], good[3]}}}, "object version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := CheckWatches(tt.segments, ops)
			if tt.want == "" {
				if len(r.Problems) > 0 {
					t.Fatalf("problems in a good stream: %v", r.Problems)
				}
				if r.AckedWrites != 3 || r.Uncovered != 0 || r.Events != 4 {
					t.Fatalf("report %+v", r)
				}
				return
			}
			if !strings.Contains(strings.Join(r.Problems, "\n"), tt.want) {
				t.Fatalf("problems %q, want one about %q", r.Problems, tt.want)
			}
		})
	}
}

func TestCheckWatchesAgainstReads(t *testing.T) {
	ops := []Op{
		{Input: Input{Kind: OpCreate, Key: "a", Value: "a1"}, Output: ok(5)},
		{Input: Input{Kind: OpGet, Key: "a"}, Output: read("a1", 5)},
		{Input: Input{Kind: OpUpdate, Key: "a", Value: "a2"}, Output: Output{Status: StatusUnknown}},
		{Input: Input{Kind: OpGet, Key: "a"}, Output: read("a2", 6)},
	}
	segs := []WatchSegment{{Start: 1, Events: []WatchEvent{ev(OpCreate, 5, "a", "a1", 5), ev(OpUpdate, 7, "a", "a3", 7)}}}
	r := CheckWatches(segs, ops)
	if got := strings.Join(r.Problems, "\n"); !strings.Contains(got, "missing from the watches") {
		t.Fatalf("problems %q, want the read at 6 reported missing", got)
	}
}

func TestResolveUnknown(t *testing.T) {
	ops := []Op{
		{Input: Input{Kind: OpCreate, Key: "a", Value: "a1"}, Output: ok(5), Call: 0, Return: 1},
		{Input: Input{Kind: OpUpdate, Key: "a", Value: "a2"}, Output: Output{Status: StatusUnknown}, Call: 2, Return: 3},
		{Input: Input{Kind: OpUpdate, Key: "a", Value: "a3"}, Output: Output{Status: StatusUnknown}, Call: 4, Return: 5},
		{Input: Input{Kind: OpUpdate, Key: "a", Value: "a4"}, Output: Output{Status: StatusUnknown}, Call: 6, Return: 7},
		{Input: Input{Kind: OpGet, Key: "a"}, Output: read("a4", 12), Call: 8, Return: 9},
		{Input: Input{Kind: OpDelete, Key: "a"}, Output: Output{Status: StatusUnknown}, Call: 10, Return: 11},
	}
	segs := []WatchSegment{{Start: 1, Events: []WatchEvent{ev(OpCreate, 5, "a", "a1", 5), ev(OpUpdate, 9, "a", "a2", 9)}}}
	out, resolved, dropped := ResolveUnknown(ops, segs)
	// a2 was seen at 9; a3 was never seen; a4 was read, so it stays; the
	// delete came after the last version acknowledged, 5, and no deletion
	// was seen after that.
	if resolved != 1 || dropped != 2 || len(out) != 4 {
		t.Fatalf("resolved %d, dropped %d, %d left: %+v", resolved, dropped, len(out), out)
	}
	if out[1].Output != ok(9) || out[1].Return != unknownReturn {
		t.Fatalf("the seen update became %+v", out[1])
	}
	if out[2].Input.Value != "a4" || out[2].Output.Status != StatusUnknown {
		t.Fatalf("an update another read saw must stay unknown: %+v", out[2])
	}
	// With a hole in the watches' ranges nothing is dropped.
	segs = []WatchSegment{{Start: 1, Events: []WatchEvent{ev(OpCreate, 5, "a", "a1", 5)}}, {Start: 7, Events: []WatchEvent{ev(OpUpdate, 9, "a", "a2", 9)}}}
	if _, _, dropped := ResolveUnknown(ops, segs); dropped != 0 {
		t.Fatalf("dropped %d with a hole in the watches", dropped)
	}
}

func TestResolveUnknownDeletes(t *testing.T) {
	ops := []Op{
		{Input: Input{Kind: OpCreate, Key: "a", Value: "a1"}, Output: ok(5), Call: 0, Return: 10},
		{Input: Input{Kind: OpDelete, Key: "a"}, Output: Output{Status: StatusUnknown}, Call: 20, Return: 30},
		{Input: Input{Kind: OpUpdate, Key: "a", Value: "a2"}, Output: ok(8), Call: 40, Return: 50},
		{Input: Input{Kind: OpDelete, Key: "a"}, Output: Output{Status: StatusUnknown}, Call: 60, Return: 70},
	}
	// Only a deletion at 4 was seen, below the version 5 acknowledged
	// before the first delete was called: neither took effect.
	segs := []WatchSegment{{Start: 1, Events: []WatchEvent{ev(OpCreate, 3, "a", "a0", 3), ev(OpDelete, 4, "a", "a0", 3), ev(OpCreate, 5, "a", "a1", 5), ev(OpUpdate, 8, "a", "a2", 8)}}}
	if _, _, dropped := ResolveUnknown(ops, segs); dropped != 2 {
		t.Fatalf("dropped %d deletes, want 2", dropped)
	}
	// A deletion at 9 may be either.
	segs[0].Events = append(segs[0].Events, ev(OpDelete, 9, "a", "a2", 8))
	if _, _, dropped := ResolveUnknown(ops, segs); dropped != 0 {
		t.Fatalf("dropped %d deletes, want none", dropped)
	}
}
