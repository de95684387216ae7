// Package diskscan finds bytes in the files of a directory tree. Tests use
// it to show that what was written encrypted holds no clear text: they
// write data carrying a marker, then look for it in every file.
package diskscan

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
)

// FilesContaining walks dir and returns the paths, relative to dir, of the
// regular files whose content contains s, and how many files it read.
func FilesContaining(dir string, s []byte) (found []string, files int, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		if bytes.Contains(b, s) {
			rel, _ := filepath.Rel(dir, path)
			found = append(found, rel)
		}
		return nil
	})
	return found, files, err
}
