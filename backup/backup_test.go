package backup_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/backup"
	"github.com/shoal-project/shoal/store"
)

// A backup reads back as it was written, plain and encrypted, in one
// frame or several: the header, the body byte for byte, the objects, the
// size and the SHA-256 of the whole file.
func TestRoundTrip(t *testing.T) {
	small := newFixture(t, 10, 10)
	large := newFixture(t, 3000, 1000) // about 3 MB: several frames
	key := mustKey(t, "  a secret of more than sixteen bytes\n")
	for _, tt := range []struct {
		name string
		f    fixture
		key  *backup.Key
	}{
		{"plain", small, nil},
		{"plain, large", large, nil},
		{"encrypted", small, key},
		{"encrypted, several frames", large, key},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file := tt.f.write(t, tt.key)
			sum := sha256.Sum256(file)
			info, err := backup.Check(bytes.NewReader(file), tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if !info.Verified || info.Size != int64(len(file)) || info.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("info: verified %v, %d bytes, SHA-256 %s; want verified, %d bytes, %x", info.Verified, info.Size, info.SHA256, len(file), sum)
			}
			h := info.Header
			if h.GetFormat() != backup.Format || h.GetEncrypted() != (tt.key != nil) || h.GetRaftIndex() != tt.f.header.GetRaftIndex() ||
				h.GetClusterId() != "abc" || h.GetNodeId() != "manager-1" || !maps.Equal(h.GetObjects(), tt.f.header.GetObjects()) {
				t.Errorf("header %v, want %v", h, tt.f.header)
			}
			if got := info.Contents.Objects(); !maps.Equal(got, tt.f.header.GetObjects()) {
				t.Errorf("contents count %v, want %v", got, tt.f.header.GetObjects())
			}
			r, err := backup.NewReader(bytes.NewReader(file), tt.key)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(body, tt.f.body) {
				t.Errorf("the body read back differs from the one written (%d bytes, want %d)", len(body), len(tt.f.body))
			}
			if tt.key != nil && bytes.Contains(file, []byte(`"pad":"`)) {
				t.Error("an encrypted file holds an object's spec in clear")
			}
		})
	}
}

