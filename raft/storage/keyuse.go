package storage

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// keyUse tracks, for a Cipher that is a KeyRetirer, the oldest key
// generation that sealed anything Open could read, and tells the Cipher
// when that rises. Every method runs with Storage.mu held.
//
// What Open can read after collect: every snapshot file left in snap/ (it
// may fall back to an older kept one if the newest is damaged), and every
// entry record in the WAL whose index is above the oldest of them. The
// second is not "the entries after the snapshot": etcd's ReadAll also
// returns stale records that a new leader overwrote at a lower index,
// when the snapshot lies between (see TestRetirementKeepsKeysOfOverwrittenEntries).
// So for entries this tracks, per generation, the highest index ever
// sealed with it; a generation stops counting once that index is at or
// below the oldest kept snapshot.
//
// Data that was on disk when the Storage was opened has no known
// generation and counts as generation 0: the highest entry index in the
// WAL then (unknownMax) and every snapshot file not written since. This
// only delays retirement until a snapshot covers that data.
type keyUse struct {
	r   KeyRetirer
	log *slog.Logger

	unknownMax uint64            // highest entry index on disk at open
	entries    map[uint64]uint64 // generation → highest entry index sealed with it
	snaps      map[snapID]uint64 // generation of each snapshot file written since open
	states     map[string]uint64 // generation of each state file installed since open, by name
	writing    map[uint64]int    // generation → state files being written or waiting to be installed
	retired    uint64            // the generation last passed to RetireBefore
}

func newKeyUse(c Cipher, log *slog.Logger) *keyUse {
	r, ok := c.(KeyRetirer)
	if !ok {
		return nil
	}
	return &keyUse{r: r, log: log, entries: map[uint64]uint64{}, snaps: map[snapID]uint64{},
		states: map[string]uint64{}, writing: map[uint64]int{}}
}

// generation returns the generation Seal is about to use, or 0 when keys
// are not tracked.
func (u *keyUse) generation() uint64 {
	if u == nil {
		return 0
	}
	return u.r.Generation()
}

func (u *keyUse) entriesSealed(gen uint64, ents []*raftpb.Entry) {
	if u == nil {
		return
	}
	for _, e := range ents {
		u.entries[gen] = max(u.entries[gen], e.GetIndex())
	}
}

func (u *keyUse) snapshotSealed(id snapID, gen uint64) {
	if u != nil {
		u.snaps[id] = gen
	}
}

// stateStarted counts a state file sealed with gen that is not installed
// yet: it is needed if it ever is.
func (u *keyUse) stateStarted(gen uint64) {
	if u != nil {
		u.writing[gen]++
	}
}

func (u *keyUse) stateEnded(gen uint64) {
	if u == nil {
		return
	}
	if u.writing[gen]--; u.writing[gen] <= 0 {
		delete(u.writing, gen)
	}
}

// stateInstalled moves a state file from being written to installed
// under name, which it replaced if a file had it.
func (u *keyUse) stateInstalled(name string, gen uint64) {
	if u == nil {
		return
	}
	u.stateEnded(gen)
	u.states[name] = gen
}

// retire tells the Cipher which generations nothing readable needs, given
// the snapshot files and state files left after collect, oldest first.
func (u *keyUse) retire(kept, keptStates []snapFile) error {
	if u == nil || len(kept) == 0 {
		return nil
	}
	oldest := kept[0].index
	needed := uint64(math.MaxUint64)
	files := make(map[snapID]bool, len(kept))
	for _, f := range kept {
		id := snapID{term: f.term, index: f.index}
		files[id] = true
		needed = min(needed, u.snaps[id]) // 0 when written before open
	}
	for id := range u.snaps {
		if !files[id] {
			delete(u.snaps, id)
		}
	}
	states := make(map[string]bool, len(keptStates))
	for _, f := range keptStates {
		states[f.name] = true
		needed = min(needed, u.states[f.name]) // 0 when written before open
	}
	for name := range u.states {
		if !states[name] {
			delete(u.states, name)
		}
	}
	for gen := range u.writing {
		needed = min(needed, gen)
	}
	if u.unknownMax > oldest {
		needed = 0
	}
	for gen, last := range u.entries {
		if last <= oldest {
			delete(u.entries, gen) // no kept snapshot reads that far back
			continue
		}
		needed = min(needed, gen)
	}
	if needed <= u.retired {
		return nil
	}
	if err := u.r.RetireBefore(needed); err != nil {
		return fmt.Errorf("storage: retire keys before generation %d: %w", needed, err)
	}
	u.log.Debug("keys before this generation no longer needed", "generation", needed, "oldest_snapshot_index", oldest)
	u.retired = needed
	return nil
}

// scanUnknown records the highest entry index in the WAL segments in
// walDir, whatever generation sealed them. A segment that cannot be
// decoded to its end makes every index count (none is retired until a
// later open): it may hold anything.
func (u *keyUse) scanUnknown(walDir string) {
	if u == nil {
		return
	}
	last, err := maxEntryIndex(walDir)
	if err != nil {
		u.log.Warn("cannot read every WAL segment; older keys are kept until the next open", "error", err)
		last = math.MaxUint64
	}
	u.unknownMax = last
}

func maxEntryIndex(walDir string) (uint64, error) {
	segs, err := listSegments(walDir)
	if err != nil {
		return 0, err
	}
	var last uint64
	for _, g := range segs {
		l, err := maxEntryIndexIn(filepath.Join(walDir, g.name))
		if err != nil {
			return 0, err
		}
		last = max(last, l)
	}
	return last, nil
}

func maxEntryIndexIn(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("storage: open WAL segment: %w", err)
	}
	defer f.Close()
	dec := wal.NewDecoder(fileutil.NewFileReader(f))
	rec := &walpb.Record{}
	var last uint64
	for {
		err := dec.Decode(rec)
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return last, nil
		default:
			return 0, fmt.Errorf("storage: decode %s: %w", filepath.Base(path), err)
		}
		switch rec.GetType() {
		case wal.CrcType:
			dec.UpdateCRC(rec.GetCrc())
		case wal.EntryType:
			var e raftpb.Entry
			if err := proto.Unmarshal(rec.GetData(), &e); err != nil {
				return 0, fmt.Errorf("storage: decode an entry in %s: %w", filepath.Base(path), err)
			}
			last = max(last, e.GetIndex())
		}
	}
}
