package backup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/internal/atomicfile"
	"github.com/shoal-project/shoal/store"
)

// Info describes a backup file that was checked.
type Info struct {
	Header *api.BackupHeader
	// Size is the file's length in bytes, SHA256 its hex SHA-256.
	Size   int64
	SHA256 string
	// Verified says the objects were read and checked, not only the
	// file's checksum: false for an encrypted file checked without its
	// key.
	Verified bool
	// Contents are the objects, when Verified.
	Contents *store.SnapshotContents
}

// Objects is the number of objects the header counts.
func (i *Info) Objects() uint64 {
	var n uint64
	for _, c := range i.Header.GetObjects() {
		n += c
	}
	return n
}

// Check reads a backup file whole and checks it: its checksum always, and,
// when the objects can be read (a plain file, or an encrypted one with its
// key), every object as a follower checks a snapshot it receives (the
// store's framing, CRC-32C, object count, each object's validity and
// version, unique ids and names), and that the header counts them right.
// key may be nil; a wrong one is refused.
func Check(r io.Reader, key *Key) (*Info, error) { return check(r, key, false) }

// Verify is Check for a file whose objects must be read: an encrypted file
// without its key is refused (ErrEncrypted) once its header is read.
func Verify(r io.Reader, key *Key) (*Info, error) { return check(r, key, true) }

func check(r io.Reader, key *Key, needObjects bool) (*Info, error) {
	br, err := NewReader(r, key)
	if err != nil {
		return nil, err
	}
	h := br.Header()
	if h.GetEncrypted() && key == nil {
		if needObjects {
			return nil, invalid(ErrEncrypted, "the backup is encrypted: give the key file it was saved with (--key-file)")
		}
		if err := br.Skip(); err != nil {
			return nil, err
		}
		return &Info{Header: h, Size: br.Size(), SHA256: br.SHA256()}, nil
	}
	contents, cerr := store.CheckSnapshot(h.GetRaftIndex(), br)
	// The store stops reading at the first problem it finds: the rest
	// of the file tells whether that is damage to it.
	if err := br.Skip(); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, &fileError{reason: ErrDamaged, cause: cerr,
			msg: fmt.Sprintf("the file's checksum matches, but its objects do not check (altered, or not written by shoal): %v", cerr)}
	}
	if got, want := contents.Objects(), h.GetObjects(); !maps.Equal(got, want) {
		return nil, invalid(ErrDamaged, "the header counts %s, and the file holds %s (altered, or not written by shoal)",
			CountsString(want), CountsString(got))
	}
	return &Info{Header: h, Size: br.Size(), SHA256: br.SHA256(), Verified: true, Contents: contents}, nil
}

// CheckFile is Check of the file at path; VerifyFile, Verify's.
func CheckFile(path string, key *Key) (*Info, error) { return checkFile(path, key, false) }

// VerifyFile is Verify of the file at path.
func VerifyFile(path string, key *Key) (*Info, error) { return checkFile(path, key, true) }

func checkFile(path string, key *Key, needObjects bool) (*Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return check(f, key, needObjects)
}

// CountsString lists objects per kind as "3 node, 300 service", sorted by
// kind.
func CountsString(perKind map[string]uint64) string {
	if len(perKind) == 0 {
		return "no objects"
	}
	s := ""
	for _, kind := range slices.Sorted(maps.Keys(perKind)) {
		if s != "" {
			s += ", "
		}
		s += fmt.Sprintf("%d %s", perKind[kind], kind)
	}
	return s
}

// ErrExists is wrapped by Save's error when the file exists and replace
// was not asked for.
var ErrExists = errors.New("the file exists")

// Save writes a backup file at path from the header h and the body read
// from body, encrypted with key when it is not nil, and never leaves a
// half-written file at path: it writes a temporary file beside it (mode
// 0600), checks it whole (Check, with key), syncs it, and only then puts
// it at path and syncs the directory. Without replace it refuses a path
// that exists (ErrExists), before it writes anything and again when it is
// done.
func Save(path string, replace bool, h *api.BackupHeader, body io.Reader, key *Key) (*Info, error) {
	if err := CheckTarget(path, replace); err != nil {
		return nil, err
	}
	f, err := atomicfile.Create(path, 0o600)
	if err != nil {
		return nil, fmt.Errorf("backup: creating a file beside %s: %w", path, err)
	}
	defer f.Abort()
	out := bufio.NewWriterSize(f, 1<<20)
	w, err := NewWriter(out, h, key)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(w, body); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := out.Flush(); err != nil {
		return nil, fmt.Errorf("backup: writing %s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	info, err := Verify(f, key)
	if err != nil {
		return nil, fmt.Errorf("backup: the file written does not check: %w", err)
	}
	if info.SHA256 != w.SHA256() || info.Size != w.Size() {
		return nil, fmt.Errorf("backup: the file written reads back as %d bytes with SHA-256 %s, and %d bytes with SHA-256 %s were written",
			info.Size, info.SHA256, w.Size(), w.SHA256())
	}
	if err := f.Commit(replace); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, existsError(path)
		}
		return nil, fmt.Errorf("backup: installing %s: %w", path, err)
	}
	return info, nil
}

// CheckTarget refuses, as Save does, a path to save a backup at that
// exists, unless replace, and one whose directory does not exist: to be
// called before a backup is asked for.
func CheckTarget(path string, replace bool) error {
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return fmt.Errorf("backup: the directory of %s does not exist: create it, or choose another", path)
	}
	_, err := os.Lstat(path)
	switch {
	case err == nil && !replace:
		return existsError(path)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

func existsError(path string) error { return existsErr{path} }

// existsErr is ErrExists for one path.
type existsErr struct{ path string }

func (e existsErr) Error() string {
	return e.path + " exists: choose another name, or replace it with --force"
}
func (e existsErr) Is(target error) bool { return target == ErrExists }