// Without its key, an encrypted file still shows its header, and Check
// verifies its structure and checksum, not its objects.
func TestEncryptedWithoutTheKey(t *testing.T) {
	f := newFixture(t, 10, 10)
	file := f.write(t, mustKey(t, "0123456789abcdef"))
	info, err := backup.Check(bytes.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Verified || info.Contents != nil || !info.Header.GetEncrypted() || info.Objects() != 11 {
		t.Errorf("info: verified %v, encrypted %v, %d objects; want unverified, encrypted, 11", info.Verified, info.Header.GetEncrypted(), info.Objects())
	}
	r, err := backup.NewReader(bytes.NewReader(file), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(make([]byte, 10)); !errors.Is(err, backup.ErrEncrypted) || !strings.Contains(err.Error(), "--key-file") {
		t.Errorf("Read without a key = %v, want ErrEncrypted naming --key-file", err)
	}
}

// Every kind of damage is refused with its reason (and ErrInvalid).
func TestRefusals(t *testing.T) {
	f := newFixture(t, 2000, 1000) // two frames when encrypted
	key := mustKey(t, "0123456789abcdef")
	plain := f.write(t, nil)
	sealed := f.write(t, key)
	prefix := prefixLen(plain)
	for _, tt := range []struct {
		name string
		file []byte
		key  *backup.Key
		want error
		says string
		// onlyObjects: the damage shows in the objects, not in the file.
		onlyObjects bool
	}{
		{"empty", nil, nil, backup.ErrNotBackup, "does not begin", false},
		{"another file", []byte("hello, this is not a backup at all, but it is long enough"), nil, backup.ErrNotBackup, "SHOALBAK", false},
		{"the magic only", []byte(backup.Magic), nil, backup.ErrTruncated, "header's length", false},
		{"cut in the header", plain[:prefix-3], nil, backup.ErrTruncated, "in the header", false},
		{"cut in the objects", plain[:len(plain)/2], nil, backup.ErrTruncated, "in the objects", false},
		{"cut in the checksum", plain[:len(plain)-5], nil, backup.ErrTruncated, "checksum", false},
		{"without its checksum", plain[:len(plain)-32], nil, backup.ErrTruncated, "checksum", false},
		{"a byte after the checksum", append(bytes.Clone(plain), 0), nil, backup.ErrDamaged, "1 byte after its checksum", false},
		{"a byte flipped in the header", flip(plain, 12), nil, backup.ErrDamaged, "SHA-256", false},
		{"a byte flipped in the objects", flip(plain, prefix+len(f.body)/2), nil, backup.ErrDamaged, "SHA-256", false},
		{"a byte flipped in the checksum", flip(plain, len(plain)-1), nil, backup.ErrDamaged, "SHA-256", false},
		{"an unknown format", withHeader(t, plain, func(h *api.BackupHeader) { h.Format = 2 }), nil, backup.ErrUnknownFormat, "format 2", false},
		{"counts that lie", withHeader(t, plain, func(h *api.BackupHeader) { h.Objects["item"]++ }), nil, backup.ErrDamaged, "2001 item", true},
		{"objects altered, checksum recomputed", reseal(flip(plain, prefix+len(f.body)/2)), nil, backup.ErrDamaged, "objects do not check", true},
		{"a body length that lies", withHeader(t, plain, func(h *api.BackupHeader) { h.BodyBytes-- }), nil, backup.ErrDamaged, "SHA-256", false},

		{"encrypted, no key", sealed, nil, nil, "", false},
		{"encrypted, wrong key", sealed, mustKey(t, "another secret, long enough"), backup.ErrWrongKey, "the key in test.key does not open this backup", false},
		{"encrypted, wrong key, damaged", flip(sealed, len(sealed)/2), mustKey(t, "another secret, long enough"), backup.ErrDamaged, "SHA-256", false},
		{"encrypted, a byte flipped in a frame", flip(sealed, len(sealed)/2), key, backup.ErrDamaged, "SHA-256", false},
		{"encrypted, a frame altered, checksum recomputed", reseal(flip(sealed, len(sealed)/2)), key, backup.ErrDamaged, "does not authenticate", false},
		{"encrypted, cut in a frame", sealed[:len(sealed)/2], key, backup.ErrTruncated, "frame", false},
		{"encrypted, cut in a frame, no key", sealed[:len(sealed)/2], nil, backup.ErrTruncated, "frame", false},
		{"encrypted, the last frame dropped, checksum recomputed", reseal(append(firstFrame(t, sealed), make([]byte, 32)...)), key, backup.ErrTruncated, "frame 1", false},
		{"encrypted, header altered, checksum recomputed", withHeader(t, sealed, func(h *api.BackupHeader) { h.NodeId = "someone" }), key, backup.ErrDamaged, "does not authenticate", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := backup.Check(bytes.NewReader(tt.file), tt.key)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check = %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !errors.Is(err, backup.ErrInvalid) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.says) {
				t.Errorf("Check = %q, want it to say %q", err, tt.says)
			}
			// Reading the body alone finds the same, unless only the
			// objects show it.
			r, err := backup.NewReader(bytes.NewReader(tt.file), tt.key)
			if err != nil || r.Header().GetEncrypted() && tt.key == nil {
				return
			}
			_, err = io.Copy(io.Discard, r)
			if tt.onlyObjects && err != nil || !tt.onlyObjects && !errors.Is(err, tt.want) {
				t.Errorf("reading the body = %v", err)
			}
		})
	}
}

// flip returns b with the byte at i changed.
func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x20
	return b
}

// reseal replaces the checksum at the end of b with that of what precedes
// it, as someone altering the file would.
func reseal(b []byte) []byte {
	sum := sha256.Sum256(b[:len(b)-32])
	return append(bytes.Clone(b[:len(b)-32]), sum[:]...)
}

// withHeader changes the header of file and recomputes the checksum.
func withHeader(t *testing.T, file []byte, change func(*api.BackupHeader)) []byte {
	t.Helper()
	size, n := binary.Uvarint(file[len(backup.Magic):])
	start := len(backup.Magic) + n
	h := &api.BackupHeader{}
	if err := proto.Unmarshal(file[start:start+int(size)], h); err != nil {
		t.Fatal(err)
	}
	change(h)
	hb, err := proto.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.AppendUvarint([]byte(backup.Magic), uint64(len(hb)))
	out = append(append(out, hb...), file[start+int(size):]...)
	return reseal(out)
}

// prefixLen is the length of a file's magic, header length and header.
func prefixLen(file []byte) int {
	size, n := binary.Uvarint(file[len(backup.Magic):])
	return len(backup.Magic) + n + int(size)
}

// firstFrame returns an encrypted file up to the end of its first frame.
func firstFrame(t *testing.T, file []byte) []byte {
	t.Helper()
	prefix := prefixLen(file)
	v, n := binary.Uvarint(file[prefix:])
	if v&1 == 1 {
		t.Fatal("the first frame is the last: the fixture is too small")
	}
	return bytes.Clone(file[:prefix+n+int(v>>1)])
}

