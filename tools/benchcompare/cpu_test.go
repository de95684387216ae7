package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// statLine is a /proc/PID/stat line of a process named comm with the
// given utime and stime, the other fields as the kernel writes them.
func statLine(comm string, utime, stime int) string {
	return fmt.Sprintf("4242 (%s) S 1 4242 4242 0 -1 4194560 1523 0 0 0 %d %d 0 0 20 0 9 0 195928 1450000384 25600 "+
		"18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n", comm, utime, stime)
}

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name         string
		stat         string
		user, system time.Duration
		err          string
	}{
		{"plain name", statLine("shoal", 250, 40), 2500 * time.Millisecond, 400 * time.Millisecond, ""},
		{"name with spaces", statLine("my etcd 1", 7, 3), 70 * time.Millisecond, 30 * time.Millisecond, ""},
		// A name that closes its parenthesis early and holds numbers: counted
		// from the first ')', utime would be read from inside the name.
		{"name with parentheses", statLine("a) R 1 2 (b", 12, 5), 120 * time.Millisecond, 50 * time.Millisecond, ""},
		{"name of only parentheses", statLine(")) ((", 1, 0), 10 * time.Millisecond, 0, ""},
		{"never ran", statLine("x", 0, 0), 0, 0, ""},
		{"no name", "4242 S 1 4242", 0, 0, "without a (command name)"},
		{"cut short", "4242 (shoal) S 1 4242 4242 0 -1 4194560 1523 0 0 0 250", 0, 0, "12 fields after the command name, want at least 13"},
		{"not a number", strings.Replace(statLine("shoal", 250, 40), " 250 ", " x ", 1), 0, 0, "field 14 (utime)"},
		{"empty", "", 0, 0, "without a (command name)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, system, err := parseStatCPU(tt.stat)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one holding %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if user != tt.user || system != tt.system {
				t.Errorf("user %v system %v, want %v %v", user, system, tt.user, tt.system)
			}
		})
	}
}

// TestProcCPUOfARunningChild reads /proc/PID/stat of a real child whose
// command name holds spaces and parentheses, busy until its CPU time shows.
func TestProcCPUOfARunningChild(t *testing.T) {
	shell := "/bin/sh"
	if _, err := os.Stat(shell); err != nil {
		t.Skipf("no %s to run a busy child: %v", shell, err)
	}
	dir := t.TempDir()
	odd := filepath.Join(dir, "a) b (c")
	if err := os.Symlink(shell, odd); err != nil {
		t.Fatal(err)
	}
	ps := &procs{}
	t.Cleanup(ps.stopAll)
	p, err := ps.start("busy", filepath.Join(dir, "busy.log"), odd, "-c", "while :; do :; done")
	if err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(stat), "(a) b (c)") {
		t.Fatalf("the child is not named a) b (c: %s", stat)
	}
	var last time.Duration
	if err := poll(context.Background(), time.Minute, 20*time.Millisecond, "the child's CPU time to reach 50 ms", func(context.Context) error {
		d, err := p.cpu()
		if err != nil {
			return err
		}
		if d < last {
			return fmt.Errorf("CPU time went back from %v to %v", last, d)
		}
		last = d
		if d < 50*time.Millisecond {
			return fmt.Errorf("CPU time %v", d)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := perProc([]*proc{p, p}, (*proc).cpu); err != nil {
		t.Fatal(err)
	}
}

func TestCPUCost(t *testing.T) {
	start := time.Unix(1000, 0)
	before := cpuSample{at: start, members: []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}, self: 5 * time.Second}
	after := cpuSample{at: start.Add(2 * time.Second),
		members: []time.Duration{1500 * time.Millisecond, 3 * time.Second, 3500 * time.Millisecond}, self: 8 * time.Second}
	c, err := before.cost(after, 1000, 1)
	if err != nil {
		t.Fatal(err)
	}
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-9 {
			t.Errorf("%s %v, want %v", what, got, want)
		}
	}
	// 0.5 + 1 + 0.5 s over 1000 operations; the leader (member 1) spent 1 s of 2.
	near("cpu_us_per_op", c.CPUUsPerOp, 2000)
	near("leader share", c.LeaderCPUShare, 0.5)
	near("client us per op", c.ClientCPUUsPerOp, 3000)
	near("client CPUs", c.ClientCPUs, 1.5)
	for i, want := range []float64{500, 1000, 500} {
		near(fmt.Sprintf("member %d us per op", i), c.MemberCPUUsPerOp[i], want)
		near(fmt.Sprintf("member %d s", i), c.MemberCPUS[i], want/1000)
	}
	if c.Leader != 1 {
		t.Errorf("leader %d", c.Leader)
	}

	if c, err := before.cost(before, 0, 0); err != nil || c.CPUUsPerOp != 0 || c.LeaderCPUShare != 0 || c.ClientCPUs != 0 {
		t.Errorf("no operation, no time: %+v, %v", c, err)
	}
	for _, leader := range []int{-1, 3} {
		if _, err := before.cost(after, 1000, leader); err == nil {
			t.Errorf("leader %d accepted", leader)
		}
	}
	if _, err := before.cost(cpuSample{members: after.members[:2]}, 1000, 0); err == nil {
		t.Error("samples of 3 and 2 members accepted")
	}
}
