package robustness

import (
	"fmt"
	"sort"
)

// WatchEvent is one change a watcher received.
type WatchEvent struct {
	Type    OpKind `json:"type"` // OpCreate, OpUpdate or OpDelete
	Version uint64 `json:"version"`
	Key     string `json:"key"`
	// Value is the object's value after a create or update, before a
	// delete; ObjectVersion is the version the object carries (for a
	// delete, that of its last change).
	Value         string `json:"value"`
	ObjectVersion uint64 `json:"object_version"`
}

// WatchSegment is a stretch of one watcher's stream that must hold every
// change after Start, in version order, once each: the first watch, and
// its resumptions from the last version received, on any manager. A new
// segment begins only when no manager could resume it (its history was
// compacted).
type WatchSegment struct {
	Watcher int          `json:"watcher"`
	Start   uint64       `json:"start"`
	Events  []WatchEvent `json:"events"`
	// Resumes lists where the segment was resumed: "manager@version".
	Resumes []string `json:"resumes,omitempty"`
}

// Last returns the version of the last event received, or Start.
func (s *WatchSegment) Last() uint64 {
	if len(s.Events) == 0 {
		return s.Start
	}
	return s.Events[len(s.Events)-1].Version
}

// WatchReport is what CheckWatches found.
type WatchReport struct {
	Problems []string
	// Events is the number of distinct changes seen by any watcher.
	Events int
	// AckedWrites are the writes acknowledged to a client; Uncovered the
	// ones no segment's range includes, which the watches cannot vouch
	// for.
	AckedWrites, Uncovered int
}

func (r *WatchReport) problem(format string, args ...any) {
	if len(r.Problems) < 50 {
		r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
	} else if len(r.Problems) == 50 {
		r.Problems = append(r.Problems, "(more problems left out)")
	}
}

