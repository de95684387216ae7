package store

import (
	"io"
)

// What a backup needs of the store (package backup owns the file): a
// captured state, to stream as a snapshot with its index and counts, and
// the checks Restore makes, run without a Store, for a backup being
// inspected or restored.

// Capture is one state of the store, captured for a backup: O(1) to take,
// and unchanged by later Applies and Restores.
type Capture struct {
	st *state
}

// Capture captures the store as of the last entry applied: what Snapshot
// writes.
func (s *Store) Capture() *Capture {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return &Capture{st: s.cur.Load()}
}

// Index is the Raft index of the state captured: every object's version
// is at most this.
func (c *Capture) Index() uint64 { return c.st.index }

// Objects counts the captured objects per kind, and adds up the bytes of
// their encodings (about what WriteSnapshot writes, without its framing).
func (c *Capture) Objects() (perKind map[string]uint64, bytes uint64) {
	return countObjects(c.st)
}

// WriteSnapshot writes the captured state to w as a snapshot stream,
// exactly as Snapshot's function does. It may run on any goroutine, and
// more than once.
func (c *Capture) WriteSnapshot(w io.Writer) error { return writeSnapshot(w, c.st) }

// SnapshotContents is a snapshot stream read and checked without a Store.
type SnapshotContents struct {
	st *state
}

// CheckSnapshot reads the snapshot stream in r to its end and checks it as
// Restore(index, r) would (framing, CRC-32C, object count, every object's
// validity and version, unique ids and names), without a Store. An error
// wraps ErrCorruptSnapshot. The contents it returns hold every object in
// memory, as a restored store would.
func CheckSnapshot(index uint64, r io.Reader) (*SnapshotContents, error) {
	t, _, err := readSnapshot(index, r)
	if err != nil {
		return nil, err
	}
	return &SnapshotContents{st: &state{index: index, tables: t}}, nil
}

// Objects counts the objects per kind.
func (c *SnapshotContents) Objects() map[string]uint64 {
	perKind, _ := countObjects(c.st)
	return perKind
}

// View runs fn with a read transaction of the contents, as Store.View
// does; its Version is the index given to CheckSnapshot.
func (c *SnapshotContents) View(fn func(tx ReadTx)) {
	fn(&readTx{st: c.st})
}

func countObjects(st *state) (perKind map[string]uint64, bytes uint64) {
	perKind = map[string]uint64{}
	st.names.Ascend(func(e byName) bool {
		perKind[e.kind()]++
		bytes += uint64(len(e.blob))
		return true
	})
	return perKind, bytes
}
