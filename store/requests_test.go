package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/store"
)

// entryWithID is the payload of one entry of actions carrying request ID id.
func entryWithID(t testing.TB, id string, actions ...*api.StoreAction) []byte {
	t.Helper()
	b, err := proto.Marshal(&api.StoreActions{Actions: actions, RequestId: []byte(id)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func applyOK(t testing.TB, s *store.Store, index uint64, payload []byte) *store.Result {
	t.Helper()
	res, err := s.Apply(index, payload)
	if err != nil {
		t.Fatalf("entry %d: %v", index, err)
	}
	return res.(*store.Result)
}

// TestApplyAnswersARepeatedRequestWithTheFirstOutcome is the contract of
// request IDs at apply: a second entry with the ID of one applied is
// answered with the first one's version and objects and changes nothing,
// whatever its own actions, and a rejected entry is not remembered.
func TestApplyAnswersARepeatedRequestWithTheFirstOutcome(t *testing.T) {
	create := func(id, name string) *api.StoreAction {
		return validAction(api.StoreActionKind_STORE_ACTION_KIND_CREATE, withID(obj("service", name), id), 0)
	}
	tests := []struct {
		name string
		// entries are applied at indexes 1, 2, ...; the last one is
		// checked.
		entries     func(t *testing.T) [][]byte
		wantVersion uint64
		wantRepeat  bool
		wantErr     error
		wantObjects string // kind/id@version of the result's objects, spec if whole
		wantStore   string // names in the store afterwards
	}{
		{
			name: "a create sent again under a new object id",
			entries: func(t *testing.T) [][]byte {
				return [][]byte{entryWithID(t, "r1", create("id1", "web")), entryWithID(t, "r1", create("id2", "web"))}
			},
			wantVersion: 1, wantRepeat: true, wantObjects: `service/id1@1 {"name":"web"}`, wantStore: "service/web",
		},
		{
			name: "a create whose object changed since",
			entries: func(t *testing.T) [][]byte {
				upd := validAction(api.StoreActionKind_STORE_ACTION_KIND_UPDATE, withID(obj("service", "web2"), "id1"), 0)
				return [][]byte{entryWithID(t, "r1", create("id1", "web")), entryWithID(t, "", upd),
					entryWithID(t, "r1", create("id3", "web"))}
			},
			wantVersion: 1, wantRepeat: true, wantObjects: "service/id1@1", wantStore: "service/web2",
		},
		{
			name: "a deletion sent again after its object is gone",
			entries: func(t *testing.T) [][]byte {
				del := validAction(api.StoreActionKind_STORE_ACTION_KIND_DELETE, withID(obj("service", "web"), "id1"), 0)
				return [][]byte{entryWithID(t, "", create("id1", "web")), entryWithID(t, "r2", del), entryWithID(t, "r2", del)}
			},
			wantVersion: 2, wantRepeat: true, wantObjects: "service/id1@0", wantStore: "",
		},
		{
			name: "a transaction sent again",
			entries: func(t *testing.T) [][]byte {
				return [][]byte{entryWithID(t, "r3", create("id1", "a"), create("id2", "b")),
					entryWithID(t, "r3", create("id5", "a"), create("id6", "b"))}
			},
			wantVersion: 1, wantRepeat: true, wantObjects: `service/id1@1 {"name":"a"} service/id2@1 {"name":"b"}`, wantStore: "service/a service/b",
		},
		{
			name: "a rejected entry is not remembered",
			entries: func(t *testing.T) [][]byte {
				return [][]byte{entryWithID(t, "", create("id1", "web")), entryWithID(t, "r4", create("id2", "web")),
					entryWithID(t, "r4", create("id3", "other"))}
			},
			wantVersion: 3, wantObjects: `service/id3@3 {"name":"other"}`, wantStore: "service/other service/web",
		},
		{
			name: "another request ID is another write",
			entries: func(t *testing.T) [][]byte {
				return [][]byte{entryWithID(t, "r5", create("id1", "web")), entryWithID(t, "r6", create("id2", "web"))}
			},
			wantErr: store.ErrExists, wantStore: "service/web",
		},
		{
			name: "a request ID too long",
			entries: func(t *testing.T) [][]byte {
				return [][]byte{entryWithID(t, string(make([]byte, store.MaxRequestIDLen+1)), create("id1", "web"))}
			},
			wantErr: store.ErrInvalid, wantStore: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, batched := range []bool{false, true} {
				s := newStore(t, testConfig(t))
				entries := tt.entries(t)
				var res any
				var err error
				if batched {
					results, errs := s.ApplyBatch(1, entries)
					res, err = results[len(entries)-1], errs[len(entries)-1]
				} else {
					for i, e := range entries {
						res, err = s.Apply(uint64(i+1), e)
					}
				}
				if !errors.Is(err, tt.wantErr) || (tt.wantErr != nil) != (err != nil) {
					t.Fatalf("batched=%v: err = %v, want %v", batched, err, tt.wantErr)
				}
				if err == nil {
					r := res.(*store.Result)
					if r.Version != tt.wantVersion || r.Repeated != tt.wantRepeat || refsOf(r.Objects) != tt.wantObjects {
						t.Errorf("batched=%v: result version %d repeated %v objects %q, want %d %v %q",
							batched, r.Version, r.Repeated, refsOf(r.Objects), tt.wantVersion, tt.wantRepeat, tt.wantObjects)
					}
				}
				if got := names(list(t, s, store.Selector{Kind: "service"})); got != tt.wantStore {
					t.Errorf("batched=%v: store holds %q, want %q", batched, got, tt.wantStore)
				}
			}
		})
	}
}

func refsOf(objs []*api.Object) string {
	out := ""
	for i, o := range objs {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%s/%s@%d", o.GetKind(), o.GetId(), o.GetVersion())
		if o.GetSpec() != nil {
			out += " " + string(o.GetSpec())
		}
	}
	return out
}

// TestUpdateRequestAnswersARepeatWithoutProposing: a repeat is answered
// from the store even when its read-modify-write would now fail.
func TestUpdateRequestAnswersARepeatWithoutProposing(t *testing.T) {
	s := newStore(t, testConfig(t))
	created := mustCreate(t, s, obj("service", "web"))[0]
	del := func(tx store.Tx) error {
		cur, err := tx.GetByName("service", "web")
		if err != nil {
			return err
		}
		return tx.Delete("service", cur.GetId(), 0)
	}
	first, err := s.UpdateRequest(context.Background(), []byte("del-1"), del)
	if err != nil || first.Repeated {
		t.Fatalf("first deletion: %+v, %v", first, err)
	}
	again, err := s.UpdateRequest(context.Background(), []byte("del-1"), del)
	if err != nil {
		t.Fatalf("the deletion again: %v, want the first one's outcome", err)
	}
	if !again.Repeated || again.Version != first.Version || again.Objects[0].GetId() != created.GetId() {
		t.Fatalf("the deletion again: %+v, want a repeat of version %d", again, first.Version)
	}
	if s.Version() != first.Version {
		t.Fatalf("the repeat proposed an entry: version %d, want %d", s.Version(), first.Version)
	}
	if _, err := s.UpdateRequest(context.Background(), []byte("del-2"), del); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("another deletion: %v, want ErrNotFound", err)
	}
}

// TestRememberedRequestsAreForgottenOldestFirstAndSurviveASnapshot
// applies more requests than the store remembers, snapshots part way, and
// checks that a store restored from the snapshot then forgets exactly what
// the one that applied everything forgets: the memory is replicated state.
func TestRememberedRequestsAreForgottenOldestFirstAndSurviveASnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("applies more than RememberedRequests entries")
	}
	create := validAction(api.StoreActionKind_STORE_ACTION_KIND_CREATE, withID(obj("service", "web"), "id1"), 0)
	update := validAction(api.StoreActionKind_STORE_ACTION_KIND_UPDATE, withID(obj("service", "web"), "id1"), 0)
	total := store.RememberedRequests + 100
	payloads := make([][]byte, total)
	payloads[0] = entryWithID(t, "r0", create)
	for i := 1; i < total; i++ {
		payloads[i] = entryWithID(t, fmt.Sprintf("r%d", i), update)
	}
	const snapAt = 5000 // entries applied before the snapshot
	all := newStore(t, testConfig(t))
	applyRuns(t, all, 1, payloads[:snapAt])
	write, err := all.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := newStore(t, testConfig(t))
	if err := restored.Restore(snapAt, writeToBuffer(t, write)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*store.Store{all, restored} {
		applyRuns(t, s, snapAt+1, payloads[snapAt:])
	}
	if _, a := all.Hash(); func() bool { _, b := restored.Hash(); return a != b }() {
		t.Fatal("the restored store differs from the one that applied every entry")
	}
	for _, s := range []*store.Store{all, restored} {
		for i, want := range map[int]bool{0: false, 99: false, 100: true, total - 1: true} {
			if _, ok := s.Repeated([]byte(fmt.Sprintf("r%d", i))); ok != want {
				t.Errorf("request r%d remembered: %v, want %v", i, ok, want)
			}
		}
	}
	// A forgotten request is applied again.
	res := applyOK(t, all, uint64(total+1), entryWithID(t, "r0", update))
	if res.Repeated {
		t.Fatal("a forgotten request was answered as a repeat")
	}
}

// applyRuns applies payloads from index first in runs, as the raft node
// does.
func applyRuns(t testing.TB, s *store.Store, first uint64, payloads [][]byte) {
	t.Helper()
	for len(payloads) > 0 {
		n := min(len(payloads), 512)
		_, errs := s.ApplyBatch(first, payloads[:n])
		for i, err := range errs {
			if err != nil {
				t.Fatalf("entry %d: %v", first+uint64(i), err)
			}
		}
		first += uint64(n)
		payloads = payloads[n:]
	}
}
