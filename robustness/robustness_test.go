package robustness

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// seed returns the seed of this test: -seed, or a random one; logged.
func seed() uint64 {
	s := uint64(*flagSeed)
	if s == 0 {
		s = rand.Uint64() >> 1 // fits an int64 flag
	}
	return s
}

// The short profile: a few runs, each with different faults, within the
// normal test command, with parameters from the seed. It uses the
// quicker faults of the catalogue; the long profile draws from all.
func TestShortProfile(t *testing.T) {
	s := seed()
	t.Logf("seed %d (repeat: go test ./robustness/ -run ShortProfile -count=1 -args -seed %d)", s, s)
	duration := 18 * time.Second
	if *flagDuration > 0 {
		duration = *flagDuration
	}
	runs := []struct {
		name   string
		faults []string
	}{
		{"leader-faults", []string{"kill-leader", "pause-leader", "one-way-from-leader", "demote-leader", "partition-leader"}},
		{"catch-up-and-membership", []string{"snapshot-catch-up", "member-replace", "concurrent-join", "join-crash-answered", "delay", "drop-connections"}},
		{"crash-points", []string{"crash-point", "wipe-raft-state", "join-crash-wal-created", "kill-follower", "learner-catch-up", "partition-random", "one-way-to-leader"}},
	}
	for i, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			cfg := runConfig{seed: s + uint64(i), managers: 3, clients: 4, watchers: 2, keys: 10,
				duration: duration, faults: r.faults, budget: 20 * time.Second}
			runOnce(t, cfg, fmt.Sprintf("go test ./robustness/ -run 'ShortProfile/%s' -count=1 -args -seed %d", r.name, s))
		})
	}
}

// The long profile: -runs runs (0 skips it), each with two to four
// faults drawn from the whole catalogue, on 3 or 5 managers.
func TestLongProfile(t *testing.T) {
	if *flagRuns <= 0 {
		t.Skip("the long profile runs with -runs N (make robustness)")
	}
	s := seed()
	duration := 30 * time.Second
	if *flagDuration > 0 {
		duration = *flagDuration
	}
	var only []string
	if *flagFaults != "" {
		only = strings.Split(*flagFaults, ",")
		for _, name := range only {
			if _, ok := faults[name]; !ok {
				t.Fatalf("-faults: no fault %q; the catalogue: %s", name, strings.Join(faultNames, ", "))
			}
		}
	}
	t.Logf("seed %d, %d runs of %v", s, *flagRuns, duration)
	var totals struct {
		ops, checked, unknown, failed, violations int
		faults, crashes, restores, resumes        int
		injected                                  map[string]int
	}
	totals.injected = map[string]int{}
	for i := 0; i < *flagRuns; i++ {
		runSeed := s + uint64(i)
		rng := rand.New(rand.NewPCG(runSeed, 0xfa17))
		picked := make([]string, 2+rng.IntN(3))
		for j := range picked {
			picked[j] = faultNames[rng.IntN(len(faultNames))]
		}
		if only != nil {
			picked = only
		}
		managers := 3
		if rng.IntN(4) == 0 {
			managers = 5
		}
		cfg := runConfig{seed: runSeed, managers: managers, clients: managers + 1, watchers: 2, keys: 10,
			duration: duration, faults: picked, budget: 2 * time.Minute}
		ok := t.Run(fmt.Sprintf("run-%d-seed-%d", i, runSeed), func(t *testing.T) {
			repeat := fmt.Sprintf("go test ./robustness/ -run 'LongProfile' -count=1 -timeout 0 -args -runs 1 -seed %d", runSeed)
			if *flagDuration > 0 {
				repeat += " -run-duration " + flagDuration.String()
			}
			if only != nil {
				repeat += " -faults " + *flagFaults
			}
			rep := runOnce(t, cfg, repeat)
			for name, n := range rep.Injected {
				totals.injected[name] += n
			}
			totals.ops += rep.Ops["total"]
			totals.checked += rep.Checked
			for k, n := range rep.Ops {
				if strings.HasSuffix(k, " unknown") {
					totals.unknown += n
				}
			}
			totals.faults += len(rep.Notes)
			totals.restores += rep.Restores
			totals.crashes += rep.Crashes
			totals.resumes += int(rep.Resumes)
			totals.violations += rep.Violations
		})
		if !ok {
			totals.failed++
		}
	}
	var injected []string
	for _, name := range faultNames {
		if n := totals.injected[name]; n > 0 {
			injected = append(injected, fmt.Sprintf("%s %d", name, n))
		}
	}
	t.Logf("long profile, seed %d: %d runs, %d failed; %d operations (%d of unknown outcome), %d checked; faults injected: %s; %d fault steps, %d crash points reached, %d snapshots restored (received or at restart), %d watch resumptions; %d violations",
		s, *flagRuns, totals.failed, totals.ops, totals.unknown, totals.checked, strings.Join(injected, ", "), totals.faults, totals.crashes, totals.restores, totals.resumes, totals.violations)
}
