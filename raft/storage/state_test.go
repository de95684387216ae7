package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// mustWriteState writes plain as the state file of the snapshot at term
// and index, and installs it.
func mustWriteState(t testing.TB, s *Storage, term, index uint64, plain []byte) StateInfo {
	t.Helper()
	w, err := s.CreateState(term, index)
	if err != nil {
		t.Fatalf("CreateState: %v", err)
	}
	// In uneven writes, as a state machine's buffered writer makes them.
	for rest := plain; len(rest) > 0; {
		n := min(len(rest), 10007)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatalf("Write: %v", err)
		}
		rest = rest[n:]
	}
	info, err := w.Finish()
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if err := w.Install(); err != nil {
		t.Fatalf("Install: %v", err)
	}
	return info
}

func readState(s *Storage, term, index uint64, info StateInfo) ([]byte, error) {
	r, err := s.OpenState(term, index, info)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func statePath(dir string, term, index uint64, info StateInfo) string {
	return filepath.Join(dir, snapDirName, stateFileName(term, index, info))
}

func TestStateRoundTrip(t *testing.T) {
	sizes := []int{0, 1, stateFrameBytes - 1, stateFrameBytes, stateFrameBytes + 1, 3*stateFrameBytes + 5}
	for _, encrypted := range []bool{false, true} {
		for _, size := range sizes {
			name := map[bool]string{false: "in clear", true: "encrypted"}[encrypted]
			t.Run(name+"/"+strconv.Itoa(size), func(t *testing.T) {
				cfg := testConfig(t, t.TempDir())
				if encrypted {
					cfg.Cipher, _ = testKeys(t)
				}
				s := mustCreate(t, cfg, nil)
				defer mustClose(t, s)
				plain := payload(uint64(size), size)
				info := mustWriteState(t, s, 2, 9, plain)
				if want := (StateInfo{Size: uint64(size), SHA256: sha256.Sum256(plain)}); info != want {
					t.Fatalf("Finish = %v, want %v", info, want)
				}
				got, err := readState(s, 2, 9, info)
				if err != nil {
					t.Fatalf("reading back: %v", err)
				}
				if !bytes.Equal(got, plain) {
					t.Fatalf("read back %d bytes that differ from the %d written", len(got), len(plain))
				}
				if left, _ := os.ReadDir(filepath.Join(cfg.Dir, snapTmpDirName)); len(left) > 0 {
					t.Fatalf("%s holds %v after Install", snapTmpDirName, left)
				}
			})
		}
	}
}

// stateFrames splits a state file into its header and its frames, each
// with its own header.
func stateFrames(t testing.TB, b []byte) (head []byte, frames [][]byte) {
	t.Helper()
	head, b = b[:len(stateMagic)+1], b[len(stateMagic)+1:]
	for len(b) > 0 {
		n := stateFrameHeader + int(binary.BigEndian.Uint32(b[1:]))
		frames = append(frames, b[:n])
		b = b[n:]
	}
	return head, frames
}

// Every way a state file can differ from the one its snapshot names is
// refused with ErrStateFile and the file's name; nothing is read to an
// end that is not the file's. With a cipher, frames are bound to their
// file, their place and whether they are the last.
func TestStateFileDamageIsRefused(t *testing.T) {
	type damage func(t *testing.T, file []byte, other []byte) []byte
	join := func(head []byte, frames [][]byte) []byte { return bytes.Join(append([][]byte{head}, frames...), nil) }
	tests := []struct {
		name      string
		encrypted bool
		damage    damage
		wrongInfo bool
		want      []error
	}{
		{name: "missing", damage: func(*testing.T, []byte, []byte) []byte { return nil }, want: []error{ErrStateFile}},
		{name: "empty", damage: func(*testing.T, []byte, []byte) []byte { return []byte{} }, want: []error{ErrStateFile}},
		{name: "bad magic", damage: func(_ *testing.T, f, _ []byte) []byte { f[0] ^= 1; return f }, want: []error{ErrStateFile}},
		{name: "byte flipped in clear", damage: func(_ *testing.T, f, _ []byte) []byte { f[len(f)/2] ^= 1; return f }, want: []error{ErrStateFile}},
		{name: "byte flipped", encrypted: true, damage: func(_ *testing.T, f, _ []byte) []byte { f[len(f)/2] ^= 1; return f }, want: []error{ErrStateFile, ErrDecrypt}},
		{name: "last frame cut off", encrypted: true, damage: func(t *testing.T, f, _ []byte) []byte {
			h, fr := stateFrames(t, f)
			return join(h, fr[:len(fr)-1])
		}, want: []error{ErrStateFile}},
		{name: "cut inside a frame", encrypted: true, damage: func(_ *testing.T, f, _ []byte) []byte { return f[:len(f)-100] }, want: []error{ErrStateFile}},
		{name: "frames swapped", encrypted: true, damage: func(t *testing.T, f, _ []byte) []byte {
			h, fr := stateFrames(t, f)
			fr[0], fr[1] = fr[1], fr[0]
			return join(h, fr)
		}, want: []error{ErrStateFile, ErrDecrypt}},
		{name: "frame from another snapshot's file", encrypted: true, damage: func(t *testing.T, f, other []byte) []byte {
			h, fr := stateFrames(t, f)
			_, ofr := stateFrames(t, other)
			fr[1] = ofr[1]
			return join(h, fr)
		}, want: []error{ErrStateFile, ErrDecrypt}},
		{name: "another snapshot's file", encrypted: true, damage: func(_ *testing.T, _, other []byte) []byte { return other }, want: []error{ErrStateFile, ErrDecrypt}},
		{name: "bytes after the last frame", encrypted: true, damage: func(_ *testing.T, f, _ []byte) []byte { return append(f, 0) }, want: []error{ErrStateFile}},
		{name: "file in clear, directory encrypted", encrypted: true, damage: func(t *testing.T, f, _ []byte) []byte {
			h, fr := stateFrames(t, f)
			h[len(h)-1] = stateModeClear
			return join(h, fr)
		}, want: []error{ErrStateFile, ErrDecrypt}},
		{name: "other bytes than the snapshot names", wrongInfo: true, want: []error{ErrStateFile}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			if tt.encrypted {
				cfg.Cipher, _ = testKeys(t)
			}
			s := mustCreate(t, cfg, nil)
			defer mustClose(t, s)
			plain := payload(1, 3*stateFrameBytes+77)
			info := mustWriteState(t, s, 2, 9, plain)
			otherInfo := mustWriteState(t, s, 2, 8, plain) // same bytes, another snapshot
			path := statePath(dir, 2, 9, info)
			if tt.damage != nil {
				file, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				other, err := os.ReadFile(statePath(dir, 2, 8, otherInfo))
				if err != nil {
					t.Fatal(err)
				}
				damaged := tt.damage(t, file, other)
				if damaged == nil {
					err = os.Remove(path)
				} else {
					err = os.WriteFile(path, damaged, 0o600)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			want := info
			if tt.wrongInfo {
				want.SHA256[0] ^= 1
				path = statePath(dir, 2, 9, want)
				if err := os.Rename(statePath(dir, 2, 9, info), path); err != nil {
					t.Fatal(err)
				}
			}
			got, err := readState(s, 2, 9, want)
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("err = %v, want %v", err, w)
				}
			}
			if err != nil && !strings.Contains(err.Error(), path) {
				t.Errorf("the error does not name %s: %v", path, err)
			}
			if err == nil {
				t.Fatalf("read %d bytes without an error", len(got))
			}
		})
	}
}

