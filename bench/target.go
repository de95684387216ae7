package bench

import "context"

// A Target is one connection to the store under measure; Run dials
// Config.Conns of them and shares them among Config.Clients callers, so
// every method must be safe for concurrent use.
//
// Errors should carry a gRPC status (status.Code reads them): the report
// counts errors by code. An error that does not is counted as Unknown.
type Target interface {
	// Create writes val under a key that does not exist yet: the names of
	// a fill, and of a put with KeySpace 0. A target whose store makes no
	// difference between creating and replacing may just write it. A key
	// that exists may fail with codes.AlreadyExists, which a fill takes as
	// done.
	Create(ctx context.Context, key string, val []byte) error
	// Put replaces the value of key, which exists (the names of a put with
	// a KeySpace, all created before the measured run).
	Put(ctx context.Context, key string, val []byte) error
	// Get reads key, as the target was configured to (linearizable or
	// serializable, say).
	Get(ctx context.Context, key string) error
	// Close ends the connection.
	Close() error
}

// A Dialer opens the conn-th connection of a run (0, 1, ... Conns-1), so
// that a dialer can spread connections over several servers.
type Dialer func(ctx context.Context, conn int) (Target, error)

// A Transactor is a Target that can write several keys all-or-nothing in
// one request, for Txn runs.
type Transactor interface {
	// Txn writes val under every key in one transaction. fresh says the
	// keys are new (create them), else they exist (replace them).
	Txn(ctx context.Context, keys []string, val []byte, fresh bool) error
}

// A Watchable is a Target that can stream the changes of keys, for Watch
// runs.
type Watchable interface {
	// Watch starts watching every key that begins with prefix, from the
	// next change on; it returns once the server accepted the watch, so
	// no change made after it returns is missed.
	Watch(ctx context.Context, prefix string) (WatchStream, error)
}

// A WatchStream delivers the changes of a watch in order.
type WatchStream interface {
	// Next blocks until the next creation or replacement of a watched key
	// and returns the key and its new value; deletions are skipped. It
	// fails once the watch ended.
	Next() (key string, val []byte, err error)
	// Close ends the watch; it may be called from any goroutine.
	Close()
}
