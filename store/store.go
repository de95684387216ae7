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

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/proto"

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
	// db is replaced whole by Restore; readers load it once per
	// transaction and keep the version they loaded.
	db     atomic.Pointer[memdb.MemDB]
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
	events, err := watch.NewQueue[Event](watch.Config{History: cfg.WatchHistory, Logger: log})
	if err != nil {
		return nil, err
	}
	db, err := newDB(0)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, log: log, proposer: p, events: events}
	s.db.Store(db)
	return s, nil
}

// newDB returns an empty database whose applied index is index.
//
// It is a go-memdb "snapshot" rather than the primary database: the two
// differ only in that the primary tracks every changed radix node so as to
// close its watch channels on commit. The store never uses those channels
// (package watch serves watchers), and the tracking costs a walk of the
// whole tree when a large transaction commits, as Restore's does.
func newDB(index uint64) (*memdb.MemDB, error) {
	primary, err := memdb.NewMemDB(newSchema())
	if err != nil {
		return nil, fmt.Errorf("store: schema: %w", err)
	}
	db := primary.Snapshot()
	txn := db.Txn(true)
	if err := setAppliedIndex(txn, index); err != nil {
		txn.Abort()
		return nil, fmt.Errorf("store: %w", err)
	}
	txn.Commit()
	return db, nil
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
// returns. The objects it returns are shared and must not be modified
// (clone them with proto.Clone first).
func (s *Store) View(fn func(tx ReadTx)) {
	fn(&readTx{txn: s.db.Load().Txn(false)})
}

// Version returns the Raft index of the last entry applied, accepted or
// rejected, or of the snapshot last restored.
func (s *Store) Version() uint64 {
	return appliedIndex(s.db.Load().Txn(false))
}

// Hash returns a digest of every object (all fields, the versions and
// times included) and the version of the state it digests. Two stores hold
// the same objects if and only if (short of a SHA-256 collision) their
// hashes are equal. The applied index is left out of the digest on
// purpose: a manager restored from a snapshot may have skipped entries
// that changed no object (configuration changes) and still be identical.
func (s *Store) Hash() (version uint64, sum string) {
	txn := s.db.Load().Txn(false)
	h := sha256.New()
	var buf []byte
	opts := proto.MarshalOptions{Deterministic: true}
	it, err := txn.Get(tableObjects, indexID)
	if err != nil {
		panic(fmt.Sprintf("store: id index: %v", err)) // the schema has it
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		var err error
		buf, err = opts.MarshalAppend(buf[:0], raw.(*api.Object))
		if err != nil {
			panic(fmt.Sprintf("store: encoding a stored object: %v", err))
		}
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(buf)))])
		h.Write(buf)
	}
	return appliedIndex(txn), hex.EncodeToString(h.Sum(nil))
}

// Dump writes every object, one line each, sorted by kind and name, in a
// stable text form meant for comparing stores in tests and by eye. The
// first line is the version.
func (s *Store) Dump(w io.Writer) error {
	txn := s.db.Load().Txn(false)
	if _, err := fmt.Fprintf(w, "version %d\n", appliedIndex(txn)); err != nil {
		return err
	}
	it, err := txn.Get(tableObjects, indexKindName)
	if err != nil {
		return fmt.Errorf("store: kind_name index: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if _, err := io.WriteString(w, dumpLine(raw.(*api.Object))+"\n"); err != nil {
			return err
		}
	}
	return nil
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
