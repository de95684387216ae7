package storage

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/shoal-project/shoal/internal/diskscan"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/keys"
)

const marker = "SHOAL-MARKER-7f3a"

// testKeys creates a node's keys in a directory of their own.
func testKeys(t testing.TB) (*keys.Keys, keys.Config) {
	t.Helper()
	kcfg := keys.Config{Dir: filepath.Join(t.TempDir(), "keys"), Logger: testConfig(t, "").Logger}
	k, err := keys.Create(kcfg)
	if err != nil {
		t.Fatalf("keys.Create: %v", err)
	}
	t.Cleanup(k.Close)
	return k, kcfg
}

// reopenKeys loads the keys from their file, as a restarted node does.
func reopenKeys(t testing.TB, kcfg keys.Config) *keys.Keys {
	t.Helper()
	k, locked, err := keys.Open(kcfg)
	if err != nil || locked {
		t.Fatalf("keys.Open: locked %v, %v", locked, err)
	}
	t.Cleanup(k.Close)
	return k
}

func encryptedConfig(t testing.TB, dir string, c Cipher) Config {
	t.Helper()
	cfg := testConfig(t, dir)
	cfg.Cipher = c
	return cfg
}

func markerEntries(first, last, term uint64) []*raftpb.Entry {
	var ents []*raftpb.Entry
	for i := first; i <= last; i++ {
		e := entry(i, term, fmt.Appendf(nil, "%s entry %d %s", marker, i, payload(i, 64)))
		if i%5 == 0 {
			// Configuration changes carry addresses: sealed too.
			e.Type = raftpb.EntryConfChange.Enum()
		}
		ents = append(ents, e)
	}
	return ents
}

func markerSnapshot(index, term uint64, size int) *raftpb.Snapshot {
	data := fmt.Appendf(nil, "%s snapshot %d ", marker, index)
	return snapshot(index, term, append(data, payload(index, size)...))
}

