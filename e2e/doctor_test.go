package e2e

import (
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// doctorJSON is the part of 'shoal doctor -o json' the tests read.
type doctorJSON struct {
	Diagnosis struct {
		Status          string   `json:"status"`
		Summary         string   `json:"summary"`
		Problems        []string `json:"problems"`
		Recovery        string   `json:"recovery"`
		LeaderNodeID    string   `json:"leader_node_id"`
		ForceNewCluster *struct {
			NodeID string `json:"node_id"`
		} `json:"force_new_cluster"`
	} `json:"diagnosis"`
	Report struct {
		Managers []struct {
			NodeID string `json:"node_id"`
			Error  string `json:"error"`
			Fsync  int64  `json:"wal_fsync_ns"`
		} `json:"managers"`
	} `json:"report"`
}

// A healthy cluster passes from every manager; after two of three are
// killed, the survivor's doctor says there is no quorum and names it for
// --force-new-cluster.
func TestDoctorHealthyThenNoQuorum(t *testing.T) {
	ms := startCluster(t, 3)
	waitFor(t, 30*time.Second, "doctor to call the cluster healthy", func() (bool, string) {
		r := shoal(t, "doctor", "--socket", ms[0].socket())
		return r.code == 0, r.stdout + r.stderr
	})
	leader := leaderOf(t, ms)
	for _, m := range ms {
		r := shoal(t, "doctor", "--socket", m.socket())
		if r.code != 0 || !strings.HasPrefix(r.stdout, "healthy: leader "+leader.nodeID) {
			t.Errorf("doctor on %s: exit %d\n%s%s", m.name, r.code, r.stdout, r.stderr)
		}
		for _, other := range ms {
			if !strings.Contains(r.stdout, other.nodeID) {
				t.Errorf("doctor on %s does not list %s:\n%s", m.name, other.name, r.stdout)
			}
		}
	}
	// Over TCP with a client certificate, too; every manager has written
	// its WAL, so each reports how long its fsyncs take.
	r := shoal(t, "doctor", "--host", ms[1].addr, "-o", "json")
	if r.code != 0 || decode[doctorJSON](t, r.stdout).Diagnosis.Status != "healthy" {
		t.Errorf("doctor over TCP: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, m := range decode[doctorJSON](t, r.stdout).Report.Managers {
		if m.Fsync <= 0 {
			t.Errorf("doctor reports no WAL fsync latency for %s", m.NodeID)
		}
	}

	var survivor *managerProc
	for _, m := range ms {
		if m == leader {
			m.kill()
			continue
		}
		if survivor == nil {
			survivor = m
		} else {
			m.kill()
		}
	}
	var d doctorJSON
	var last result
	waitFor(t, 30*time.Second, "the survivor's doctor to see no quorum", func() (bool, string) {
		last = shoal(t, "doctor", "--socket", survivor.socket(), "-o", "json")
		if last.code == 0 || last.stdout == "" {
			return false, last.stdout + last.stderr
		}
		d = decode[doctorJSON](t, last.stdout)
		return strings.Contains(d.Diagnosis.Summary, "no quorum"), last.stdout
	})
	if last.code != 5 {
		t.Errorf("doctor without a quorum exits %d, want 5 (unavailable)", last.code)
	}
	if d.Diagnosis.Status != "unavailable" || !strings.Contains(d.Diagnosis.Summary, "1 of 3 voters answer and a leader needs 2") {
		t.Errorf("diagnosis: %+v", d.Diagnosis)
	}
	if d.Diagnosis.ForceNewCluster == nil || d.Diagnosis.ForceNewCluster.NodeID != survivor.nodeID {
		t.Errorf("doctor names %+v for --force-new-cluster, want the survivor %s", d.Diagnosis.ForceNewCluster, survivor.nodeID)
	}
	if !strings.Contains(d.Diagnosis.Recovery, "--force-new-cluster") || !strings.Contains(d.Diagnosis.Recovery, survivor.nodeID) {
		t.Errorf("recovery %q does not name the survivor and --force-new-cluster", d.Diagnosis.Recovery)
	}
	if len(d.Diagnosis.Problems) != 2 {
		t.Errorf("problems %q, want the two managers that do not answer", d.Diagnosis.Problems)
	}
	text := shoal(t, "doctor", "--socket", survivor.socket())
	for _, want := range []string{"unavailable: no quorum", "no answer", "what to do: bring back 1 voter of"} {
		if !strings.Contains(text.stdout, want) {
			t.Errorf("doctor's text lacks %q:\n%s", want, text.stdout)
		}
	}
	if !strings.Contains(text.stderr, "shoal: unavailable: no quorum") {
		t.Errorf("doctor's error line: %q", text.stderr)
	}
}

// The metrics of a live manager pass promtool's checks.
func TestMetricsPassPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus); .ci/run installs it")
	}
	httpAddr := freeAddr(t)
	m := startManager(t, "m1", shortTempDir(t), "127.0.0.1:0", "--http-addr", httpAddr)
	mustShoal(t, "create", "service", "web", "--socket", m.socket())
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = resp.Body
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
