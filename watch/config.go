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
	return nil
}
