package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/watch"
)

// Store is the replicated object store of one manager. See the package
// documentation for the contracts of its parts.
type Store struct {
	cfg      Config
	log      *slog.Logger
	proposer Proposer

	// applyMu serialises Apply, Snapshot and Restore. The Raft node calls
	// them from one goroutine anyway; the lock makes a second caller
	// harmless. Readers and proposers never take it.
	applyMu sync.Mutex
	// work is what Apply writes, under applyMu: a clone of cur's tables,
	// or their next version. Readers never see it.
	work tables
	// requestIndex finds the requests work remembers by ID: written by
	// Apply and Restore under applyMu and reqMu, read under reqMu.
	reqMu        sync.RWMutex
	requestIndex map[string]uint64
	// cur is the last version published, replaced by every Apply and
	// Restore; a reader loads it once per transaction and keeps it.
	cur    atomic.Pointer[state]
	events *watch.Queue[Event]
}

// New returns an empty store at version 0. p is how Update and Batch get
// changes agreed; it may be nil for a store that only applies entries
// (Update then fails with ErrNoProposer).
func New(cfg Config, p Proposer) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	events, err := watch.NewSizedQueue(watch.Config{History: cfg.WatchHistory, HistoryBytes: cfg.WatchHistoryBytes, Logger: log},
		func(ev Event) int { return ev.size })
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, log: log, proposer: p, events: events, requestIndex: map[string]uint64{}}
	s.publish(&state{tables: newTables()})
	return s, nil
}

// publish makes st the state readers see, and keeps a clone of its tables
// for the next Apply to write.
func (s *Store) publish(st *state) {
	// Clone writes to the trees' headers: done before any reader can see
	// them.
	s.work = st.tables.clone()
	s.cur.Store(st)
}

// Close ends every watcher with watch.ErrClosed. Reads, Apply and Restore
// still work afterwards; new watches fail.
func (s *Store) Close() {
	s.events.Close()
}

// View runs fn with a read transaction: one consistent state of the store,
// as of the last entry applied when View started, which later Applies and
// Restores do not change. It takes no lock that Apply waits for, so any
// number of Views may run alongside applying. tx must not be used after fn
// returns. The objects it returns are the caller's (see ReadTx).
func (s *Store) View(fn func(tx ReadTx)) {
	fn(&readTx{st: s.cur.Load()})
}

// Version returns the Raft index of the last entry applied, accepted or
// rejected, or of the snapshot last restored.
func (s *Store) Version() uint64 {
	return s.cur.Load().index
}

// Hash returns a digest of every object (all fields, the versions and
// times included) and of the remembered requests, and the version of the
// state it digests. Two stores hold
// the same objects if and only if (short of a SHA-256 collision) their
// hashes are equal. The applied index is left out of the digest on
// purpose: a manager restored from a snapshot may have skipped entries
// that changed no object (configuration changes) and still be identical.
func (s *Store) Hash() (version uint64, sum string) {
	st := s.cur.Load()
	h := sha256.New()
	// A blob is the object's deterministic encoding.
	var n [binary.MaxVarintLen64]byte
	write := func(blob string) bool {
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(blob)))])
		h.Write(bytesOf(blob))
		return true
	}
	st.ids.Ascend(func(e byID) bool { return write(e.blob) })
	h.Write([]byte{0}) // no blob is empty: the requests follow
	st.requests.Ascend(func(r remembered) bool { return write(r.blob) })
	return st.index, hex.EncodeToString(h.Sum(nil))
}

// Dump writes every object, one line each, sorted by kind and name, in a
// stable text form meant for comparing stores in tests and by eye. The
// first line is the version.
func (s *Store) Dump(w io.Writer) error {
	st := s.cur.Load()
	if _, err := fmt.Fprintf(w, "version %d\n", st.index); err != nil {
		return err
	}
	var err error
	st.names.Ascend(func(e byName) bool {
		_, err = io.WriteString(w, dumpLine(decode(e.blob))+"\n")
		return err == nil
	})
	return err
}

func dumpLine(o *api.Object) string {
	keys := make([]string, 0, len(o.GetLabels()))
	for k := range o.GetLabels() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var labels strings.Builder
	for i, k := range keys {
		if i > 0 {
			labels.WriteByte(',')
		}
		fmt.Fprintf(&labels, "%s=%q", k, o.GetLabels()[k])
	}
	return fmt.Sprintf("%s/%s id=%s version=%d labels={%s} spec=%q created=%s updated=%s",
		o.GetKind(), o.GetName(), o.GetId(), o.GetVersion(), labels.String(), o.GetSpec(),
		o.GetCreatedAt().AsTime().Format("2006-01-02T15:04:05.999999999Z"),
		o.GetUpdatedAt().AsTime().Format("2006-01-02T15:04:05.999999999Z"))
}
