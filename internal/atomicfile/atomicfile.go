// Package atomicfile replaces small files so that a crash leaves the old
// content or the new, never a mix, and makes the change durable: the
// credential files of package ca, the key file of package keys and the
// manager's bootstrap root CA all go through it. It knows nothing of what
// the files hold.
package atomicfile

import (
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
func WriteFile(path string, data []byte, perm fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, TempPrefix(filepath.Base(path))+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return SyncDir(dir)
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
