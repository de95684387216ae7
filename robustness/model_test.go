package robustness

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// op builds one operation of a synthetic history on key "k", called at
// call and returning at ret (in arbitrary units).
func op(client int, call, ret int64, in Input, out Output) Op {
	in.Key = "k"
	return Op{Client: client, Input: in, Output: out, Call: call, Return: ret}
}

func create(v string) Input { return Input{Kind: OpCreate, Value: v} }
func get() Input            { return Input{Kind: OpGet} }
func update(v string, expected uint64) Input {
	return Input{Kind: OpUpdate, Value: v, Expected: expected}
}
func del(expected uint64) Input { return Input{Kind: OpDelete, Expected: expected} }

func ok(version uint64) Output { return Output{Status: StatusOK, Version: version} }
func read(v string, version uint64) Output {
	return Output{Status: StatusOK, Value: v, Version: version}
}

var (
	notFound = Output{Status: StatusNotFound}
	exists   = Output{Status: StatusExists}
	conflict = Output{Status: StatusConflict}
	unknown  = Output{Status: StatusUnknown}
)

func TestModel(t *testing.T) {
	tests := []struct {
		name    string
		history []Op
		want    porcupine.CheckResult
	}{
		{"sequential life of an object", []Op{
			op(0, 0, 1, get(), notFound),
			op(0, 2, 3, create("a"), ok(5)),
			op(0, 4, 5, create("x"), exists),
			op(0, 6, 7, get(), read("a", 5)),
			op(0, 8, 9, update("b", 5), ok(7)),
			op(0, 10, 11, update("c", 5), conflict),
			op(0, 12, 13, update("d", 0), ok(9)),
			op(0, 14, 15, get(), read("d", 9)),
			op(0, 16, 17, del(9), ok(11)),
			op(0, 18, 19, get(), notFound),
			op(0, 20, 21, update("e", 0), notFound),
			op(0, 22, 23, del(0), notFound),
			op(0, 24, 25, create("f"), ok(13)),
			op(0, 26, 27, get(), read("f", 13)),
		}, porcupine.Ok},
		{"stale read: a get after an acknowledged update returns the old value", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(0, 20, 30, update("b", 0), ok(7)),
			op(1, 40, 50, get(), read("a", 5)),
		}, porcupine.Illegal},
		{"stale read: not found after an acknowledged create", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(1, 20, 30, get(), notFound),
		}, porcupine.Illegal},
		{"stale not-found from an update after an acknowledged create", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(1, 20, 30, update("b", 0), notFound),
		}, porcupine.Illegal},
		{"lost write: an acknowledged update is gone after a later read saw it", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(0, 20, 30, update("b", 5), ok(7)),
			op(1, 40, 50, get(), read("b", 7)),
			op(1, 60, 70, get(), read("a", 5)),
		}, porcupine.Illegal},
		{"lost write: an acknowledged create is never seen", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(1, 100, 110, get(), notFound),
			op(1, 120, 130, create("b"), ok(9)),
		}, porcupine.Illegal},
		{"a read concurrent with an update may see either value", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(0, 20, 40, update("b", 0), ok(7)),
			op(1, 25, 35, get(), read("a", 5)),
			op(2, 26, 36, get(), read("b", 7)),
		}, porcupine.Ok},
		{"reads cannot go back in time", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(0, 20, 60, update("b", 0), ok(7)),
			op(1, 25, 30, get(), read("b", 7)),
			op(2, 40, 50, get(), read("a", 5)),
		}, porcupine.Illegal},
		{"a write of unknown outcome may have happened", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(0, 20, 30, update("b", 0), unknown),
			op(1, 40, 50, get(), read("b", 8)),
			op(1, 60, 70, update("c", 8), ok(9)),
		}, porcupine.Ok},
		{"a write of unknown outcome may not have happened", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(0, 20, 30, update("b", 0), unknown),
			op(1, 40, 50, get(), read("a", 5)),
		}, porcupine.Ok},
		{"a write of unknown outcome may take effect late, but only once", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(0, 20, 30, update("b", 0), unknown),
			op(1, 40, 50, get(), read("a", 5)),
			op(1, 60, 70, get(), read("b", 8)),
			op(1, 80, 90, get(), read("a", 5)),
		}, porcupine.Illegal},
		{"a create of unknown outcome that happened cannot be undone", []Op{
			op(0, 0, 10, create("a"), unknown),
			op(1, 20, 30, get(), read("a", 3)),
			op(1, 40, 50, get(), notFound),
		}, porcupine.Illegal},
		{"a definite failure has no effect", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(0, 20, 30, update("b", 4), conflict),
			op(1, 40, 50, get(), read("b", 7)),
		}, porcupine.Illegal},
		{"a conflict needs another version", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(0, 20, 30, update("b", 5), conflict),
		}, porcupine.Illegal},
		{"versions only grow", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(0, 20, 30, update("b", 0), ok(4)),
		}, porcupine.Illegal},
		{"a version read must be the one written", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(1, 20, 30, get(), read("a", 6)),
		}, porcupine.Illegal},
		{"a new object's version is above its deletion's", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(0, 20, 30, del(0), ok(8)),
			op(0, 40, 50, create("b"), ok(7)),
		}, porcupine.Illegal},
		{"an expected version must match for the update to succeed", []Op{
			op(0, 0, 10, create("a"), ok(5)),
			op(0, 20, 30, update("b", 4), ok(7)),
		}, porcupine.Illegal},
		{"an unknown version is learnt from a conditional write", []Op{
			op(0, 0, 10, create("a"), unknown),
			op(1, 20, 30, update("b", 12), ok(14)),
			op(1, 40, 50, get(), read("b", 14)),
		}, porcupine.Ok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Check(tt.history, 10*time.Second, "")
			if err != nil {
				t.Fatal(err)
			}
			if res.Result != tt.want {
				t.Fatalf("checker says %s, want %s", res.Result, tt.want)
			}
		})
	}
}

