// Package atomicfile replaces files so that a crash leaves the old content
// or the new, never a mix, and makes the change durable: the credential
// files of package ca, the key file of package keys and the manager's
// bootstrap root CA go through WriteFile; backups, written as they are
// received, through Create. It knows nothing of what the files hold.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// TempPrefix is how the temporary files WriteFile makes for a file named
// name begin, so that a caller can remove those a crash left behind.
func TempPrefix(name string) string { return "." + name + ".tmp-" }

// WriteFile replaces path with data: a temporary file in the same
// directory (mode perm, and 0600 until then), synced, renamed over path,
// and the directory synced (etcd #6368: a rename is durable only once its
// directory is). On error the temporary file is removed and path is as it
// was.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return f.Commit(true)
}

// File is a file being written to take the place of another: a temporary
// file beside it until Commit. Write it through the embedded *os.File;
// read it back, if need be, before Commit.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts a file that is to become path: a temporary file in path's
// directory, with mode perm. Call Commit to install it, or Abort.
func Create(path string, perm fs.FileMode) (*File, error) {
	f, err := os.CreateTemp(filepath.Dir(path), TempPrefix(filepath.Base(path))+"*")
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(perm); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return nil, err
	}
	return &File{File: f, path: path}, nil
}

// Commit syncs the file, closes it, puts it at its path and syncs the
// directory. With replace, it replaces a file already there; without, it
// fails with an error wrapping fs.ErrExist when path exists, and leaves
// it alone. On error the temporary file is removed.
func (f *File) Commit(replace bool) (err error) {
	if f.done {
		return errors.New("atomicfile: committed or aborted already")
	}
	defer func() {
		if err != nil {
			f.Abort()
		}
	}()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.File.Close(); err != nil {
		return err
	}
	tmp := f.Name()
	if replace {
		if err := os.Rename(tmp, f.path); err != nil {
			return err
		}
	} else {
		// A hard link, unlike a rename, never replaces its target.
		if err := os.Link(tmp, f.path); err != nil {
			return err
		}
		f.done = true // installed: the temporary name is only a second link
		if err := os.Remove(tmp); err != nil {
			return err
		}
	}
	f.done = true
	return SyncDir(filepath.Dir(f.path))
}

// Abort removes the temporary file, unless Commit installed it. It may be
// called more than once, and after Commit.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	_ = f.File.Close()
	_ = os.Remove(f.Name())
}

// SyncDir fsyncs a directory, making the creation, rename or removal of
// its entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
