package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
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

// snapshotReader reads framed records and keeps the CRC of what it read.
type snapshotReader struct {
	br  *bufio.Reader
	crc hash.Hash32
	buf []byte
	one [1]byte
}

func (sr *snapshotReader) ReadByte() (byte, error) {
	b, err := sr.br.ReadByte()
	if err == nil {
		sr.one[0] = b
		sr.crc.Write(sr.one[:])
	}
	return b, err
}

// next reads one record, returning io.EOF only at a clean end between
// records.
func (sr *snapshotReader) next() (*api.StoreSnapshotRecord, error) {
	n, err := binary.ReadUvarint(sr)
	if err != nil {
		if errors.Is(err, io.EOF) && n == 0 {
			return nil, err
		}
		return nil, fmt.Errorf("record length: %w", err)
	}
	if n > maxRecordBytes {
		return nil, fmt.Errorf("record of %d bytes exceeds %d", n, maxRecordBytes)
	}
	if cap(sr.buf) < int(n) {
		sr.buf = make([]byte, n)
	}
	sr.buf = sr.buf[:n]
	if _, err := io.ReadFull(sr.br, sr.buf); err != nil {
		return nil, fmt.Errorf("record of %d bytes: %w", n, noEOF(err))
	}
	sr.crc.Write(sr.buf)
	rec := &api.StoreSnapshotRecord{}
	if err := proto.Unmarshal(sr.buf, rec); err != nil {
		return nil, fmt.Errorf("record: %w", err)
	}
	return rec, nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func readSnapshot(index uint64, r io.Reader) (*memdb.MemDB, uint64, error) {
	sr := &snapshotReader{br: bufio.NewReaderSize(r, snapshotBuffer), crc: crc32.New(castagnoli)}
	corrupt := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
	}
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(sr.br, magic); err != nil || string(magic) != snapshotMagic {
		return nil, 0, corrupt("no snapshot magic")
	}
	sr.crc.Write(magic)
	rec, err := sr.next()
	if err != nil {
		return nil, 0, corrupt("header: %v", noEOF(err))
	}
	h := rec.GetHeader()
	switch {
	case h == nil:
		return nil, 0, corrupt("first record is not a header")
	case h.GetFormat() != snapshotFormat:
		return nil, 0, corrupt("format %d, only %d is known", h.GetFormat(), snapshotFormat)
	case h.GetIndex() > index:
		return nil, 0, corrupt("taken at index %d, restored as index %d", h.GetIndex(), index)
	}
	db, err := newDB(index)
	if err != nil {
		return nil, 0, err
	}
	txn := db.Txn(true)
	defer func() { txn.Abort() }()
	var count uint64
	var lastID string
	for {
		sum := sr.crc.Sum32() // of every byte before this record
		rec, err := sr.next()
		if err != nil {
			return nil, 0, corrupt("after %d objects: %v", count, noEOF(err))
		}
		if t := rec.GetTrailer(); t != nil {
			if t.GetObjects() != count {
				return nil, 0, corrupt("trailer counts %d objects, read %d", t.GetObjects(), count)
			}
			if t.GetCrc32C() != sum {
				return nil, 0, corrupt("CRC-32C %08x, trailer says %08x", sum, t.GetCrc32C())
			}
			break
		}
		o := rec.GetObject()
		if o == nil {
			return nil, 0, corrupt("record %d is neither an object nor the trailer", count+1)
		}
		// Increasing ids rule out a duplicate id without a lookup.
		if count > 0 && o.GetId() <= lastID {
			return nil, 0, corrupt("object %d: id %q after %q: not in id order, or twice", count+1, o.GetId(), lastID)
		}
		lastID = o.GetId()
		if err := restoreObject(txn, o, h.GetIndex()); err != nil {
			return nil, 0, corrupt("object %d: %v", count+1, err)
		}
		count++
		if count%restoreChunk == 0 {
			txn.Commit()
			txn = db.Txn(true)
		}
	}
	if _, err := sr.br.ReadByte(); !errors.Is(err, io.EOF) {
		return nil, 0, corrupt("data after the trailer")
	}
	txn.Commit()
	// Two objects of one kind and name would share one key of the unique
	// kind_name index, the later replacing the earlier: count the keys.
	if names := countKeys(db, indexKindName); names != count {
		return nil, 0, corrupt("%d objects but %d distinct kinds and names", count, names)
	}
	return db, count, nil
}

// restoreChunk is how many objects Restore inserts per go-memdb write
// transaction. The new database is invisible until Restore swaps it in,
// so committing part way changes nothing for readers; it keeps each
// transaction's cache of writable radix nodes (8192 nodes in
// go-immutable-radix) from thrashing, which would copy every insert's
// path again.
const restoreChunk = 1024

func countKeys(db *memdb.MemDB, index string) uint64 {
	it, err := db.Txn(false).Get(tableObjects, index)
	if err != nil {
		panic(fmt.Sprintf("store: %s index: %v", index, err)) // the schema has it
	}
	var n uint64
	for raw := it.Next(); raw != nil; raw = it.Next() {
		n++
	}
	return n
}

// restoreObject checks one object as Apply would have stored it and
// inserts it. It reads nothing from txn: a read in a go-memdb write
// transaction drops the transaction's cache of writable radix nodes, so
// that the next insert copies its whole path again. Duplicates are caught
// by the id order and by countKeys instead.
func restoreObject(txn *memdb.Txn, o *api.Object, snapIndex uint64) error {
	if err := validateObject(o); err != nil {
		return err
	}
	if err := validateTimes(o); err != nil {
		return err
	}
	if o.GetVersion() == 0 || o.GetVersion() > snapIndex {
		return fmt.Errorf("%s %q has version %d, outside [1, %d]", o.GetKind(), o.GetName(), o.GetVersion(), snapIndex)
	}
	if err := txn.Insert(tableObjects, o); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	return nil
}