// CheckWatches checks the watch segments against each other and against
// the history of operations on the watched keys:
//
//   - within a segment, versions strictly grow and start after Start: no
//     duplicate, no reordering;
//   - an event's object carries the event's version (a delete's, an older
//     one);
//   - within a segment, each object's changes follow each other (create,
//     then updates, then a delete; a delete or update carries the value
//     the previous change left);
//   - every watcher that saw a version saw the same change there;
//   - no gap: every change any watcher saw, and every acknowledged write,
//     is in every segment whose range includes its version;
//   - every acknowledged write shows with its version, key and value, and
//     every change comes from a write that was called and not refused.
func CheckWatches(segments []WatchSegment, ops []Op) WatchReport {
	var r WatchReport
	type source struct {
		op       Op
		definite bool // refused for sure: it must never show
	}
	byValue := map[string]source{}
	var acked []Op
	for _, op := range ops {
		in := op.Input
		if in.Kind == OpCreate || in.Kind == OpUpdate {
			byValue[in.Value] = source{op: op, definite: op.Output.Status != StatusOK && op.Output.Status != StatusUnknown}
		}
		if in.Kind != OpGet && op.Output.Status == StatusOK {
			acked = append(acked, op)
		}
	}

	union := map[uint64]WatchEvent{}
	for _, seg := range segments {
		last := seg.Start
		state := map[string]*WatchEvent{} // the last change of each key in this segment
		for i := range seg.Events {
			ev := seg.Events[i]
			if ev.Version <= last {
				r.problem("watcher %d: version %d after %d (duplicate or out of order)", seg.Watcher, ev.Version, last)
			}
			last = max(last, ev.Version)
			switch {
			case ev.Type != OpDelete && ev.ObjectVersion != ev.Version:
				r.problem("watcher %d: %s of %s at version %d carries object version %d", seg.Watcher, ev.Type, ev.Key, ev.Version, ev.ObjectVersion)
			case ev.Type == OpDelete && ev.ObjectVersion >= ev.Version:
				r.problem("watcher %d: delete of %s at version %d carries object version %d", seg.Watcher, ev.Key, ev.Version, ev.ObjectVersion)
			}
			if prev := state[ev.Key]; prev != nil {
				switch {
				case ev.Type == OpCreate && prev.Type != OpDelete:
					r.problem("watcher %d: create of %s at %d while it exists since %d", seg.Watcher, ev.Key, ev.Version, prev.Version)
				case ev.Type != OpCreate && prev.Type == OpDelete:
					r.problem("watcher %d: %s of %s at %d after its delete at %d", seg.Watcher, ev.Type, ev.Key, ev.Version, prev.Version)
				case ev.Type == OpDelete && (ev.Value != prev.Value || ev.ObjectVersion != prev.Version):
					r.problem("watcher %d: delete of %s at %d removes %s@%d, the previous change left %s@%d",
						seg.Watcher, ev.Key, ev.Version, ev.Value, ev.ObjectVersion, prev.Value, prev.Version)
				}
			}
			state[ev.Key] = &seg.Events[i]
			if seen, ok := union[ev.Version]; ok && seen != ev {
				r.problem("version %d: watcher %d saw %+v, another watcher %+v", ev.Version, seg.Watcher, ev, seen)
			}
			union[ev.Version] = ev
		}
	}
	r.Events = len(union)

	// Every change came from a write that was called and not refused.
	for _, ev := range union {
		if ev.Type == OpDelete {
			continue
		}
		src, ok := byValue[ev.Value]
		switch {
		case !ok:
			r.problem("version %d: %s of %s to %q, a value no client wrote", ev.Version, ev.Type, ev.Key, ev.Value)
		case src.op.Input.Key != ev.Key || src.op.Input.Kind != ev.Type:
			r.problem("version %d: %s of %s to %q, but %q was written by %s of %s", ev.Version, ev.Type, ev.Key, ev.Value, ev.Value, src.op.Input.Kind, src.op.Input.Key)
		case src.definite:
			r.problem("version %d: %s of %s to %q took effect, but the client was told %s", ev.Version, ev.Type, ev.Key, ev.Value, src.op.Output.Status)
		}
	}

	// Every acknowledged write shows where the watches cover it.
	known := map[uint64]WatchEvent{}
	for v, ev := range union {
		known[v] = ev
	}
	r.AckedWrites = len(acked)
	for _, op := range acked {
		v := op.Output.Version
		covered := covers(segments, v)
		if !covered {
			r.Uncovered++
		}
		ev, ok := union[v]
		if !ok {
			if covered {
				r.problem("acknowledged %s of %s (%q) at version %d is missing from the watches", op.Input.Kind, op.Input.Key, op.Input.Value, v)
			}
			known[v] = WatchEvent{Type: op.Input.Kind, Version: v, Key: op.Input.Key, Value: op.Input.Value}
			continue
		}
		if ev.Type != op.Input.Kind || ev.Key != op.Input.Key || (op.Input.Kind != OpDelete && ev.Value != op.Input.Value) {
			r.problem("acknowledged %s of %s (%q) at version %d, but the watches saw %s of %s (%q) there",
				op.Input.Kind, op.Input.Key, op.Input.Value, v, ev.Type, ev.Key, ev.Value)
		}
	}

	// A value read at a version in a watched range must be the change
	// the watches saw there.
	for _, op := range ops {
		if op.Input.Kind != OpGet || op.Output.Status != StatusOK {
			continue
		}
		v := op.Output.Version
		ev, ok := union[v]
		switch {
		case ok && (ev.Type == OpDelete || ev.Key != op.Input.Key || ev.Value != op.Output.Value):
			r.problem("a read of %s returned %q at version %d, but the watches saw %s of %s (%q) there",
				op.Input.Key, op.Output.Value, v, ev.Type, ev.Key, ev.Value)
		case !ok && covers(segments, v):
			r.problem("a read of %s returned %q at version %d, a change missing from the watches", op.Input.Key, op.Output.Value, v)
		}
	}

	// No gaps: each segment holds every known change in its range.
	versions := make([]uint64, 0, len(known))
	for v := range known {
		versions = append(versions, v)
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	for _, seg := range segments {
		have := map[uint64]bool{}
		for _, ev := range seg.Events {
			have[ev.Version] = true
		}
		lo, hi := seg.Start, seg.Last()
		i := sort.Search(len(versions), func(i int) bool { return versions[i] > lo })
		for ; i < len(versions) && versions[i] <= hi; i++ {
			if v := versions[i]; !have[v] {
				ev := known[v]
				r.problem("watcher %d: gap: no %s of %s at version %d (its segment covers %d..%d, resumed %v)",
					seg.Watcher, ev.Type, ev.Key, v, lo+1, hi, seg.Resumes)
			}
		}
	}
	return r
}

// ResolveUnknown uses the watches to settle writes whose outcome the
// client never learnt, which makes the linearizability check much
// cheaper: a create or update of unknown outcome whose (unique) value
// shows in the watches did take effect, at that version; one whose value
// does not show, neither in the watches (when their segments together
// cover every version from the first write on) nor in any read, never
// took effect and is dropped. The return time stays unknown either way.
// A delete of unknown outcome carries no value of its own; it is dropped
// when the watches saw no deletion of its key with a version above every
// version acknowledged before it was called (whatever is proposed after
// the call gets a higher Raft index), and stays unknown otherwise.
//
// Use it only on watches that CheckWatches found sound. It never turns a
// linearizable history into a non-linearizable one unless the watches and
// the reads disagree, which is a bug either way.
func ResolveUnknown(ops []Op, segments []WatchSegment) (out []Op, resolved, dropped int) {
	seen := map[string]uint64{}
	lastDelete := map[string]uint64{} // the version of each key's last deletion seen
	for _, seg := range segments {
		for _, ev := range seg.Events {
			if ev.Type != OpDelete {
				seen[ev.Key+"\x00"+ev.Value] = ev.Version
			} else {
				lastDelete[ev.Key] = max(lastDelete[ev.Key], ev.Version)
			}
		}
	}
	floors := versionFloors(ops)
	read := map[string]bool{} // values some read returned
	for _, op := range ops {
		if op.Input.Kind == OpGet && op.Output.Status == StatusOK {
			read[op.Input.Key+"\x00"+op.Output.Value] = true
		}
	}
	full := watchesCoverFromFirstWrite(ops, segments)
	out = make([]Op, 0, len(ops))
	for _, op := range ops {
		in := op.Input
		if op.Output.Status == StatusUnknown && (in.Kind == OpCreate || in.Kind == OpUpdate) {
			if v, ok := seen[in.Key+"\x00"+in.Value]; ok {
				op.Output = Output{Status: StatusOK, Version: v}
				op.Return = unknownReturn
				resolved++
			} else if full && !read[in.Key+"\x00"+in.Value] {
				dropped++
				continue
			}
		}
		if op.Output.Status == StatusUnknown && in.Kind == OpDelete && full && lastDelete[in.Key] <= floors(op.Call) {
			// No deletion of the key came after the op was called.
			dropped++
			continue
		}
		out = append(out, op)
	}
	return out, resolved, dropped
}

// unknownReturn marks an operation that took effect but whose caller got
// no answer: it returns, for the checker, after everything else.
const unknownReturn = int64(1) << 62

// watchesCoverFromFirstWrite reports whether the segments' ranges leave no
// version uncovered from before the first write to the last event seen.
func watchesCoverFromFirstWrite(ops []Op, segments []WatchSegment) bool {
	if len(segments) == 0 {
		return false
	}
	type span struct{ lo, hi uint64 } // versions lo+1..hi
	spans := make([]span, 0, len(segments))
	for i := range segments {
		spans = append(spans, span{segments[i].Start, segments[i].Last()})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	// The first write's version is above the first segment's start only
	// if that segment began before any write: the oldest acknowledged or
	// seen version tells.
	var first uint64
	for _, op := range ops {
		if op.Input.Kind != OpGet && op.Output.Status == StatusOK && (first == 0 || op.Output.Version < first) {
			first = op.Output.Version
		}
	}
	if first == 0 || spans[0].lo >= first {
		return false
	}
	covered := spans[0].hi
	for _, s := range spans[1:] {
		if s.lo > covered {
			return false
		}
		covered = max(covered, s.hi)
	}
	return true
}

// covers reports whether some segment's range includes version v.
func covers(segments []WatchSegment, v uint64) bool {
	for i := range segments {
		if v > segments[i].Start && v <= segments[i].Last() {
			return true
		}
	}
	return false
}

// versionFloors returns a function giving, for a time, the highest
// version any operation had returned by then: an entry proposed later
// gets a higher Raft index.
func versionFloors(ops []Op) func(at int64) uint64 {
	type point struct {
		at      int64
		version uint64
	}
	var points []point
	for _, op := range ops {
		if op.Output.Status == StatusOK && op.Output.Version > 0 && op.Return < unknownReturn {
			points = append(points, point{op.Return, op.Output.Version})
		}
	}
	sort.Slice(points, func(i, j int) bool { return points[i].at < points[j].at })
	for i := 1; i < len(points); i++ {
		points[i].version = max(points[i].version, points[i-1].version)
	}
	return func(at int64) uint64 {
		i := sort.Search(len(points), func(i int) bool { return points[i].at >= at })
		if i == 0 {
			return 0
		}
		return points[i-1].version
	}
}
