package bench

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Progress says where a run reports how far it got while it runs.
type Progress struct {
	// W receives the reports; nil: none.
	W io.Writer
	// Terminal redraws one bar in place, several times a second (for a
	// terminal); else a plain line is written every Every.
	Terminal bool
	// Every is the interval of the plain lines; 10 s when 0.
	Every time.Duration
}

// progressRun reports one loop until stop.
type progressRun struct {
	done chan struct{}
	wg   sync.WaitGroup
}

func (p Progress) start(label string, total int64, dur time.Duration, start time.Time, ok, failed *atomic.Int64) *progressRun {
	pr := &progressRun{done: make(chan struct{})}
	if p.W == nil {
		return pr
	}
	every := p.Every
	if p.Terminal {
		every = 200 * time.Millisecond
	} else if every <= 0 {
		every = 10 * time.Second
	}
	pr.wg.Add(1)
	go func() {
		defer pr.wg.Done()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-pr.done:
				if p.Terminal {
					fmt.Fprint(p.W, "\r\033[K")
				}
				return
			case <-tick.C:
				line := progressLine(label, total, dur, time.Since(start), ok.Load(), failed.Load(), p.Terminal)
				if p.Terminal {
					fmt.Fprint(p.W, "\r\033[K"+line)
				} else {
					fmt.Fprintln(p.W, line)
				}
			}
		}
	}()
	return pr
}

func (pr *progressRun) stop() {
	close(pr.done)
	pr.wg.Wait()
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
	const width = 30
	n := int(frac * width)
	return fmt.Sprintf("%s [%s%s] %3.0f%%  %s", label, strings.Repeat("#", n), strings.Repeat(".", width-n), 100*frac, tail)
}
