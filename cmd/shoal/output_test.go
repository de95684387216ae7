package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/api"
)

var (
	created = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	updated = time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC)
	web     = &api.Object{Kind: "service", Id: "abc123", Name: "web", Labels: map[string]string{"tier": "front", "app": "shop"},
		Spec: []byte(`{"replicas":3}`), Version: 12, CreatedAt: timestamppb.New(created), UpdatedAt: timestamppb.New(updated)}
	bare = &api.Object{Kind: "service", Id: "def456", Name: "db", Version: 9}
	text = &api.Object{Kind: "note", Id: "n1", Name: "hello", Spec: []byte("plain text"), Version: 3}
)

// golden compares output with want, ignoring the indentation of want's
// lines so the expectations read well in the source.
func golden(t *testing.T, got, want string) {
	t.Helper()
	want = strings.TrimPrefix(want, "\n")
	lines := strings.Split(want, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, "\t\t\t")
	}
	want = strings.Join(lines, "\n")
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteObject(t *testing.T) {
	tests := []struct {
		name string
		obj  *api.Object
		f    format
		want string
	}{
		{"table", web, formatTable, `
			kind:     service
			name:     web
			id:       abc123
			version:  12
			labels:   app=shop,tier=front
			created:  2026-01-02T03:04:05Z
			updated:  2026-01-02T03:05:00Z
			spec:
			  {
			    "replicas": 3
			  }
			`},
		{"table without spec or times", bare, formatTable, `
			kind:     service
			name:     db
			id:       def456
			version:  9
			labels:   -
			created:  -
			updated:  -
			spec:     (none)
			`},
		{"json shows the spec as JSON", web, formatJSON, `
			{
			  "kind": "service",
			  "id": "abc123",
			  "name": "web",
			  "labels": {
			    "app": "shop",
			    "tier": "front"
			  },
			  "spec": {
			    "replicas": 3
			  },
			  "version": 12,
			  "created_at": "2026-01-02T03:04:05Z",
			  "updated_at": "2026-01-02T03:05:00Z"
			}
			`},
		{"json of a spec that is not JSON", text, formatJSON, `
			{
			  "kind": "note",
			  "id": "n1",
			  "name": "hello",
			  "spec": "plain text",
			  "version": 3
			}
			`},
		{"yaml", web, formatYAML, `
			created_at: "2026-01-02T03:04:05Z"
			id: abc123
			kind: service
			labels:
			  app: shop
			  tier: front
			name: web
			spec:
			  replicas: 3
			updated_at: "2026-01-02T03:05:00Z"
			version: 12
			`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeObject(&b, tt.f, tt.obj); err != nil {
				t.Fatal(err)
			}
			golden(t, b.String(), tt.want)
		})
	}
}

func TestWriteList(t *testing.T) {
	tests := []struct {
		name string
		objs []*api.Object
		f    format
		want string
	}{
		{"table", []*api.Object{bare, web}, formatTable, `
			NAME  ID      VERSION  LABELS               UPDATED
			db    def456  9        -                    -
			web   abc123  12       app=shop,tier=front  2026-01-02T03:05:00Z
			`},
		{"empty table", nil, formatTable, `
			NAME  ID  VERSION  LABELS  UPDATED
			`},
		{"json", []*api.Object{bare}, formatJSON, `
			{
			  "version": 40,
			  "items": [
			    {
			      "kind": "service",
			      "id": "def456",
			      "name": "db",
			      "version": 9
			    }
			  ]
			}
			`},
		{"empty json is an empty list", nil, formatJSON, `
			{
			  "version": 40,
			  "items": []
			}
			`},
		{"yaml", []*api.Object{bare}, formatYAML, `
			items:
			- id: def456
			  kind: service
			  name: db
			  version: 9
			version: 40
			`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeList(&b, tt.f, tt.objs, 40); err != nil {
				t.Fatal(err)
			}
			golden(t, b.String(), tt.want)
		})
	}
}

// writeList prints objs as ls does, in one page.
func writeList(w io.Writer, f format, objs []*api.Object, version uint64) error {
	lw := &listWriter{w: w, f: f}
	if err := lw.page(objs, version); err != nil {
		return err
	}
	return lw.end()
}

