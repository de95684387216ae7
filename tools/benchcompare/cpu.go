package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTicksPerSecond is the unit of utime and stime in /proc/PID/stat,
// sysconf(_SC_CLK_TCK), the kernel's USER_HZ: Linux exports 100 on every
// architecture it still supports, whatever its internal HZ.
const clockTicksPerSecond = 100

// cpu reads the user and system CPU time the process has used so far, all
// its threads together, at the 10 ms resolution of /proc/PID/stat.
// getrusage cannot see a child that has not exited, so /proc it is.
func (p *proc) cpu() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("CPU time of %s: %w", p.name, err)
	}
	user, system, err := parseStatCPU(string(b))
	if err != nil {
		return 0, fmt.Errorf("CPU time of %s: %w", p.name, err)
	}
	return user + system, nil
}

// parseStatCPU returns utime and stime, fields 14 and 15 of a
// /proc/PID/stat line. Field 2 is the command name in parentheses, which
// may itself hold spaces and parentheses ("(a) b)"); the kernel writes no
// ')' after it, so the fields are counted from the last one.
func parseStatCPU(stat string) (user, system time.Duration, err error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 || !strings.Contains(stat[:end], "(") {
		return 0, 0, fmt.Errorf("/proc stat line without a (command name): %.60q", stat)
	}
	fields := strings.Fields(stat[end+1:])
	// fields[0] is field 3 (the state), so field n is fields[n-3].
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, 0, fmt.Errorf("/proc stat line with %d fields after the command name, want at least %d: %.60q",
			len(fields), stime+1, stat)
	}
	var ticks [2]uint64
	for i, f := range []int{utime, stime} {
		if ticks[i], err = strconv.ParseUint(fields[f], 10, 64); err != nil {
			return 0, 0, fmt.Errorf("/proc stat field %d (%s): %w", f+3, []string{"utime", "stime"}[i], err)
		}
	}
	return ticksToDuration(ticks[0]), ticksToDuration(ticks[1]), nil
}

func ticksToDuration(t uint64) time.Duration {
	return time.Duration(t) * (time.Second / clockTicksPerSecond)
}

// selfCPU is the user and system CPU time this process (the load
// generator) has used so far.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// cpuSample is the CPU time used so far by each member of a system and by
// this process, at one moment.
type cpuSample struct {
	at      time.Time
	members []time.Duration
	self    time.Duration
}

func sampleCPU(members []*proc) (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	var err error
	if s.members, err = perProc(members, (*proc).cpu); err != nil {
		return s, err
	}
	s.self, err = selfCPU()
	return s, err
}

// cpuCost is what a run cost in CPU: the members' user+system time and the
// load generator's, per operation (succeeded or failed). It is embedded in
// the records of the runs and of the fill.
type cpuCost struct {
	// CPUUsPerOp is summed over the three members; MemberCPUUsPerOp and
	// MemberCPUS are each member's, in the order of the system's members.
	CPUUsPerOp       float64   `json:"cpu_us_per_op"`
	MemberCPUUsPerOp []float64 `json:"member_cpu_us_per_op"`
	MemberCPUS       []float64 `json:"member_cpu_s"`
	// Leader is the index of the member that led at the start of the run;
	// LeaderCPUShare its part of the members' CPU time, 0 to 1.
	Leader         int     `json:"leader_member"`
	LeaderCPUShare float64 `json:"leader_cpu_share"`
	// ClientCPUUsPerOp is the load generator's CPU per operation,
	// ClientCPUs its CPU time per second of the run (2 is both CPUs of a
	// 2-CPU machine busy).
	ClientCPUUsPerOp float64 `json:"client_cpu_us_per_op"`
	ClientCPUs       float64 `json:"client_cpus"`
}

// cost is the CPU spent from before to after, over ops operations, leader
// being the index of the member that led.
func (before cpuSample) cost(after cpuSample, ops int64, leader int) (cpuCost, error) {
	if len(before.members) != len(after.members) || leader < 0 || leader >= len(after.members) {
		return cpuCost{}, fmt.Errorf("CPU samples of %d and %d members, leader %d", len(before.members), len(after.members), leader)
	}
	c := cpuCost{Leader: leader}
	perOp := func(d time.Duration) float64 {
		if ops <= 0 {
			return 0
		}
		return float64(d) / float64(time.Microsecond) / float64(ops)
	}
	var sum time.Duration
	for i := range after.members {
		d := after.members[i] - before.members[i]
		sum += d
		c.MemberCPUUsPerOp = append(c.MemberCPUUsPerOp, perOp(d))
		c.MemberCPUS = append(c.MemberCPUS, d.Seconds())
	}
	c.CPUUsPerOp = perOp(sum)
	if sum > 0 {
		c.LeaderCPUShare = float64(after.members[leader]-before.members[leader]) / float64(sum)
	}
	self := after.self - before.self
	c.ClientCPUUsPerOp = perOp(self)
	if wall := after.at.Sub(before.at); wall > 0 {
		c.ClientCPUs = float64(self) / float64(wall)
	}
	return c, nil
}