// A state file that was not finished and installed is never used: Discard
// removes it, and Open removes whatever a crash left in snap.tmp.
func TestUnfinishedStateFilesAreRemoved(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	s := mustCreate(t, cfg, nil)
	mustSave(t, s, hardState(1, 1, 3), entries(1, 3, 1, 8))
	discarded, err := s.CreateState(1, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := discarded.Write([]byte("half a state")); err != nil {
		t.Fatal(err)
	}
	if err := discarded.Discard(); err != nil {
		t.Fatal(err)
	}
	abandoned, err := s.CreateState(1, 3) // as a crash leaves it
	if err != nil {
		t.Fatal(err)
	}
	if _, err := abandoned.Write(payload(2, 3*stateFrameBytes)); err != nil {
		t.Fatal(err)
	}
	finished, err := s.CreateState(1, 3) // received, not yet installed
	if err != nil {
		t.Fatal(err)
	}
	if _, err := finished.Finish(); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, snapTmpDirName)
	if left, _ := os.ReadDir(tmp); len(left) != 2 {
		t.Fatalf("%s holds %v, want the abandoned and the finished file", tmp, left)
	}
	mustClose(t, s)
	s, _ = mustOpen(t, cfg)
	defer mustClose(t, s)
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Fatalf("%s holds %v after Open", tmp, left)
	}
	if states, _ := listStateFiles(filepath.Join(dir, snapDirName)); len(states) > 0 {
		t.Fatalf("state files %v in snap/", states)
	}
}