// filesWith returns the files under dir, relative to it, that hold s, and
// how many files it read.
func filesWith(t testing.TB, dir, s string) (found []string, files int) {
	t.Helper()
	found, files, err := diskscan.FilesContaining(dir, []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return found, files
}

func TestEncryptedRoundTrip(t *testing.T) {
	k, _ := testKeys(t)
	cfg := encryptedConfig(t, t.TempDir(), k)
	s := mustCreate(t, cfg, []byte("node-1"))
	mustSave(t, s, hardState(1, 1, 0), entries(1, 5, 1, 100))
	mustSave(t, s, hardState(1, 1, 5), append(entries(6, 8, 1, 0), entry(9, 1, nil)))
	snap8 := markerSnapshot(8, 1, 1000)
	mustSaveSnapshot(t, s, snap8)
	mustSave(t, s, hardState(2, 2, 9), markerEntries(10, 12, 2))
	mustClose(t, s)

	s, loaded := mustOpen(t, cfg)
	want := append(append(entries(9, 9, 1, 0)[:0], entry(9, 1, nil)), markerEntries(10, 12, 2)...)
	checkLoaded(t, loaded, []byte("node-1"), snap8, hardState(2, 2, 9), want)
	if loaded.Entries[0].Data != nil {
		t.Error("an entry without data came back with data")
	}

	// A 16 MiB snapshot, sealed in one piece.
	big := markerSnapshot(12, 2, 16<<20)
	mustSave(t, s, hardState(2, 2, 12), nil)
	mustSaveSnapshot(t, s, big)
	mustClose(t, s)
	s, loaded = mustOpen(t, cfg)
	defer mustClose(t, s)
	checkLoaded(t, loaded, []byte("node-1"), big, hardState(2, 2, 12), nil)
}

// Raft keeps the entries and snapshots it saves in its in-memory log:
// Storage must seal copies.
func TestEncryptionLeavesRaftsCopiesAlone(t *testing.T) {
	k, _ := testKeys(t)
	s := mustCreate(t, encryptedConfig(t, t.TempDir(), k), nil)
	defer mustClose(t, s)
	ents := markerEntries(1, 3, 1)
	before := make([]*raftpb.Entry, len(ents))
	for i, e := range ents {
		before[i] = proto.Clone(e).(*raftpb.Entry)
	}
	mustSave(t, s, hardState(1, 1, 3), ents)
	snap := markerSnapshot(3, 1, 100)
	snapBefore := proto.Clone(snap)
	mustSaveSnapshot(t, s, snap)
	checkEntries(t, ents, before)
	if !proto.Equal(snap, snapBefore) {
		t.Error("SaveSnapshot modified the snapshot it was given")
	}
}

// After writing entries and snapshots that hold a marker, no file under
// the directory holds it: WAL segments, snapshot files, the copy a repair
// keeps of a torn segment. Without a cipher the same check finds it, so
// the check can fail.
func TestNoPlaintextOnDisk(t *testing.T) {
	tests := []struct {
		name      string
		cipher    bool
		wantFound bool
	}{
		{name: "encrypted", cipher: true, wantFound: false},
		{name: "in clear", cipher: false, wantFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			smallSegments(t, 16<<10)
			dir := t.TempDir()
			cfg := testConfig(t, dir)
			cfg.KeepOldSnapshots = 1
			if tt.cipher {
				k, _ := testKeys(t)
				cfg.Cipher = k
			}
			s := mustCreate(t, cfg, []byte("node-1"))
			for i := uint64(1); i <= 200; i += 10 {
				mustSave(t, s, hardState(1, 1, i+9), markerEntries(i, i+9, 1))
				if i%50 == 1 {
					mustSaveSnapshot(t, s, markerSnapshot(i+9, 1, 2000))
				}
			}
			mustSave(t, s, nil, markerEntries(201, 201, 1))
			mustClose(t, s)

			// Tear the last record, so that Open's repair leaves a
			// .broken copy of the segment.
			segs := segmentNames(t, dir)
			last := filepath.Join(dir, walDirName, segs[len(segs)-1].name)
			offs := recordOffsets(t, last)
			tear(t, last, offs[len(offs)-2]+10, false)
			s, _ = mustOpen(t, cfg)
			mustClose(t, s)

			found, files := filesWith(t, dir, marker)
			t.Logf("%d files, marker in %v", files, found)
			broken := false
			_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				broken = broken || strings.HasSuffix(path, ".broken")
				return err
			})
			if !broken {
				t.Error("no .broken file: the repair path was not taken")
			}
			if got := len(found) > 0; got != tt.wantFound {
				t.Fatalf("marker in %v; want found %v", found, tt.wantFound)
			}
			// The metadata stays in clear: it names the node, and a
			// restart reads it before anything is decrypted.
			if found, _ := filesWith(t, dir, "node-1"); len(found) == 0 {
				t.Error("WAL metadata not found in clear")
			}
		})
	}
}

// tamperingCipher seals like Cipher c, then changes the result the way
// someone rewriting the files (checksums included) could.
type tamperingCipher struct {
	Cipher
	tamper func(sealed, ad []byte) []byte
}

func (c tamperingCipher) AppendSeal(dst, plain, ad []byte) ([]byte, error) {
	b, err := c.Cipher.AppendSeal(nil, plain, ad)
	if err != nil {
		return nil, err
	}
	return append(dst, c.tamper(b, ad)...), nil
}