// A Writer refuses a body that does not have the length its header
// announces: the file would not be whole.
func TestWriterChecksTheBodyLength(t *testing.T) {
	f := newFixture(t, 10, 10)
	for _, key := range []*backup.Key{nil, mustKey(t, "0123456789abcdef")} {
		w, err := backup.NewWriter(io.Discard, f.header, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(f.body[:len(f.body)-1]); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err == nil || !strings.Contains(err.Error(), "announced") {
			t.Errorf("Close of a short body = %v, want a refusal", err)
		}
		w, err = backup.NewWriter(io.Discard, f.header, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(append(bytes.Clone(f.body), 0)); err == nil {
			t.Error("Write of a body longer than announced succeeded")
		}
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name, path string
		ok         bool
	}{
		{"missing", filepath.Join(dir, "missing"), false},
		{"empty", write("empty", ""), false},
		{"short once trimmed", write("short", "   0123456789abcde   \n"), false},
		{"16 bytes and a newline", write("ok", "0123456789abcdef\n"), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			k, err := backup.LoadKeyFile(tt.path)
			if tt.ok {
				if err != nil || k.Name() != tt.path {
					t.Fatalf("LoadKeyFile = %v, %v", k, err)
				}
				return
			}
			if !errors.Is(err, backup.ErrBadKeyFile) || !strings.Contains(err.Error(), "head -c 32 /dev/urandom | base64") {
				t.Fatalf("LoadKeyFile = %v, want ErrBadKeyFile saying how to make one", err)
			}
		})
	}
	// Trimmed alike, the same secret opens the same file.
	f := newFixture(t, 5, 5)
	file := f.write(t, mustKey(t, "0123456789abcdef\n"))
	if _, err := backup.Check(bytes.NewReader(file), mustKey(t, "\t0123456789abcdef  ")); err != nil {
		t.Errorf("the same secret, other white space: %v", err)
	}
}

// Save writes the file whole or not at all, mode 0600, and does not
// replace one unless asked to.
func TestSave(t *testing.T) {
	f := newFixture(t, 20, 10)
	dir := t.TempDir()
	path := filepath.Join(dir, "b.backup")
	info, err := backup.Save(path, false, f.header, bytes.NewReader(f.body), nil)
	if err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(file); info.SHA256 != hex.EncodeToString(sum[:]) || info.Size != int64(len(file)) {
		t.Errorf("Save says %d bytes, %s; the file has %d, %x", info.Size, info.SHA256, len(file), sum)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}

	if _, err := backup.Save(path, false, f.header, bytes.NewReader(f.body), nil); !errors.Is(err, backup.ErrExists) || !strings.Contains(err.Error(), "--force") {
		t.Errorf("Save over a file = %v, want ErrExists naming --force", err)
	}
	// A stream that ends early leaves the old file as it was, and no
	// temporary file.
	if _, err := backup.Save(path, true, f.header, bytes.NewReader(f.body[:100]), nil); err == nil {
		t.Error("Save of a short stream succeeded")
	}
	if again, err := os.ReadFile(path); err != nil || !bytes.Equal(again, file) {
		t.Errorf("the file changed after a failed Save (%v)", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Errorf("the directory holds %v (%v), want the backup alone", entries, err)
	}
	if _, err := backup.Save(path, true, f.header, bytes.NewReader(f.body), mustKey(t, "0123456789abcdef")); err != nil {
		t.Errorf("Save replacing the file: %v", err)
	}
}

// Check hands over the objects it read.
func TestCheckContents(t *testing.T) {
	f := newFixture(t, 5, 5)
	info, err := backup.Check(bytes.NewReader(f.write(t, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	info.Contents.View(func(tx store.ReadTx) {
		if o, err := tx.GetByName("cluster", "default"); err != nil || string(o.GetSpec()) != `{"cluster_id":"abc"}` {
			t.Errorf("cluster object %v, %v", o, err)
		}
	})
	if got := backup.CountsString(info.Header.GetObjects()); got != "1 cluster, 5 item" {
		t.Errorf("CountsString = %q", got)
	}
}

// Verify wants the objects: an encrypted file without its key is refused.
func TestVerifyNeedsTheKey(t *testing.T) {
	f := newFixture(t, 5, 5)
	key := mustKey(t, "0123456789abcdef")
	file := f.write(t, key)
	if _, err := backup.Verify(bytes.NewReader(file), nil); !errors.Is(err, backup.ErrEncrypted) {
		t.Errorf("Verify without the key = %v, want ErrEncrypted", err)
	}
	if info, err := backup.Verify(bytes.NewReader(file), key); err != nil || !info.Verified {
		t.Errorf("Verify with the key = %v, %v", info, err)
	}
}
