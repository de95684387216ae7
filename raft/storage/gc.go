package storage

import (
	"fmt"
	"os"
	"path/filepath"
)

// collect removes the snapshot files, state files and WAL segments that no
// kept snapshot needs. It runs with s.mu held, after the WAL record of s.anchor and a
// commit index at or above it are durable.
//
// Kept are: the anchor, the KeepOldSnapshots newest files older than it,
// and every file newer than it (a snapshot not yet committed, or one a
// crash left without a WAL record). A WAL segment goes only if a later
// segment also starts below the oldest kept snapshot's index: reading from
// that snapshot needs the last segment that starts below it and all after
// it. This is the rule of wal.ReleaseLockTo, so the segments removed are
// ones the WAL has already unlocked; a segment still locked is left for a
// later pass. Oldest files go first, so a crash part way leaves a
// contiguous WAL, and each directory is fsynced after its removals.
func (s *Storage) collect() error {
	snaps, err := listSnapshots(s.snapDir)
	if err != nil {
		return err
	}
	at := -1
	for i, f := range snaps {
		if f.index == s.anchor.index && f.term == s.anchor.term {
			at = i
			break
		}
	}
	if at < 0 {
		// Nothing is known to be safe to remove.
		s.log.Warn("newest committed snapshot file not found; removing nothing",
			"index", s.anchor.index, "term", s.anchor.term)
		return nil
	}
	keepFrom := max(at-s.keepOld, 0)
	for _, f := range snaps[:keepFrom] {
		if err := os.Remove(filepath.Join(s.snapDir, f.name)); err != nil {
			return fmt.Errorf("storage: remove old snapshot file: %w", err)
		}
		s.log.Info("removed old snapshot file", "file", f.name, "index", f.index, "term", f.term)
	}
	if keepFrom > 0 {
		if err := syncDir(s.snapDir); err != nil {
			return err
		}
	}
	keptStates, err := s.collectStateFiles(snaps[keepFrom].index)
	if err != nil {
		return err
	}
	if err := s.purgeSegments(snaps[keepFrom].index); err != nil {
		return err
	}
	// Only now is nothing older readable: the files are gone and their
	// directories synced.
	return s.keys.retire(snaps[keepFrom:], keptStates)
}

// collectStateFiles removes the state files of snapshots older than index,
// the oldest kept snapshot, and returns the others. Newer ones are kept as
// newer snapshot files are: one may be about to get its WAL record.
func (s *Storage) collectStateFiles(index uint64) ([]snapFile, error) {
	states, err := listStateFiles(s.snapDir)
	if err != nil {
		return nil, err
	}
	var kept []snapFile
	removed := 0
	for _, f := range states {
		if f.index >= index {
			kept = append(kept, f)
			continue
		}
		if err := os.Remove(filepath.Join(s.snapDir, f.name)); err != nil {
			return nil, fmt.Errorf("storage: remove old state file: %w", err)
		}
		removed++
		s.log.Info("removed old state file", "file", f.name, "index", f.index, "term", f.term)
	}
	if removed > 0 {
		if err := syncDir(s.snapDir); err != nil {
			return nil, err
		}
	}
	return kept, nil
}

// purgeSegments removes the WAL segments that reading from a snapshot at
// index does not need.
func (s *Storage) purgeSegments(index uint64) error {
	segs, err := listSegments(s.walDir)
	if err != nil {
		return err
	}
	// Segment names are not always increasing in index (a new leader can
	// overwrite entries), so look at every one.
	last := -1
	for i, g := range segs {
		if g.index < index {
			last = i
		}
	}
	removed := 0
	for _, g := range segs[:max(last, 0)] {
		ok, err := removeSegment(filepath.Join(s.walDir, g.name))
		if err != nil {
			return err
		}
		if !ok {
			s.log.Debug("WAL segment still in use; keeping it", "file", g.name)
			break
		}
		removed++
		s.log.Info("removed old WAL segment", "file", g.name, "index", g.index)
	}
	if removed > 0 {
		return syncDir(s.walDir)
	}
	return nil
}