// TestListWrittenInPagesIsTheListWrittenWhole: ls prints pages as they
// arrive; the JSON and YAML it prints are those of the whole list.
func TestListWrittenInPagesIsTheListWrittenWhole(t *testing.T) {
	var objs []*api.Object
	for i := range 7 {
		objs = append(objs, &api.Object{Kind: "service", Name: fmt.Sprintf("s%d", i), Id: fmt.Sprintf("id%d", i),
			Version: uint64(i + 1), Labels: map[string]string{"n": fmt.Sprint(i)}, Spec: []byte(`{"a":[1,2]}`)})
	}
	for _, f := range []format{formatJSON, formatYAML} {
		for _, pages := range [][]int{{7}, {3, 4}, {1, 0, 6}, {0, 7}, {7, 0}} {
			var paged bytes.Buffer
			lw := &listWriter{w: &paged, f: f}
			from := 0
			for _, n := range pages {
				if err := lw.page(objs[from:from+n], 40); err != nil {
					t.Fatal(err)
				}
				from += n
			}
			if err := lw.end(); err != nil {
				t.Fatal(err)
			}
			lv := listView{Version: 40}
			for _, o := range objs {
				lv.Items = append(lv.Items, viewObject(o))
			}
			var whole bytes.Buffer
			if err := writeStructured(&whole, f, lv); err != nil {
				t.Fatal(err)
			}
			if paged.String() != whole.String() {
				t.Errorf("%s in pages %v:\n%s\nwant, as written whole:\n%s", f, pages, paged.String(), whole.String())
			}
		}
	}
}

func TestWriteEvent(t *testing.T) {
	ev := &api.WatchEvent{Type: api.EventType_EVENT_TYPE_UPDATE, Object: bare, Version: 9}
	tests := []struct {
		f    format
		want string
	}{
		{formatTable, "9        update service/db id=def456 labels=-\n"},
		{formatJSON, `{"type":"update","version":9,"object":{"kind":"service","id":"def456","name":"db","version":9}}` + "\n"},
		{formatYAML, "---\nobject:\n  id: def456\n  kind: service\n  name: db\n  version: 9\ntype: update\nversion: 9\n"},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := writeEvent(&b, tt.f, ev); err != nil {
			t.Fatal(err)
		}
		if b.String() != tt.want {
			t.Errorf("%s: got %q, want %q", tt.f, b.String(), tt.want)
		}
	}
}

var members = []*api.Member{
	{RaftId: 0x1a, NodeId: "node-a", Addr: "10.0.0.1:2377", Role: "leader", Reachable: true, MatchIndex: 40,
		Suffrage: "voter", LastContactMs: 0},
	{RaftId: 0x2b, NodeId: "node-b", Addr: "10.0.0.2:2377", Role: "follower", Reachable: false, MatchIndex: 31, Lag: 9,
		Suffrage: "voter", LastContactMs: 3450},
	{RaftId: 0x3c, NodeId: "node-c", Addr: "10.0.0.3:2377", Role: "follower", Reachable: true, MatchIndex: 38, Lag: 2,
		Suffrage: "learner", AutoPromote: true, LastContactMs: 120},
	{RaftId: 0x4d, NodeId: "node-d", Addr: "10.0.0.4:2377", Role: "follower", Reachable: false,
		Suffrage: "learner", LastContactMs: -1},
}