// Data that does not decrypt fails Open with ErrDecrypt, naming what, and
// changes nothing on disk: no record is dropped, no snapshot skipped.
func TestOpenRefusesDataItCannotDecrypt(t *testing.T) {
	k, _ := testKeys(t)
	other, _ := testKeys(t)
	flipLast := func(b, _ []byte) []byte { b[len(b)-1] ^= 1; return b }
	tests := []struct {
		name     string
		write    Cipher // nil: in clear
		read     Cipher
		snapshot bool // write a snapshot too
		want     []error
	}{
		{name: "another node's keys", write: k, read: other, want: []error{ErrDecrypt, keys.ErrAuthentication}},
		{name: "another node's keys, with a snapshot", write: k, read: other, snapshot: true, want: []error{ErrDecrypt, keys.ErrAuthentication}},
		{name: "data written in clear", write: nil, read: k, want: []error{ErrDecrypt}},
		{name: "entry ciphertext modified", write: tamperingCipher{k, flipLast}, read: k, want: []error{ErrDecrypt, keys.ErrAuthentication}},
		{
			name: "entry sealed for another index",
			write: tamperingCipher{k, func(b, ad []byte) []byte {
				if bytes.HasPrefix(ad, []byte(entryContext)) {
					e := &raftpb.Entry{Index: proto.Uint64(99), Term: proto.Uint64(1), Type: raftpb.EntryNormal.Enum()}
					b, _ = k.Seal([]byte("moved"), entryAD(e))
				}
				return b
			}},
			read: k,
			want: []error{ErrDecrypt, keys.ErrAuthentication},
		},
		{
			name: "snapshot ciphertext modified",
			write: tamperingCipher{k, func(b, ad []byte) []byte {
				if bytes.HasPrefix(ad, []byte(snapshotContext)) {
					b[len(b)-1] ^= 1
				}
				return b
			}},
			read:     k,
			snapshot: true,
			want:     []error{ErrDecrypt, keys.ErrAuthentication},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := mustCreate(t, encryptedConfig(t, dir, tt.write), []byte("md"))
			mustSave(t, s, hardState(1, 1, 6), markerEntries(1, 6, 1))
			if tt.snapshot {
				mustSaveSnapshot(t, s, markerSnapshot(3, 1, 100))
			}
			mustClose(t, s)
			files := readFiles(t, dir)

			_, _, err := Open(encryptedConfig(t, dir, tt.read))
			for _, want := range tt.want {
				if !errors.Is(err, want) {
					t.Errorf("Open: %v, want %v", err, want)
				}
			}
			t.Logf("error: %v", err)
			after := readFiles(t, dir)
			for name, b := range files {
				if !bytes.Equal(after[name], b) {
					t.Errorf("%s changed", name)
				}
			}
			if len(after) != len(files) {
				t.Errorf("%d files after Open, %d before", len(after), len(files))
			}
		})
	}
}

// A torn tail is repaired the same way with sealed data: every whole
// record before it reads back, and the WAL takes new records.
func TestEncryptedOpenAfterTornTail(t *testing.T) {
	smallSegments(t, 8<<10)
	k, _ := testKeys(t)
	orig := t.TempDir()
	cfg := encryptedConfig(t, orig, k)
	s := mustCreate(t, cfg, []byte("md"))
	const before = 30
	for i := uint64(1); i <= before; i++ {
		mustSave(t, s, hardState(1, 1, i), entries(i, i, 1, 200))
	}
	last := entries(before+1, before+1, 1, 900)
	mustSave(t, s, nil, last)
	mustClose(t, s)

	segs := segmentNames(t, orig)
	rel := filepath.Join(walDirName, segs[len(segs)-1].name)
	offs := recordOffsets(t, filepath.Join(orig, rel))
	start, end := offs[len(offs)-2], offs[len(offs)-1]
	files := readFiles(t, orig)
	dir := t.TempDir()
	// A crash loses whole sectors: zeros start at the record or at a
	// sector boundary. (Zeros over a part of a sector could hit the sealed
	// data at the record's end, which is corruption, not a torn write.)
	zeroCuts := []int64{start}
	for off := (start/sectorBytes + 1) * sectorBytes; off < end; off += sectorBytes {
		zeroCuts = append(zeroCuts, off)
	}
	zeroCuts = append(zeroCuts, end)
	for _, zero := range []bool{false, true} {
		cuts := []int64{start, start + 1, start + 8, (start + end) / 2, end - 1, end}
		if zero {
			cuts = zeroCuts
		}
		for _, off := range cuts {
			restoreFiles(t, dir, files)
			tear(t, filepath.Join(dir, rel), off, zero)
			cfg := encryptedConfig(t, dir, k)
			s, loaded, err := Open(cfg)
			if err != nil {
				t.Fatalf("torn at %d (zeroed %v): Open: %v", off, zero, err)
			}
			// Zeros over the padding at the end of the record leave it
			// whole; from its start it never is.
			want := entries(1, before, 1, 200)
			if off >= end || len(loaded.Entries) == before+1 {
				want = append(want, last...)
			}
			if off == start && len(loaded.Entries) == before+1 {
				t.Errorf("torn at %d: the record starting there was read back", off)
			}
			checkLoaded(t, loaded, []byte("md"), nil, hardState(1, 1, before), want)
			next := uint64(len(want)) + 1
			mustSave(t, s, hardState(2, 2, next), entries(next, next, 2, 10))
			mustClose(t, s)
			s, loaded = mustOpen(t, cfg)
			checkLoaded(t, loaded, []byte("md"), nil, hardState(2, 2, next), append(want, entries(next, next, 2, 10)...))
			mustClose(t, s)
			if t.Failed() {
				t.Fatalf("torn at %d (zeroed %v)", off, zero)
			}
		}
	}
}

