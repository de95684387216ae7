package storage

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"

	"github.com/shoal-project/shoal/internal/crashpoint"
)

// State files. A snapshot's data is small (the node keeps a descriptor in
// it); the state machine's bytes live in a file of their own beside the
// snapshot file, snap/<term>-<index>-<sha256 prefix>.state, in the format
// of stateformat.go. The file is written in snap.tmp/ while it is being
// made (taken locally or received from the leader), fsynced, then renamed
// into snap/ and snap/ fsynced: Install, which the node calls before
// SaveSnapshot writes the snapshot file and the WAL record that name it.
// So a WAL record never names a snapshot whose state is not on disk, and a
// crash at any point leaves at most a temporary file, removed by the next
// Open, or a state file that no record names, removed by garbage
// collection like snapshot files.

// stateFileName names the state file of the snapshot at term and index
// whose plain bytes are info. The checksum in the name keeps apart two
// files of one snapshot written from different bytes (a state machine
// need not write the same bytes twice), so that installing one never
// replaces a file that a durable record names with another.
func stateFileName(term, index uint64, info StateInfo) string {
	return fmt.Sprintf("%016x-%016x-%x.state", term, index, info.SHA256[:8])
}

// listStateFiles returns the state files in dir, oldest first.
func listStateFiles(dir string) ([]snapFile, error) {
	names, err := fileutil.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: list state files in %s: %w", dir, err)
	}
	var files []snapFile
	for _, name := range names {
		var f snapFile
		var sum uint64
		if _, err := fmt.Sscanf(name, "%016x-%016x-%016x.state", &f.term, &f.index, &sum); err != nil ||
			filepath.Ext(name) != ".state" {
			continue
		}
		f.name = name
		files = append(files, f)
	}
	sortSnapFiles(files)
	return files, nil
}

// StateWriter writes the state machine's bytes of one snapshot to a
// temporary file, encrypted with the Storage's Cipher. Write, then Finish
// (the file is then durable, but not in place), then Install (it is then in
// snap/, under the name OpenState looks for) or Discard. It is not safe for
// concurrent use; different StateWriters are independent.
type StateWriter struct {
	s           *Storage
	term, index uint64
	gen         uint64 // the key generation it is sealed with
	tmp         string
	f           *os.File
	bw          *bufio.Writer
	enc         *stateEncoder
	info        StateInfo
	finished    bool
	done        bool // installed or discarded
}

// CreateState starts the state file of the snapshot at term and index. Its
// frames are bound to term and index: OpenState reads it back only for
// that snapshot.
func (s *Storage) CreateState(term, index uint64) (*StateWriter, error) {
	s.mu.Lock()
	err := s.writable()
	// Read before sealing (see KeyRetirer); the file counts as needing
	// this generation until it is installed or discarded.
	gen := s.keys.generation()
	if err == nil {
		s.keys.stateStarted(gen)
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	w := &StateWriter{s: s, term: term, index: index, gen: gen}
	f, err := os.CreateTemp(s.snapTmpDir, fmt.Sprintf("%016x-%016x-*.state.tmp", term, index))
	if err != nil {
		w.release()
		return nil, fmt.Errorf("storage: create a state file in %s: %w", s.snapTmpDir, err)
	}
	w.f, w.tmp = f, f.Name()
	w.bw = bufio.NewWriterSize(f, 4*stateFrameBytes)
	if w.enc, err = newStateEncoder(w.bw, s.cipher, term, index); err != nil {
		_ = w.Discard()
		return nil, fmt.Errorf("storage: write %s: %w", w.tmp, err)
	}
	return w, nil
}

// Write adds p to the state.
func (w *StateWriter) Write(p []byte) (int, error) {
	if w.finished || w.done {
		return 0, fmt.Errorf("storage: write to a finished state file %s", w.tmp)
	}
	n, err := w.enc.Write(p)
	if err != nil {
		return n, fmt.Errorf("storage: write %s: %w", w.tmp, err)
	}
	return n, nil
}

// Finish writes the last frame, fsyncs and closes the temporary file, and
// returns the length and SHA-256 of the plain bytes written. After an
// error, call Discard.
func (w *StateWriter) Finish() (StateInfo, error) {
	if w.finished {
		return w.info, nil
	}
	info, err := w.enc.finish()
	if err == nil {
		err = w.bw.Flush()
	}
	if err == nil {
		err = fileutil.Fsync(w.f)
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	if err != nil {
		return StateInfo{}, fmt.Errorf("storage: write %s: %w", w.tmp, err)
	}
	w.info, w.finished = info, true
	return info, nil
}

// Install moves the finished file into snap/ and makes that durable. Call
// it before SaveSnapshot of the snapshot that names the file.
func (w *StateWriter) Install() error {
	if !w.finished || w.done {
		return fmt.Errorf("storage: install of state file %s before Finish or after Install or Discard", w.tmp)
	}
	s := w.s
	name := stateFileName(w.term, w.index, w.info)
	if err := os.Rename(w.tmp, filepath.Join(s.snapDir, name)); err != nil {
		return fmt.Errorf("storage: move state file %s into place: %w", name, err)
	}
	if err := syncDir(s.snapDir); err != nil {
		return err
	}
	crashpoint.Hit(crashpoint.SnapshotStateInstalled)
	w.done = true
	s.mu.Lock()
	s.keys.stateInstalled(name, w.gen)
	s.mu.Unlock()
	s.log.Debug("installed state file", "file", name, "bytes", w.info.Size)
	return nil
}

// Discard removes the temporary file. It does nothing after Install, so
// it may be deferred.
func (w *StateWriter) Discard() error {
	if w.done {
		return nil
	}
	w.done = true
	if w.f != nil {
		_ = w.f.Close()
		w.f = nil
	}
	w.release()
	if w.tmp == "" {
		return nil
	}
	if err := os.Remove(w.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("storage: remove %s: %w", w.tmp, err)
	}
	return nil
}

func (w *StateWriter) release() {
	w.s.mu.Lock()
	w.s.keys.stateEnded(w.gen)
	w.s.mu.Unlock()
}

// OpenState opens the state file of the snapshot at term and index whose
// plain bytes are info, and returns a reader of those bytes. The reader
// decrypts as it goes and returns io.EOF only at the end of a file that
// matches info in length and checksum; anything else (a missing file, a
// damaged, truncated or swapped frame, a file of other bytes) is an error
// naming the file and wrapping ErrStateFile (and ErrDecrypt for a frame
// that does not decrypt). It does not need the Storage to stay open: an
// open file survives its removal by garbage collection.
func (s *Storage) OpenState(term, index uint64, info StateInfo) (io.ReadCloser, error) {
	path := filepath.Join(s.snapDir, stateFileName(term, index, info))
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s is missing (the snapshot at index %d, term %d names it)", ErrStateFile, path, index, term)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStateFile, err)
	}
	return &stateReader{
		dec: newStateDecoder(bufio.NewReaderSize(f, 4*stateFrameBytes), s.cipher, path, term, index, info),
		f:   f,
	}, nil
}

type stateReader struct {
	dec *stateDecoder
	f   *os.File
}

func (r *stateReader) Read(p []byte) (int, error) { return r.dec.Read(p) }
func (r *stateReader) Close() error               { return r.f.Close() }
