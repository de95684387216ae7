package watch

import (
	"fmt"
	"log/slog"
)

// Config configures a Queue.
type Config struct {
	// History is how many events the queue retains, counted in events (not
	// versions). It bounds both how far back a new watch may start and how
	// far a watcher may fall behind before it is cut off. Memory is History
	// times the size of an event. Default 10000; at least 1.
	History int
	// HistoryBytes, when above 0, also bounds the retained events by
	// size: the oldest are dropped while the sizes of those retained
	// (as the size function given to NewSizedQueue counts them) would
	// add up to more. The newest event is always retained. Events may be
	// large (a changed object, spec and all), and History of them could
	// otherwise hold gigabytes. Default 0: no bound.
	HistoryBytes int64
	// Logger receives the queue's rare notices. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{History: 10000}
}

// Validate reports the first field that is out of range.
func (c Config) Validate() error {
	if c.History < 1 {
		return fmt.Errorf("watch: History %d must be at least 1", c.History)
	}
	if c.HistoryBytes < 0 {
		return fmt.Errorf("watch: HistoryBytes %d must not be negative (0: no bound)", c.HistoryBytes)
	}
	return nil
}