type failingCipher struct{ Cipher }

var errSealFailed = errors.New("seal failed")

func (failingCipher) AppendSeal([]byte, []byte, []byte) ([]byte, error) { return nil, errSealFailed }

// A Cipher that cannot seal writes nothing: the error comes back and the
// WAL is as it was.
func TestSealErrorWritesNothing(t *testing.T) {
	k, _ := testKeys(t)
	dir := t.TempDir()
	s := mustCreate(t, encryptedConfig(t, dir, k), nil)
	mustSave(t, s, hardState(1, 1, 2), entries(1, 2, 1, 10))
	mustClose(t, s)

	s, _ = mustOpen(t, encryptedConfig(t, dir, failingCipher{k}))
	if err := s.Save(hardState(1, 1, 3), entries(3, 3, 1, 10)); !errors.Is(err, errSealFailed) {
		t.Fatalf("Save: %v, want the seal error", err)
	}
	if err := s.SaveSnapshot(snapshot(2, 1, []byte("x"))); !errors.Is(err, errSealFailed) {
		t.Fatalf("SaveSnapshot: %v, want the seal error", err)
	}
	mustClose(t, s)
	s, loaded := mustOpen(t, encryptedConfig(t, dir, k))
	defer mustClose(t, s)
	checkLoaded(t, loaded, nil, nil, hardState(1, 1, 2), entries(1, 2, 1, 10))
	if n := len(snapshotNames(t, dir)); n != 0 {
		t.Fatalf("%d snapshot files, want none", n)
	}
}

