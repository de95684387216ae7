package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress says where a run reports how far it got while it runs. Other
// long commands of the CLI (a backup) draw their progress with it too.
type Progress struct {
	// W receives the reports; nil: none.
	W io.Writer
	// Terminal redraws one bar in place, several times a second (for a
	// terminal); else a plain line is written every Every.
	Terminal bool
	// Every is the interval of the plain lines; 10 s when 0.
	Every time.Duration
}

// Start reports progress until the returned function is called: the line
// line returns, given the time since Start and whether it is drawn as a
// bar (on a terminal, where it is cleared at the end).
func (p Progress) Start(line func(elapsed time.Duration, bar bool) string) (stop func()) {
	if p.W == nil {
		return func() {}
	}
	every := p.Every
	if p.Terminal {
		every = 200 * time.Millisecond
	} else if every <= 0 {
		every = 10 * time.Second
	}
	start := time.Now()
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-done:
				if p.Terminal {
					fmt.Fprint(p.W, "\r\033[K")
				}
				return
			case <-tick.C:
				l := line(time.Since(start), p.Terminal)
				if p.Terminal {
					fmt.Fprint(p.W, "\r\033[K"+l)
				} else {
					fmt.Fprintln(p.W, l)
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// Bar is a progress bar: label, a bar of how much (0 to 1) is done, the
// percentage, and tail.
func Bar(label string, frac float64, tail string) string {
	frac = max(0, min(1, frac))
	const width = 30
	n := int(frac * width)
	return fmt.Sprintf("%s [%s%s] %3.0f%%  %s", label, strings.Repeat("#", n), strings.Repeat(".", width-n), 100*frac, tail)
}

// start reports one loop of a run until its stop.
func (p Progress) start(label string, total int64, dur time.Duration, ok, failed *atomic.Int64) (stop func()) {
	return p.Start(func(elapsed time.Duration, bar bool) string {
		return progressLine(label, total, dur, elapsed, ok.Load(), failed.Load(), bar)
	})
}

// progressLine describes a loop that has run for elapsed; with bar, as a
// bar of how much of the total (or of the duration) is done.
func progressLine(label string, total int64, dur, elapsed time.Duration, ok, failed int64, bar bool) string {
	var frac float64
	var count string
	switch {
	case total > 0:
		frac = float64(ok+failed) / float64(total)
		count = fmt.Sprintf("%d/%d", ok+failed, total)
	case dur > 0:
		frac = elapsed.Seconds() / dur.Seconds()
		count = fmt.Sprintf("%d", ok+failed)
	}
	frac = max(0, min(1, frac))
	rate := 0.0
	if elapsed > 0 {
		rate = float64(ok) / elapsed.Seconds()
	}
	tail := fmt.Sprintf("%s ops, %.0f/s, %d errors, %s", count, rate, failed, elapsed.Round(100*time.Millisecond))
	if !bar {
		return fmt.Sprintf("bench %s: %3.0f%%, %s", label, 100*frac, tail)
	}
	return Bar(label, frac, tail)
}
