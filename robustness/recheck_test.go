package robustness

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var flagRecheck = flag.String("recheck", "", "directory of a failed run's artifacts to check again (TestRecheck)")

// TestRecheck checks a saved run again, key by key, and shows the
// operations where the longest linearization of each failing key stops:
//
//	go test ./robustness/ -run Recheck -args -recheck /tmp/shoal-robustness/seed-...
func TestRecheck(t *testing.T) {
	if *flagRecheck == "" {
		t.Skip("give -recheck DIR, the artifacts of a run")
	}
	var ops []Op
	var segments []WatchSegment
	for name, v := range map[string]any{"history.json": &ops, "watches.json": &segments} {
		b, err := os.ReadFile(filepath.Join(*flagRecheck, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	wr := CheckWatches(segments, ops)
	for _, p := range wr.Problems {
		t.Errorf("watch: %s", p)
	}
	if len(wr.Problems) == 0 {
		var resolved, dropped int
		ops, resolved, dropped = ResolveUnknown(ops, segments)
		t.Logf("%d writes of unknown outcome settled by the watches, %d dropped", resolved, dropped)
	}
	byKey := map[string][]Op{}
	for _, op := range ops {
		byKey[op.Input.Key] = append(byKey[op.Input.Key], op)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	model := Model.ToModel()
	for _, k := range keys {
		res, info := porcupine.CheckOperationsVerbose(model, Porcupine(byKey[k]), time.Minute)
		t.Logf("key %s: %d operations, %s", k, len(byKey[k]), res)
		if res != porcupine.Illegal {
			continue
		}
		t.Errorf("key %s is not linearizable", k)
		var longest []porcupine.Operation
		for _, partial := range info.PartialLinearizationsOperations() {
			for _, lin := range partial {
				if len(lin) > len(longest) {
					longest = lin
				}
			}
		}
		t.Logf("the longest linearization (%d operations) ends with:", len(longest))
		for _, op := range longest[max(0, len(longest)-5):] {
			t.Logf("  [%.3fs, %.3fs] %s on %v", float64(op.Call)/1e9, float64(op.Return)/1e9, describe(op.Input.(Input), op.Output.(Output)), op.Metadata)
		}
		if len(longest) > 0 {
			end := longest[len(longest)-1].Call
			t.Logf("operations called within a second after it:")
			for _, op := range byKey[k] {
				if op.Call >= end && op.Call < end+int64(time.Second) {
					t.Logf("  [%.3fs, %.3fs] %s on %s %s", float64(op.Call)/1e9, float64(op.Return)/1e9, describe(op.Input, op.Output), op.Manager, op.Err)
				}
			}
		}
	}
}