func checkOlderKeys(t testing.TB, k *keys.Keys, kcfg keys.Config, want ...uint32) {
	t.Helper()
	if got := k.Status().Older; !slices.Equal(got, want) {
		t.Errorf("older keys held %v, want %v", got, want)
	}
	// And in the file, as a restart would find them.
	k2, _, err := keys.Open(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer k2.Close()
	if got := k2.Status().Older; !slices.Equal(got, want) {
		t.Errorf("older keys in the key file %v, want %v", got, want)
	}
}

// Rotation: new data is sealed with the new key, old data stays readable,
// and the old key goes from memory and from the key file once a snapshot
// taken after the rotation covers everything it sealed.
func TestKeyRotation(t *testing.T) {
	type env struct {
		t      *testing.T
		s      *Storage
		k      *keys.Keys
		kcfg   keys.Config
		cfg    Config
		loaded *Loaded
	}
	// restart closes the Storage and the keys and opens both from disk.
	restart := func(e *env) {
		e.t.Helper()
		mustClose(e.t, e.s)
		e.k.Close()
		e.k = reopenKeys(e.t, e.kcfg)
		e.cfg.Cipher = e.k
		e.s, e.loaded = mustOpen(e.t, e.cfg)
	}
	rotate := func(e *env) {
		e.t.Helper()
		if err := e.k.RotateDEK(); err != nil {
			e.t.Fatal(err)
		}
	}
	tests := []struct {
		name    string
		keepOld int
		story   func(e *env)
		// after the story and a restart
		wantSnap uint64
		wantEnts []*raftpb.Entry
	}{
		{
			name: "a snapshot after the rotation retires the old key",
			story: func(e *env) {
				mustSave(e.t, e.s, hardState(1, 1, 10), markerEntries(1, 10, 1))
				mustSaveSnapshot(e.t, e.s, markerSnapshot(5, 1, 100))
				rotate(e)
				mustSave(e.t, e.s, hardState(1, 1, 20), markerEntries(11, 20, 1))
				checkOlderKeys(e.t, e.k, e.kcfg, 1)
				restart(e) // old and new entries read back
				checkEntries(e.t, e.loaded.Entries, append(markerEntries(6, 10, 1), markerEntries(11, 20, 1)...))
				mustSaveSnapshot(e.t, e.s, markerSnapshot(20, 1, 100))
				checkOlderKeys(e.t, e.k, e.kcfg)
				mustSave(e.t, e.s, hardState(1, 1, 22), markerEntries(21, 22, 1))
			},
			wantSnap: 20,
			wantEnts: markerEntries(21, 22, 1),
		},
		{
			name: "a snapshot below the last entry the old key sealed keeps it",
			story: func(e *env) {
				mustSave(e.t, e.s, hardState(1, 1, 10), markerEntries(1, 10, 1))
				rotate(e)
				mustSave(e.t, e.s, hardState(1, 1, 12), markerEntries(11, 12, 1))
				mustSaveSnapshot(e.t, e.s, markerSnapshot(8, 1, 100)) // 9, 10 still need key 1
				checkOlderKeys(e.t, e.k, e.kcfg, 1)
				restart(e)
				checkEntries(e.t, e.loaded.Entries, markerEntries(9, 12, 1))
				mustSaveSnapshot(e.t, e.s, markerSnapshot(12, 1, 100))
				checkOlderKeys(e.t, e.k, e.kcfg)
			},
			wantSnap: 12,
		},
		{
			name:    "an older snapshot file kept for safety keeps the old key",
			keepOld: 1,
			story: func(e *env) {
				mustSave(e.t, e.s, hardState(1, 1, 10), markerEntries(1, 10, 1))
				mustSaveSnapshot(e.t, e.s, markerSnapshot(10, 1, 100))
				rotate(e)
				mustSave(e.t, e.s, hardState(1, 1, 20), markerEntries(11, 20, 1))
				mustSaveSnapshot(e.t, e.s, markerSnapshot(20, 1, 100))
				checkOlderKeys(e.t, e.k, e.kcfg, 1) // snapshot 10 is kept
				mustSave(e.t, e.s, hardState(1, 1, 30), markerEntries(21, 30, 1))
				mustSaveSnapshot(e.t, e.s, markerSnapshot(30, 1, 100))
				checkOlderKeys(e.t, e.k, e.kcfg)
			},
			wantSnap: 30,
		},
		{
			name: "two rotations before a snapshot",
			story: func(e *env) {
				mustSave(e.t, e.s, hardState(1, 1, 5), markerEntries(1, 5, 1))
				rotate(e)
				mustSave(e.t, e.s, hardState(1, 1, 10), markerEntries(6, 10, 1))
				rotate(e)
				mustSave(e.t, e.s, hardState(1, 1, 15), markerEntries(11, 15, 1))
				checkOlderKeys(e.t, e.k, e.kcfg, 1, 2)
				mustSaveSnapshot(e.t, e.s, markerSnapshot(7, 1, 100))
				checkOlderKeys(e.t, e.k, e.kcfg, 2)
				mustSaveSnapshot(e.t, e.s, markerSnapshot(15, 1, 100))
				checkOlderKeys(e.t, e.k, e.kcfg)
			},
			wantSnap: 15,
		},
		{
			// Records a new leader overwrote stay in the WAL, and etcd's
			// ReadAll returns those above the snapshot it starts from: the
			// key that sealed them must stay until a snapshot passes them.
			name: "stale records of overwritten entries keep their key",
			story: func(e *env) {
				mustSave(e.t, e.s, hardState(1, 1, 4), markerEntries(1, 10, 1))
				rotate(e)
				mustSave(e.t, e.s, hardState(2, 2, 6), markerEntries(5, 6, 2))
				mustSaveSnapshot(e.t, e.s, markerSnapshot(6, 2, 100))
				checkOlderKeys(e.t, e.k, e.kcfg, 1)
				restart(e)
				// etcd returns the stale 7..10 of term 1: had key 1 gone,
				// this Open would fail.
				if got := e.loaded.Entries; len(got) > 0 && got[0].GetTerm() == 1 {
					e.t.Logf("after the snapshot at 6, Open returns stale entries %s of term 1", span(got))
				}
				mustSave(e.t, e.s, hardState(2, 2, 12), markerEntries(7, 12, 2))
				mustSaveSnapshot(e.t, e.s, markerSnapshot(12, 2, 100))
				checkOlderKeys(e.t, e.k, e.kcfg)
			},
			wantSnap: 12,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, kcfg := testKeys(t)
			cfg := encryptedConfig(t, t.TempDir(), k)
			cfg.KeepOldSnapshots = tt.keepOld
			e := &env{t: t, k: k, kcfg: kcfg, cfg: cfg}
			e.s = mustCreate(t, cfg, []byte("md"))
			tt.story(e)
			restart(e)
			defer mustClose(t, e.s)
			if got := e.loaded.Snapshot.GetMetadata().GetIndex(); got != tt.wantSnap {
				t.Errorf("restarted from snapshot %d, want %d", got, tt.wantSnap)
			}
			if e.loaded.Snapshot != nil && !bytes.HasPrefix(e.loaded.Snapshot.GetData(), []byte(marker)) {
				t.Errorf("snapshot data %.40q does not read back", e.loaded.Snapshot.GetData())
			}
			checkEntries(t, e.loaded.Entries, tt.wantEnts)
			if found, _ := filesWith(t, cfg.Dir, marker); len(found) > 0 {
				t.Errorf("marker in %v", found)
			}
		})
	}
}

