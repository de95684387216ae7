package storage

import (
	"encoding/binary"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
)

// Cipher encrypts the data of entries and snapshots before they reach the
// disk, and decrypts them when Open reads them back. The manager's is a
// *keys.Keys.
//
// Storage calls Seal and Open from the goroutines that call Save,
// SaveSnapshot and Open, sometimes two at once, so a Cipher must be safe
// for concurrent use. Neither may retain its arguments.
type Cipher interface {
	// AppendSeal encrypts and authenticates plain together with
	// additional, which is not stored, and appends the result to dst,
	// which does not overlap plain, returning the extended slice (as
	// crypto/cipher.AEAD.Seal does), so that the state files reuse one
	// buffer. The result must say which key sealed it, so that Open still
	// finds the key after a rotation; it must not be empty.
	AppendSeal(dst, plain, additional []byte) ([]byte, error)
	// Open returns the plaintext of sealed, or an error if it was not
	// sealed with a key the Cipher holds, was modified, or was sealed
	// with other additional data. The result is a new slice.
	Open(sealed, additional []byte) ([]byte, error)
}

// KeyRetirer is implemented by a Cipher whose keys rotate. Storage tells it
// which keys the data on disk no longer needs. A key generation is a number
// that grows each time the key Seal uses changes.
//
// Storage calls both methods with its internal lock held: they must not
// call the Storage.
type KeyRetirer interface {
	// Generation returns the generation of the key Seal uses now.
	// Storage reads it before sealing, so a rotation racing with a seal
	// makes storage think the data older than it is, never newer.
	Generation() uint64
	// RetireBefore says that nothing Open could read (after a crash
	// included) was sealed with a key of a generation below generation.
	// The Cipher may drop those keys. An error is returned from the Save
	// or SaveSnapshot that called it, like an error removing old files.
	RetireBefore(generation uint64) error
}

// Additional data binds each sealed payload to its place: an entry's data
// cannot be moved to another index, term or type, nor a snapshot's to
// another snapshot, without Open refusing it.
const (
	entryContext    = "shoal raft entry"
	snapshotContext = "shoal raft snapshot"
)

func entryAD(e *raftpb.Entry) []byte {
	b := make([]byte, 0, len(entryContext)+8+8+4)
	b = append(b, entryContext...)
	b = binary.BigEndian.AppendUint64(b, e.GetIndex())
	b = binary.BigEndian.AppendUint64(b, e.GetTerm())
	return binary.BigEndian.AppendUint32(b, uint32(e.GetType()))
}

func snapshotAD(m *raftpb.SnapshotMetadata) []byte {
	b := make([]byte, 0, len(snapshotContext)+8+8)
	b = append(b, snapshotContext...)
	b = binary.BigEndian.AppendUint64(b, m.GetIndex())
	return binary.BigEndian.AppendUint64(b, m.GetTerm())
}

// sealEntries returns copies of ents with their data sealed. The entries
// given belong to Raft, which keeps them in its in-memory log: they are
// never modified, so the copies share their term, index and type. The
// copies and their sealed data are each one allocation. An entry without
// data (nil, as a new leader's empty entry has) stays without, so absence
// and emptiness read back as written.
func sealEntries(c Cipher, ents []*raftpb.Entry) ([]*raftpb.Entry, error) {
	if c == nil || len(ents) == 0 {
		return ents, nil
	}
	copies := make([]raftpb.Entry, len(ents))
	out := make([]*raftpb.Entry, len(ents))
	var sealed []byte
	for i, e := range ents {
		cp := &copies[i]
		cp.Term, cp.Index, cp.Type = e.Term, e.Index, e.Type
		if e.Data != nil {
			if sealed == nil {
				sealed = make([]byte, 0, sealedSize(ents[i:]))
			}
			start := len(sealed)
			var err error
			if sealed, err = c.AppendSeal(sealed, e.Data, entryAD(e)); err != nil {
				return nil, fmt.Errorf("storage: encrypt entry %d: %w", e.GetIndex(), err)
			}
			cp.Data = sealed[start:len(sealed):len(sealed)]
		}
		out[i] = cp
	}
	return out, nil
}

// sealedSize guesses the bytes sealing the entries' data takes: their
// length plus room for each one's nonce, tag and key name. A guess too
// small costs one more allocation.
func sealedSize(ents []*raftpb.Entry) int {
	const overhead = 64
	n := 0
	for _, e := range ents {
		n += len(e.Data) + overhead
	}
	return n
}

// openEntries decrypts, in place, entries that ReadAll just decoded.
func openEntries(c Cipher, ents []*raftpb.Entry) error {
	if c == nil {
		return nil
	}
	for _, e := range ents {
		if e.Data == nil {
			continue
		}
		plain, err := c.Open(e.Data, entryAD(e))
		if err != nil {
			return fmt.Errorf("%w: entry %d (term %d): %w", ErrDecrypt, e.GetIndex(), e.GetTerm(), err)
		}
		e.Data = plain
	}
	return nil
}

// sealSnapshot returns a copy of snap, which belongs to Raft, with its data
// sealed. The metadata is shared: it is written in clear.
func sealSnapshot(c Cipher, snap *raftpb.Snapshot) (*raftpb.Snapshot, error) {
	if c == nil || snap.Data == nil {
		return snap, nil
	}
	data, err := c.AppendSeal(nil, snap.Data, snapshotAD(snap.GetMetadata()))
	if err != nil {
		return nil, fmt.Errorf("storage: encrypt snapshot at index %d: %w", snap.GetMetadata().GetIndex(), err)
	}
	return &raftpb.Snapshot{Data: data, Metadata: snap.GetMetadata()}, nil
}

// openSnapshot decrypts, in place, a snapshot just loaded from its file.
func openSnapshot(c Cipher, snap *raftpb.Snapshot) error {
	if c == nil || snap == nil || snap.Data == nil {
		return nil
	}
	m := snap.GetMetadata()
	plain, err := c.Open(snap.Data, snapshotAD(m))
	if err != nil {
		return fmt.Errorf("%w: snapshot file at index %d (term %d): %w", ErrDecrypt, m.GetIndex(), m.GetTerm(), err)
	}
	snap.Data = plain
	return nil
}
