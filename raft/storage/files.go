package storage

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
)

// snapFile is a snapshot file in snap/, named by etcd's scheme.
type snapFile struct {
	name        string
	term, index uint64
}

func snapFileName(term, index uint64) string {
	return fmt.Sprintf("%016x-%016x.snap", term, index)
}

// listSnapshots returns the snapshot files in dir, oldest first. Other
// files (etcd renames unreadable ones to *.snap.broken) are left out.
func listSnapshots(dir string) ([]snapFile, error) {
	names, err := fileutil.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: list snapshot files in %s: %w", dir, err)
	}
	var files []snapFile
	for _, name := range names {
		var f snapFile
		if _, err := fmt.Sscanf(name, "%016x-%016x.snap", &f.term, &f.index); err != nil || name != snapFileName(f.term, f.index) {
			continue
		}
		f.name = name
		files = append(files, f)
	}
	sortSnapFiles(files)
	return files, nil
}

// sortSnapFiles sorts files oldest first.
func sortSnapFiles(files []snapFile) {
	slices.SortFunc(files, func(a, b snapFile) int {
		return cmp.Or(cmp.Compare(a.index, b.index), cmp.Compare(a.term, b.term))
	})
}

// segment is a WAL segment file, named by etcd's scheme: its sequence
// number and the index of the first entry it was opened for.
type segment struct {
	name       string
	seq, index uint64
}

// listSegments returns the WAL segments in dir in sequence order. The
// preallocated "N.tmp" files and "*.wal.broken" copies are left out.
func listSegments(dir string) ([]segment, error) {
	names, err := fileutil.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: list WAL segments in %s: %w", dir, err)
	}
	var segs []segment
	for _, name := range names {
		if !strings.HasSuffix(name, ".wal") {
			continue
		}
		var g segment
		if _, err := fmt.Sscanf(name, "%016x-%016x.wal", &g.seq, &g.index); err != nil {
			continue
		}
		g.name = name
		segs = append(segs, g)
	}
	slices.SortFunc(segs, func(a, b segment) int { return cmp.Compare(a.seq, b.seq) })
	return segs, nil
}

// syncDir fsyncs a directory, making the creation, rename or removal of the
// entries in it durable (etcd #6368).
func syncDir(dir string) error {
	d, err := fileutil.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("storage: open directory %s to sync it: %w", dir, err)
	}
	err = fileutil.Fsync(d)
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("storage: sync directory %s: %w", dir, err)
	}
	return nil
}

// removeSegment removes a WAL segment that the open WAL no longer holds
// locked, as etcd's fileutil.PurgeFile does. It reports false, and removes
// nothing, if the segment is still locked.
func removeSegment(path string) (bool, error) {
	l, err := fileutil.TryLockFile(path, os.O_WRONLY, fileutil.PrivateFileMode)
	if errors.Is(err, fileutil.ErrLocked) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("storage: lock WAL segment %s to remove it: %w", filepath.Base(path), err)
	}
	err = os.Remove(path)
	if cerr := l.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("storage: remove WAL segment %s: %w", filepath.Base(path), err)
	}
	return true, nil
}