// State files go with their snapshots: those older than the oldest kept
// snapshot are removed, newer ones stay (one may be about to get its
// record).
func TestStateFilesAreCollectedWithTheirSnapshots(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	s := mustCreate(t, cfg, nil)
	defer mustClose(t, s)
	mustSave(t, s, hardState(1, 1, 30), entries(1, 30, 1, 8))
	for _, index := range []uint64{10, 20} {
		mustWriteState(t, s, 1, index, payload(index, 100))
		mustSaveSnapshot(t, s, snapshot(index, 1, []byte("d")))
	}
	mustWriteState(t, s, 1, 25, payload(25, 100)) // no snapshot record yet
	states, err := listStateFiles(filepath.Join(dir, snapDirName))
	if err != nil {
		t.Fatal(err)
	}
	var indexes []uint64
	for _, f := range states {
		indexes = append(indexes, f.index)
	}
	if len(indexes) != 2 || indexes[0] != 20 || indexes[1] != 25 {
		t.Fatalf("state files at indexes %v, want 20 and 25", indexes)
	}
}

// FuzzStateDecoder feeds the state file decoder with bytes as they may be
// on disk, in clear and with a cipher: it must fail with ErrStateFile, or
// return exactly the bytes the StateInfo names, and never panic.
func FuzzStateDecoder(f *testing.F) {
	k, _ := testKeys(f)
	plain := payload(3, stateFrameBytes+10)
	want := StateInfo{Size: uint64(len(plain)), SHA256: sha256.Sum256(plain)}
	for _, c := range []Cipher{nil, k} {
		var b bytes.Buffer
		enc, err := newStateEncoder(&b, c, 1, 2)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := enc.Write(plain); err != nil {
			f.Fatal(err)
		}
		if _, err := enc.finish(); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes(), c != nil)
		f.Add(b.Bytes()[:len(b.Bytes())/2], c != nil)
	}
	f.Add([]byte(stateMagic+"\x00\x01\x00\x00\x00\x00"), false)
	f.Fuzz(func(t *testing.T, file []byte, sealed bool) {
		var c Cipher
		if sealed {
			c = k
		}
		got, err := io.ReadAll(newStateDecoder(bytes.NewReader(file), c, "fuzz.state", 1, 2, want))
		if err != nil {
			if !errors.Is(err, ErrStateFile) {
				t.Fatalf("err = %v, want ErrStateFile", err)
			}
			return
		}
		if uint64(len(got)) != want.Size || sha256.Sum256(got) != want.SHA256 {
			t.Fatalf("decoded %d bytes that are not the state named", len(got))
		}
	})
}
