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
