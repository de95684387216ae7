package gcpace

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"

	"go.uber.org/goleak"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	p := Default(nil)
	for _, tc := range []struct {
		live uint64
		want int
	}{
		{0, 100},
		{10 * mib, 100},
		{256 * mib, 100}, // the floor is the live heap: as GOGC 100
		{300 * mib, 85},  // the floor
		{400 * mib, 64},  // the floor
		{512 * mib, 50},  // the floor is half the live heap
		{600 * mib, 50},  // half the live heap
		{4096 * mib, 50}, // never below MinPercent
	} {
		if got := p.Percent(tc.live); got != tc.want {
			t.Errorf("Percent(%d MiB) = %d, want %d", tc.live/mib, got, tc.want)
		}
	}
}

// TestIdle: memory is given back once, after a burst and the given number
// of quiet intervals, and again only after another burst.
func TestIdle(t *testing.T) {
	const mib = 1 << 20
	p := &Pacer{IdleBytes: 4 * mib, IdleIntervals: 3, ReleaseAfter: 100 * mib}
	s := newPaceState()
	for i, tc := range []struct {
		allocated uint64
		want      bool
	}{
		{1 * mib, false},   // quiet, but nothing to give back yet
		{200 * mib, false}, // a burst
		{1 * mib, false},
		{3 * mib, false},
		{2 * mib, true}, // the third quiet interval
		{1 * mib, false},
		{1 * mib, false}, // still idle: given back once only
		{1 * mib, false},
		{50 * mib, false}, // a burst too small to give back after
		{1 * mib, false},
		{1 * mib, false},
		{1 * mib, false},
		{60 * mib, false}, // with the one before, enough
		{1 * mib, false},
		{5 * mib, false}, // not quiet: the count starts again
		{1 * mib, false},
		{1 * mib, false},
		{1 * mib, true},
	} {
		if got := p.idle(s, tc.allocated); got != tc.want {
			t.Fatalf("interval %d (%d MiB allocated): idle = %v, want %v", i, tc.allocated/mib, got, tc.want)
		}
	}
	if (&Pacer{}).idle(newPaceState(), 1<<40) {
		t.Error("a Pacer without IdleIntervals gave memory back")
	}
}

// TestStepLowersGOGCAfterACollection: once a collection has measured a live
// heap well above the floor, a step lowers GOGC.
func TestStepLowersGOGCAfterACollection(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	live := make([]byte, 64<<20)
	p := &Pacer{Floor: 1 << 20, MinPercent: 20}
	s := newPaceState()
	log := slog.New(slog.DiscardHandler)

	runtime.GC()
	if !p.step(s, log) {
		t.Skip("the runtime reports no live heap")
	}
	if got := debug.SetGCPercent(100); got != 20 {
		t.Fatalf("GOGC %d after a collection with 64 MiB live and a 1 MiB floor, want 20", got)
	}
	runtime.KeepAlive(live)
}

// TestRunRestoresGOGC: Run stops with its context and leaves GOGC as it
// found it.
func TestRunRestoresGOGC(t *testing.T) {
	defer goleak.VerifyNone(t)
	if name := Configured(); name != "" {
		t.Skipf("%s is set: the pacer does not run", name)
	}
	before := debug.SetGCPercent(70)
	defer debug.SetGCPercent(before)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Default(nil).Run(ctx)
	}()
	cancel()
	<-done
	if got := debug.SetGCPercent(before); got != 70 {
		t.Fatalf("after Run: GOGC %d, want the 70 it found", got)
	}
}
