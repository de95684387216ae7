package backup_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/shoal-project/shoal/backup"
)

// FuzzReader feeds arbitrary files to the reader, plain and with a key:
// never a panic, never an allocation beyond the format's bounds (a header
// of 1 MiB, a frame of 1 MiB), and a file is either refused with
// ErrInvalid (or a read error) or sound, in which case its body reads back
// to io.EOF.
//
//	go test -run '^$' -fuzz FuzzReader ./backup/
func FuzzReader(f *testing.F) {
	fx := newFixture(f, 5, 5)
	key := mustKey(f, "0123456789abcdef")
	plain := fx.write(f, nil)
	sealed := fx.write(f, key)
	f.Add(plain, false)
	f.Add(sealed, true)
	f.Add(sealed, false)
	f.Add(plain[:len(plain)/2], false)
	f.Add(sealed[:len(sealed)-40], true)
	f.Add([]byte(backup.Magic+"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), false)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, withKey bool) {
		k := key
		if !withKey {
			k = nil
		}
		info, err := backup.Check(bytes.NewReader(data), k)
		if err != nil {
			if !errors.Is(err, backup.ErrInvalid) {
				t.Fatalf("Check refused with %v, which is not ErrInvalid", err)
			}
		} else if info.Size != int64(len(data)) {
			t.Fatalf("a sound file of %d bytes checked as %d", len(data), info.Size)
		}
		r, err := backup.NewReader(bytes.NewReader(data), k)
		if err != nil {
			return
		}
		_, err = io.Copy(io.Discard, r)
		if info != nil && info.Verified && err != nil {
			t.Fatalf("a file Check found sound fails to read: %v", err)
		}
	})
}
