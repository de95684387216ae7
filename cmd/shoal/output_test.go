package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

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
	{RaftId: 0x1a, NodeId: "node-a", Addr: "10.0.0.1:2377", Role: "leader", Reachable: true, MatchIndex: 40},
	{RaftId: 0x2b, NodeId: "node-b", Addr: "10.0.0.2:2377", Role: "follower", Reachable: false, MatchIndex: 31},
}

func TestWriteMembers(t *testing.T) {
	tests := []struct {
		f    format
		want string
	}{
		{formatTable, `
			NODE ID  RAFT ID  ADDRESS        ROLE      REACHABLE  MATCH INDEX
			node-a   1a       10.0.0.1:2377  leader    yes        40
			node-b   2b       10.0.0.2:2377  follower  no         31
			`},
		{formatJSON, `
			[
			  {
			    "node_id": "node-a",
			    "raft_id": "1a",
			    "addr": "10.0.0.1:2377",
			    "role": "leader",
			    "reachable": true,
			    "match_index": 40
			  },
			  {
			    "node_id": "node-b",
			    "raft_id": "2b",
			    "addr": "10.0.0.2:2377",
			    "role": "follower",
			    "reachable": false,
			    "match_index": 31
			  }
			]
			`},
	}
	for _, tt := range tests {
		var b bytes.Buffer
		if err := writeMembers(&b, tt.f, members); err != nil {
			t.Fatal(err)
		}
		golden(t, b.String(), tt.want)
	}
}

func TestWriteCluster(t *testing.T) {
	info := &api.GetClusterInfoResponse{ClusterId: "c0ffee", Manager: members[1], LeaderRaftId: 0x1a, LeaderAddr: "10.0.0.1:2377",
		Term: 3, CommitIndex: 41, AppliedIndex: 40, StoreVersion: 40, Members: 2, ReachableMembers: 1}
	var b bytes.Buffer
	if err := writeCluster(&b, formatTable, info); err != nil {
		t.Fatal(err)
	}
	golden(t, b.String(), `
			cluster id:     c0ffee
			answered by:    node-b (raft id 2b, 10.0.0.2:2377, follower)
			leader:         1a at 10.0.0.1:2377
			managers:       2 (1 reachable)
			term:           3
			commit index:   41
			applied index:  40
			store version:  40
			`)
	b.Reset()
	if err := writeCluster(&b, formatYAML, &api.GetClusterInfoResponse{Term: 1, Members: 1}); err != nil {
		t.Fatal(err)
	}
	golden(t, b.String(), `
			applied_index: 0
			cluster_id: ""
			commit_index: 0
			leader_addr: ""
			leader_raft_id: ""
			members: 1
			reachable_members: 0
			store_version: 0
			term: 1
			`)
}

func TestQuorumWarnings(t *testing.T) {
	mk := func(n, reachable int) []*api.Member {
		out := make([]*api.Member, n)
		for i := range out {
			out[i] = &api.Member{RaftId: uint64(i + 1), Reachable: i < reachable}
		}
		return out
	}
	tests := []struct {
		n, reachable int
		want         []string
	}{
		{1, 1, nil},
		{3, 3, nil},
		{5, 4, nil},
		{2, 2, []string{"2 managers tolerate no failure; run an odd number (3 or 5)"}},
		{4, 4, []string{"4 managers tolerate only 1 failure, no more than 3 would; run an odd number (3 or 5)"}},
		{3, 2, []string{"only 2 of 3 managers are reachable: one more failure loses the quorum"}},
		{5, 3, []string{"only 3 of 5 managers are reachable: one more failure loses the quorum"}},
		{3, 1, []string{"only 1 of 3 managers are reachable, fewer than the 2 a quorum needs: the cluster accepts no writes until they are back (if they are lost for good, see 'shoal manager --force-new-cluster')"}},
		{2, 1, []string{"2 managers tolerate no failure; run an odd number (3 or 5)",
			"only 1 of 2 managers are reachable, fewer than the 2 a quorum needs: the cluster accepts no writes until they are back (if they are lost for good, see 'shoal manager --force-new-cluster')"}},
	}
	for _, tt := range tests {
		got := quorumWarnings(mk(tt.n, tt.reachable))
		if strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%d managers, %d reachable: got %q, want %q", tt.n, tt.reachable, got, tt.want)
		}
	}
}