func TestWriteMembers(t *testing.T) {
	tests := []struct {
		name       string
		members    []*api.Member
		answeredBy uint64
		f          format
		want       string
	}{
		{"table answered by the leader", members, 0x1a, formatTable, `
			NODE ID  RAFT ID  ADDRESS        SUFFRAGE                  ROLE      REACHABLE  LAST CONTACT  MATCH INDEX  LAG
			node-a   1a       10.0.0.1:2377  voter                     leader    yes        -             40           0
			node-b   2b       10.0.0.2:2377  voter                     follower  no         3s            31           9
			node-c   3c       10.0.0.3:2377  learner (to be promoted)  follower  yes        120ms         38           2
			node-d   4d       10.0.0.4:2377  learner                   follower  no         never         0            0
			`},
		// Without a leader, a follower answers: it knows no match
		// indexes, and a peer it heard from within a millisecond has a
		// last contact of 0, as the answering manager itself does.
		{"table answered by a follower", []*api.Member{
			{RaftId: 0x1a, NodeId: "node-a", Addr: "10.0.0.1:2377", Role: "follower", Reachable: true, Suffrage: "voter", LastContactMs: 0},
			{RaftId: 0x2b, NodeId: "node-b", Addr: "10.0.0.2:2377", Role: "follower", Reachable: true, Suffrage: "voter", LastContactMs: 0},
		}, 0x2b, formatTable, `
			NODE ID  RAFT ID  ADDRESS        SUFFRAGE  ROLE      REACHABLE  LAST CONTACT  MATCH INDEX  LAG
			node-a   1a       10.0.0.1:2377  voter     follower  yes        0ms           -            -
			node-b   2b       10.0.0.2:2377  voter     follower  yes        -             -            -
			`},
		{"a manager that does not say is a voter", []*api.Member{{RaftId: 0x1a, NodeId: "node-a", Role: "leader", Reachable: true}}, 0x1a, formatTable, `
			NODE ID  RAFT ID  ADDRESS  SUFFRAGE  ROLE    REACHABLE  LAST CONTACT  MATCH INDEX  LAG
			node-a   1a                voter     leader  yes        -             0            0
			`},
		{"json has every field", members[1:3], 0x1a, formatJSON, `
			[
			  {
			    "node_id": "node-b",
			    "raft_id": "2b",
			    "addr": "10.0.0.2:2377",
			    "suffrage": "voter",
			    "auto_promote": false,
			    "role": "follower",
			    "reachable": false,
			    "last_contact_ms": 3450,
			    "match_index": 31,
			    "lag": 9
			  },
			  {
			    "node_id": "node-c",
			    "raft_id": "3c",
			    "addr": "10.0.0.3:2377",
			    "suffrage": "learner",
			    "auto_promote": true,
			    "role": "follower",
			    "reachable": true,
			    "last_contact_ms": 120,
			    "match_index": 38,
			    "lag": 2
			  }
			]
			`},
		{"json of no members is an empty list", nil, 0, formatJSON, `
			[]
			`},
		{"yaml", members[3:], 0x1a, formatYAML, `
			- addr: 10.0.0.4:2377
			  auto_promote: false
			  lag: 0
			  last_contact_ms: -1
			  match_index: 0
			  node_id: node-d
			  raft_id: 4d
			  reachable: false
			  role: follower
			  suffrage: learner
			`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeMembers(&b, tt.f, tt.members, tt.answeredBy); err != nil {
				t.Fatal(err)
			}
			golden(t, b.String(), tt.want)
		})
	}
}

func TestLastContact(t *testing.T) {
	tests := []struct {
		ms   int64
		want string
	}{
		{-1, "never"},
		{0, "0ms"},
		{120, "120ms"},
		{999, "999ms"},
		{1000, "1s"},
		{3999, "3s"},
		{59_999, "59s"},
		{60_000, "1m0s"},
		{252_000, "4m12s"},
		{3_600_000, "1h0m"},
		{7_500_000, "2h5m"},
		{86_400_000, "1d0h"},
		{(3*24 + 4) * 3_600_000, "3d4h"},
	}
	for _, tt := range tests {
		if got := lastContact(tt.ms); got != tt.want {
			t.Errorf("lastContact(%d) = %q, want %q", tt.ms, got, tt.want)
		}
	}
}

func TestWriteCluster(t *testing.T) {
	info := &api.GetClusterInfoResponse{ClusterId: "c0ffee", Manager: members[1], LeaderRaftId: 0x1a, LeaderAddr: "10.0.0.1:2377",
		Term: 3, CommitIndex: 41, AppliedIndex: 40, StoreVersion: 40, Members: 4, ReachableMembers: 2}
	tests := []struct {
		name    string
		info    *api.GetClusterInfoResponse
		members []*api.Member
		f       format
		want    string
	}{
		{"table with the members as the leader sees them", info, members, formatTable, `
			cluster id:     c0ffee
			answered by:    node-b (raft id 2b, 10.0.0.2:2377, voter, follower)
			leader:         1a at 10.0.0.1:2377
			managers:       4 (2 reachable)
			voters:         2 (1 reachable)
			learners:       2 (1 reachable, 1 to be promoted)
			term:           3
			commit index:   41
			applied index:  40
			store version:  40
			`},
		{"table without learners", info, members[:2], formatTable, `
			cluster id:     c0ffee
			answered by:    node-b (raft id 2b, 10.0.0.2:2377, voter, follower)
			leader:         1a at 10.0.0.1:2377
			managers:       4 (2 reachable)
			voters:         2 (1 reachable)
			learners:       0
			term:           3
			commit index:   41
			applied index:  40
			store version:  40
			`},
		{"table without the members (no leader)", &api.GetClusterInfoResponse{ClusterId: "c0ffee", Manager: members[2],
			Term: 4, CommitIndex: 41, AppliedIndex: 41, StoreVersion: 40, Members: 4, ReachableMembers: 1}, nil, formatTable, `
			cluster id:     c0ffee
			answered by:    node-c (raft id 3c, 10.0.0.3:2377, learner, follower)
			leader:         none (an election is under way, or a quorum is unreachable)
			managers:       4 (1 reachable)
			term:           4
			commit index:   41
			applied index:  41
			store version:  40
			`},
		{"json is the answer alone", info, members, formatJSON, `
			{
			  "cluster_id": "c0ffee",
			  "manager": {
			    "node_id": "node-b",
			    "raft_id": "2b",
			    "addr": "10.0.0.2:2377",
			    "suffrage": "voter",
			    "auto_promote": false,
			    "role": "follower",
			    "reachable": false,
			    "last_contact_ms": 3450,
			    "match_index": 31,
			    "lag": 9
			  },
			  "leader_raft_id": "1a",
			  "leader_addr": "10.0.0.1:2377",
			  "term": 3,
			  "commit_index": 41,
			  "applied_index": 40,
			  "store_version": 40,
			  "members": 4,
			  "reachable_members": 2
			}
			`},
		{"yaml of an empty answer", &api.GetClusterInfoResponse{Term: 1, Members: 1}, nil, formatYAML, `
			applied_index: 0
			cluster_id: ""
			commit_index: 0
			leader_addr: ""
			leader_raft_id: ""
			members: 1
			reachable_members: 0
			store_version: 0
			term: 1
			`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeCluster(&b, tt.f, tt.info, tt.members); err != nil {
				t.Fatal(err)
			}
			golden(t, b.String(), tt.want)
		})
	}
}

