package store

import (
	"fmt"
	"log/slog"
	"time"
)

// Hard limits. Config values may not exceed them, and Apply and Restore
// enforce them instead of the local Config: managers may run with
// different Configs, and an entry must be accepted or rejected alike on
// every one of them.
const (
	HardMaxObjectBytes = 16 << 20
	HardMaxActions     = 100_000
	HardMaxTxBytes     = 64 << 20
)

// Config configures a Store. The limits are checked before anything is
// proposed, so that an oversized change fails fast with ErrTooLarge and
// never reaches the Raft log.
type Config struct {
	// MaxObjectBytes is the largest encoded size of one object, in bytes.
	// Default 1 MiB.
	MaxObjectBytes int
	// MaxActions is the most creates, updates and deletes one transaction
	// (one Raft entry) may hold. Default 1000.
	MaxActions int
	// MaxTxBytes is the largest encoded size of one transaction (the Raft
	// entry's payload), in bytes. It must leave room for MaxObjectBytes
	// plus framing. Default 1.5 MiB, which keeps an entry well inside the
	// 4 MiB gRPC message limit the Raft transport lives with.
	MaxTxBytes int
	// WatchHistory is how many events are kept for watchers that resume
	// from an earlier version or fall behind. Default 10000.
	WatchHistory int
	// WatchHistoryBytes also bounds those events, by the size of the
	// objects they hold: 10,000 changes of objects of 1 MiB would
	// otherwise keep 10 GiB alive. Default 64 MiB; 0: no bound.
	WatchHistoryBytes int64
	// Now stamps created_at and updated_at on the proposing manager.
	// Default time.Now; tests inject a clock.
	Now func() time.Time
	// Logger receives the store's logs. Nil discards them.
	Logger *slog.Logger
}

// txOverhead is what framing one object as an action within an entry can
// add: tags, lengths and the expected version.
const txOverhead = 64

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	return Config{
		MaxObjectBytes:    1 << 20,
		MaxActions:        1000,
		MaxTxBytes:        3 << 19,
		WatchHistory:      10000,
		WatchHistoryBytes: 64 << 20,
		Now:               time.Now,
	}
}

// Validate reports the first field that is out of range, naming its value.
func (c Config) Validate() error {
	switch {
	case c.MaxObjectBytes < 1 || c.MaxObjectBytes > HardMaxObjectBytes:
		return fmt.Errorf("store: MaxObjectBytes %d must be in [1, %d]", c.MaxObjectBytes, HardMaxObjectBytes)
	case c.MaxActions < 1 || c.MaxActions > HardMaxActions:
		return fmt.Errorf("store: MaxActions %d must be in [1, %d]", c.MaxActions, HardMaxActions)
	case c.MaxTxBytes < 1 || c.MaxTxBytes > HardMaxTxBytes:
		return fmt.Errorf("store: MaxTxBytes %d must be in [1, %d]", c.MaxTxBytes, HardMaxTxBytes)
	case c.MaxTxBytes < c.MaxObjectBytes+txOverhead:
		return fmt.Errorf("store: MaxTxBytes %d must be at least MaxObjectBytes %d + %d, or a largest object could never be written",
			c.MaxTxBytes, c.MaxObjectBytes, txOverhead)
	case c.WatchHistory < 1:
		return fmt.Errorf("store: WatchHistory %d must be at least 1", c.WatchHistory)
	case c.WatchHistoryBytes < 0:
		return fmt.Errorf("store: WatchHistoryBytes %d must not be negative (0: no bound)", c.WatchHistoryBytes)
	case c.Now == nil:
		return fmt.Errorf("store: Now must be set (time.Now by default)")
	}
	return nil
}