// Keys are independent: a stale read of one key is found among many
// legal operations on others.
func TestModelPartitionsByKey(t *testing.T) {
	var history []Op
	for i, k := range []string{"a", "b", "c"} {
		base := int64(i * 1000)
		history = append(history,
			Op{Client: i, Input: Input{Kind: OpCreate, Key: k, Value: k + "1"}, Output: ok(uint64(10 + i)), Call: base, Return: base + 10},
			Op{Client: i, Input: Input{Kind: OpGet, Key: k}, Output: read(k+"1", uint64(10+i)), Call: base + 20, Return: base + 30},
		)
	}
	if res, _ := Check(history, 10*time.Second, ""); res.Result != porcupine.Ok {
		t.Fatalf("legal history: %s", res.Result)
	}
	history = append(history, Op{Client: 3, Input: Input{Kind: OpGet, Key: "b"}, Output: notFound, Call: 5000, Return: 5010})
	if res, _ := Check(history, 10*time.Second, ""); res.Result != porcupine.Illegal {
		t.Fatalf("stale read of b: %s", res.Result)
	}
}

// Failed reads say nothing and are left out.
func TestFailedReadsAreLeftOut(t *testing.T) {
	history := []Op{
		op(0, 0, 10, create("a"), ok(5)),
		op(1, 20, 30, get(), Output{Status: StatusFailed}),
	}
	if got := len(Porcupine(history)); got != 1 {
		t.Fatalf("%d operations to check, want 1", got)
	}
}

func TestCheckWritesVisualisationOfIllegalHistory(t *testing.T) {
	dir := t.TempDir()
	res, err := Check([]Op{
		op(0, 0, 10, create("a"), ok(5)),
		op(1, 20, 30, get(), notFound),
	}, 10*time.Second, dir)
	if err != nil {
		t.Fatal(err)
	}
	if res.Result != porcupine.Illegal || res.Visualization != filepath.Join(dir, "history.html") {
		t.Fatalf("result %+v", res)
	}
	if fi, err := os.Stat(res.Visualization); err != nil || fi.Size() == 0 {
		t.Fatalf("visualisation: %v", err)
	}
}
