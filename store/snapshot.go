package store

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
)

// Snapshot format (see api.StoreSnapshotRecord): the magic, then records
// each framed as a uvarint length and an encoded StoreSnapshotRecord: one
// header, one record per object in id order, one trailer with the object
// count and the CRC-32C of every byte before it. Records are written and
// read one at a time, so neither side holds more than one object's
// encoding beyond the store itself.
const (
	snapshotMagic  = "SHOALSNP"
	snapshotFormat = 1
	// maxRecordBytes bounds one record when reading, so that a corrupt
	// length cannot make Restore allocate without limit.
	maxRecordBytes = HardMaxObjectBytes + 1024
	// snapshotBuffer is the size of the buffered reader and writer.
	snapshotBuffer = 256 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot captures the store as of the last applied entry. The capture is
// a go-memdb read transaction: O(1), taken on the apply goroutine, and
// unchanged by later Applies. The returned function streams it to w and
// may run on any goroutine, while Apply goes on, and more than once.
func (s *Store) Snapshot() (write func(w io.Writer) error, err error) {
	s.applyMu.Lock()
	txn := s.db.Load().Txn(false)
	s.applyMu.Unlock()
	return func(w io.Writer) error { return writeSnapshot(w, txn) }, nil
}

func writeSnapshot(w io.Writer, txn *memdb.Txn) error {
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), snapshotBuffer)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return fmt.Errorf("store: writing snapshot: %w", err)
	}
	var buf []byte
	opts := proto.MarshalOptions{Deterministic: true}
	writeRecord := func(rec []byte) error {
		var n [binary.MaxVarintLen64]byte
		if _, err := bw.Write(n[:binary.PutUvarint(n[:], uint64(len(rec)))]); err != nil {
			return err
		}
		_, err := bw.Write(rec)
		return err
	}
	header := &api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Header{
		Header: &api.StoreSnapshotHeader{Format: snapshotFormat, Index: appliedIndex(txn)},
	}}
	buf, err := opts.MarshalAppend(buf, header)
	if err == nil {
		err = writeRecord(buf)
	}
	if err != nil {
		return fmt.Errorf("store: writing snapshot: %w", err)
	}
	it, err := txn.Get(tableObjects, indexID)
	if err != nil {
		return fmt.Errorf("store: id index: %w", err)
	}
	var count uint64
	for raw := it.Next(); raw != nil; raw = it.Next() {
		// Encoded by hand as the oneof field 2 of StoreSnapshotRecord,
		// which saves wrapping every object in two more messages.
		o := raw.(*api.Object)
		buf = protowire.AppendTag(buf[:0], 2, protowire.BytesType)
		buf = protowire.AppendVarint(buf, uint64(opts.Size(o)))
		if buf, err = opts.MarshalAppend(buf, o); err != nil {
			return fmt.Errorf("store: encoding %s %q: %w", o.GetKind(), o.GetName(), err)
		}
		if err := writeRecord(buf); err != nil {
			return fmt.Errorf("store: writing snapshot: %w", err)
		}
		count++
	}
	if err := bw.Flush(); err != nil { // the CRC must have seen every byte
		return fmt.Errorf("store: writing snapshot: %w", err)
	}
	trailer := &api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Trailer{
		Trailer: &api.StoreSnapshotTrailer{Objects: count, Crc32C: crc.Sum32()},
	}}
	if buf, err = opts.MarshalAppend(buf[:0], trailer); err == nil {
		err = writeRecord(buf)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("store: writing snapshot: %w", err)
	}
	return nil
}

// Restore replaces the whole store with the snapshot in r, taken at index
// (the header's index may be lower: entries that changed nothing in the
// store, such as configuration changes, are not applied to it). It reads r
// to its end and checks everything (framing, CRC, object count, every
// object's validity, unique ids and names) into a new database before it
// swaps that in, so readers see the old state or the new one and an error
// (wrapping ErrCorruptSnapshot, never a panic) leaves the store as it was.
// Every watcher is then told to list again (watch.ErrReset), and new
// watches may start from index.
func (s *Store) Restore(index uint64, r io.Reader) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	db, count, err := readSnapshot(index, r)
	if err != nil {
		return err
	}
	s.db.Store(db)
	s.events.Reset(index)
	s.log.Info("store restored from snapshot", "index", index, "objects", count)
	return nil
}