func TestQuorumWarnings(t *testing.T) {
	// mk makes one member per letter: V a reachable voter, v one that is
	// not; L and l a learner to be promoted, P and p a learner for good.
	mk := func(spec string) []*api.Member {
		var out []*api.Member
		for i, c := range spec {
			m := &api.Member{RaftId: uint64(i + 1), NodeId: fmt.Sprintf("node-%d", i+1), Suffrage: "voter",
				Reachable: unicode.IsUpper(c)}
			switch unicode.ToLower(c) {
			case 'l':
				m.Suffrage, m.AutoPromote = "learner", true
			case 'p':
				m.Suffrage = "learner"
			}
			out = append(out, m)
		}
		return out
	}
	const lost = ", fewer than the 2 a quorum needs: the cluster accepts no writes until they are back (if they are lost for good, see 'shoal manager --force-new-cluster')"
	tests := []struct {
		members string
		want    []string
	}{
		{"V", nil},
		{"VVV", nil},
		{"VVVVv", nil},
		{"VV", []string{"2 voting managers tolerate no failure; run an odd number of voters (3 or 5)"}},
		{"VVVV", []string{"4 voting managers tolerate only 1 failure, no more than 3 would; run an odd number of voters (3 or 5)"}},
		{"VVv", []string{"only 2 of 3 voting managers are reachable: one more failure loses the quorum"}},
		{"VVVvv", []string{"only 3 of 5 voting managers are reachable: one more failure loses the quorum"}},
		{"Vvv", []string{"only 1 of 3 voting managers are reachable" + lost}},
		{"Vv", []string{"2 voting managers tolerate no failure; run an odd number of voters (3 or 5)",
			"only 1 of 2 voting managers are reachable" + lost}},
		// Learners count toward no quorum: neither toward the number of
		// voters nor among the reachable ones.
		{"VVVP", nil},
		{"VVVpp", nil},
		{"VVpP", []string{"2 voting managers tolerate no failure; run an odd number of voters (3 or 5)"}},
		{"VvvPP", []string{"only 1 of 3 voting managers are reachable" + lost}},
		{"VP", nil},
		// Learners to be promoted are named, and what to do when they are
		// unreachable.
		{"VVVL", []string{"learner node-4 is to be promoted to a voter once it has caught up; until then it counts toward no quorum"}},
		{"VVVl", []string{"learner node-4, to be promoted once it has caught up, is unreachable; if it is gone for good, remove it with 'shoal node rm node-4'"}},
		{"VL", []string{"learner node-2 is to be promoted to a voter once it has caught up; until then it counts toward no quorum"}},
		{"VVvlP", []string{"only 2 of 3 voting managers are reachable: one more failure loses the quorum",
			"learner node-4, to be promoted once it has caught up, is unreachable; if it is gone for good, remove it with 'shoal node rm node-4'"}},
		{"", nil},
	}
	for _, tt := range tests {
		got := quorumWarnings(mk(tt.members))
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%q: got %q, want %q", tt.members, got, tt.want)
		}
	}
	// A manager too old to say its suffrage is a voter.
	old := []*api.Member{{RaftId: 1, Reachable: true}, {RaftId: 2}, {RaftId: 3}}
	if got := quorumWarnings(old); len(got) != 1 || !strings.HasPrefix(got[0], "only 1 of 3 voting managers") {
		t.Errorf("members without a suffrage: got %q", got)
	}
}
