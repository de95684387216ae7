package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/health"
)

func TestWriteDiagnosis(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := health.Report{GatheredBy: 2, At: now, Managers: []health.View{
		{RaftID: 2, NodeID: "m2", Addr: "127.0.0.1:2378", State: "follower", Term: 5, Commit: 40, Applied: 40,
			Members: 3, Reaches: 1, CertExpiry: now.Add(48 * time.Hour), Fsync: 2345 * time.Microsecond},
		{RaftID: 1, NodeID: "m1", Addr: "127.0.0.1:2377", Error: "connection refused"},
		{RaftID: 3, NodeID: "m3", Addr: "127.0.0.1:2379", Locked: true},
	}}
	d := health.Diagnose(r, health.DefaultOptions())
	tests := []struct {
		format format
		want   []string
	}{
		{formatTable, []string{
			"unavailable: no quorum: 1 of 3 voters answer and a leader needs 2",
			"m2       2        127.0.0.1:2378  voter     follower   5     none    40      40       1/3      in 48h0m0s (2026-01-04)  2.35ms  -\n",
			"m1       1        127.0.0.1:2377  voter     no answer  -",
			"m3       3        127.0.0.1:2379  voter     locked     -",
			"problems:\n  - m1 (127.0.0.1:2377) does not answer: connection refused\n  - m3 is locked",
			"what to do: bring back 1 voter of m1, m3; if they are lost for good, stop m2",
		}},
		{formatJSON, []string{`"status": "unavailable"`, `"force_new_cluster": {`, `"node_id": "m2"`}},
		{formatYAML, []string{"status: unavailable", "gathered_by: 2"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			var b bytes.Buffer
			if err := writeDiagnosis(&b, tt.format, r, d); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
			if tt.format == formatJSON && !json.Valid(b.Bytes()) {
				t.Errorf("not JSON:\n%s", b.String())
			}
		})
	}
}
