package robustness

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Op is one recorded operation. Call and Return are nanoseconds on the
// recorder's monotonic clock; an operation whose outcome is unknown has no
// meaningful return time, and is checked as if it had never returned.
type Op struct {
	Client  int    `json:"client"`
	Manager string `json:"manager"`
	Input   Input  `json:"input"`
	Output  Output `json:"output"`
	Call    int64  `json:"call"`
	Return  int64  `json:"return"`
	Err     string `json:"err,omitempty"`
}

// History records operations from any number of goroutines.
type History struct {
	start time.Time // its monotonic reading is the clock

	mu  sync.Mutex
	ops []Op
}

// NewHistory returns an empty history whose clock starts now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now reads the history's monotonic clock.
func (h *History) Now() int64 { return int64(time.Since(h.start)) }

// Add records op.
func (h *History) Add(op Op) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations, in call order.
func (h *History) Ops() []Op {
	h.mu.Lock()
	ops := append([]Op(nil), h.ops...)
	h.mu.Unlock()
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	return ops
}

// Porcupine returns the operations to check: failed reads are left out,
// and an operation of unknown outcome never returns.
func Porcupine(ops []Op) []porcupine.Operation {
	out := make([]porcupine.Operation, 0, len(ops))
	for _, op := range ops {
		if op.Output.Status == StatusFailed {
			continue
		}
		ret := op.Return
		if op.Output.Status == StatusUnknown {
			ret = unknownReturn
		}
		out = append(out, porcupine.Operation{
			ClientId: op.Client,
			Input:    op.Input,
			Call:     op.Call,
			Output:   op.Output,
			Return:   ret,
			Metadata: op.Manager,
		})
	}
	return out
}

// Counts summarises ops: operations by kind and status.
func Counts(ops []Op) map[string]int {
	c := map[string]int{}
	for _, op := range ops {
		c[op.Input.Kind.String()+" "+op.Output.Status.String()]++
		c["total"]++
	}
	return c
}

// CheckResult is the outcome of Check.
type CheckResult struct {
	Result  porcupine.CheckResult
	Checked int           // operations checked
	Took    time.Duration // time spent
	// Visualization is the path of the HTML visualisation, written when
	// the history is not linearizable and a directory was given.
	Visualization string
}

// Check checks that ops are linearizable within budget. When they are not
// and dir is not empty, it writes the visualisation to dir/history.html.
func Check(ops []Op, budget time.Duration, dir string) (CheckResult, error) {
	history := Porcupine(ops)
	start := time.Now()
	model := Model.ToModel()
	res := CheckResult{Result: porcupine.CheckOperationsTimeout(model, history, budget), Checked: len(history)}
	res.Took = time.Since(start)
	if res.Result != porcupine.Illegal || dir == "" {
		return res, nil
	}
	// Again, slower, for the partial linearizations the visualisation
	// shows.
	_, info := porcupine.CheckOperationsVerbose(model, history, budget)
	res.Visualization = dir + "/history.html"
	if err := porcupine.VisualizePath(model, info, res.Visualization); err != nil {
		return res, fmt.Errorf("writing the visualisation: %w", err)
	}
	return res, nil
}

// WriteJSON writes v, indented, to path.
func WriteJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
