package watch

import "errors"

// Errors returned by Queue and Watcher. Every error but ErrOutOfOrder ends
// a watch for good; ErrCompacted, ErrLagged and ErrReset mean "list again,
// then watch from the version of that list".
var (
	// ErrCompacted means the events after the requested version are no
	// longer all retained.
	ErrCompacted = errors.New("watch: requested version is compacted, list again")
	// ErrLagged means the watcher fell so far behind that events it had not
	// read were dropped from the history.
	ErrLagged = errors.New("watch: watcher fell behind and missed events, list again")
	// ErrReset means the history was replaced (the store was restored from
	// a snapshot), so no event sequence leads from what the watcher saw to
	// the new state.
	ErrReset = errors.New("watch: state was replaced, list again")
	// ErrClosed means the watcher or its queue was closed.
	ErrClosed = errors.New("watch: closed")
	// ErrOutOfOrder means Publish was given a version not above the last
	// one; nothing was published.
	ErrOutOfOrder = errors.New("watch: version not increasing")
)