type failingRetirer struct {
	*keys.Keys
	fail bool
}

var errRetire = errors.New("cannot rewrite the key file")

func (r *failingRetirer) RetireBefore(gen uint64) error {
	if r.fail {
		return errRetire
	}
	return r.Keys.RetireBefore(gen)
}

// A key file that cannot be rewritten fails the call that found the key
// unneeded, after the snapshot is durable; a later clean-up retries.
func TestRetireErrorIsReturnedAndRetried(t *testing.T) {
	k, kcfg := testKeys(t)
	r := &failingRetirer{Keys: k, fail: true}
	s := mustCreate(t, encryptedConfig(t, t.TempDir(), r), nil)
	defer mustClose(t, s)
	mustSave(t, s, hardState(1, 1, 5), markerEntries(1, 5, 1))
	if err := k.RotateDEK(); err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, hardState(1, 1, 10), markerEntries(6, 10, 1))
	if err := s.SaveSnapshot(markerSnapshot(10, 1, 10)); !errors.Is(err, errRetire) {
		t.Fatalf("SaveSnapshot: %v, want the retire error", err)
	}
	checkOlderKeys(t, k, kcfg, 1)
	r.fail = false
	mustSave(t, s, hardState(1, 1, 12), markerEntries(11, 12, 1))
	mustSaveSnapshot(t, s, markerSnapshot(12, 1, 10))
	checkOlderKeys(t, k, kcfg)
}
