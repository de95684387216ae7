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
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
)

// Restore reads on two goroutines: one decodes and checks records, the
// caller's inserts them into the new database, in batches of restoreChunk
// objects. Inserting is the slower half; the overlap saves most of the
// decoding time.
const (
	// restoreChunk is how many objects go to the inserting goroutine at
	// once and into one go-memdb write transaction. The new database is
	// invisible until Restore swaps it in, so committing part way changes
	// nothing for readers; it keeps each transaction's cache of writable
	// radix nodes (8192 in go-immutable-radix) from thrashing.
	restoreChunk = 1024
	// restoreQueue is how many chunks may wait between the two.
	restoreQueue = 4
)

// restoreBatch is one chunk of checked objects, or the end of the
// snapshot (done, with the count), or the error that stopped decoding.
type restoreBatch struct {
	objs  []*api.Object
	done  bool
	count uint64
	err   error
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
}

func readSnapshot(index uint64, r io.Reader) (*memdb.MemDB, uint64, error) {
	sr := &snapshotReader{br: bufio.NewReaderSize(r, snapshotBuffer), crc: crc32.New(castagnoli)}
	h, err := sr.header(index)
	if err != nil {
		return nil, 0, err
	}
	db, err := newDB(index)
	if err != nil {
		return nil, 0, err
	}
	batches := make(chan restoreBatch, restoreQueue)
	stop := make(chan struct{})
	go sr.decode(h.GetIndex(), batches, stop)
	count, err := insertBatches(db, batches)
	close(stop)
	for range batches { // until the decoder has gone
	}
	if err != nil {
		return nil, 0, err
	}
	// Two objects of one kind and name would share one key of the unique
	// kind_name index, the later replacing the earlier: count the keys.
	if names := countKeys(db, indexKindName); names != count {
		return nil, 0, corrupt("%d objects but %d distinct kinds and names", count, names)
	}
	return db, count, nil
}

// insertBatches inserts what the decoder sends until it is done or fails.
func insertBatches(db *memdb.MemDB, batches <-chan restoreBatch) (uint64, error) {
	for b := range batches {
		if b.err != nil {
			return 0, b.err
		}
		if b.done {
			return b.count, nil
		}
		// Nothing is read in this transaction: a read in a go-memdb
		// write transaction drops its cache of writable radix nodes, so
		// that every later insert copies its whole path again.
		// Duplicates are caught by the decoder's id order check and by
		// countKeys instead.
		txn := db.Txn(true)
		for _, o := range b.objs {
			if err := txn.Insert(tableObjects, o); err != nil {
				txn.Abort()
				return 0, fmt.Errorf("store: insert: %w", err)
			}
		}
		txn.Commit()
	}
	return 0, corrupt("decoder stopped without a word") // not reached
}

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

// snapshotReader reads framed records and keeps the CRC of what it read.
type snapshotReader struct {
	br  *bufio.Reader
	crc hash.Hash32
	buf []byte
	one [1]byte
}

// header reads the magic and the header record.
func (sr *snapshotReader) header(index uint64) (*api.StoreSnapshotHeader, error) {
	magic := make([]byte, len(snapshotMagic))
	if _, err := io.ReadFull(sr.br, magic); err != nil || string(magic) != snapshotMagic {
		return nil, corrupt("no snapshot magic")
	}
	sr.crc.Write(magic)
	rec, err := sr.next()
	if err != nil {
		return nil, corrupt("header: %v", noEOF(err))
	}
	h := rec.GetHeader()
	switch {
	case h == nil:
		return nil, corrupt("first record is not a header")
	case h.GetFormat() != snapshotFormat:
		return nil, corrupt("format %d, only %d is known", h.GetFormat(), snapshotFormat)
	case h.GetIndex() > index:
		return nil, corrupt("taken at index %d, restored as index %d", h.GetIndex(), index)
	}
	return h, nil
}

// decode reads and checks the object records and the trailer, sending
// them on in chunks, until the end, an error, or stop. It closes batches
// when it returns.
func (sr *snapshotReader) decode(snapIndex uint64, batches chan<- restoreBatch, stop <-chan struct{}) {
	defer close(batches)
	send := func(b restoreBatch) bool {
		select {
		case batches <- b:
			return true
		case <-stop:
			return false
		}
	}
	var count uint64
	var lastID string
	chunk := make([]*api.Object, 0, restoreChunk)
	for {
		sum := sr.crc.Sum32() // of every byte before this record
		rec, err := sr.next()
		if err != nil {
			send(restoreBatch{err: corrupt("after %d objects: %v", count, noEOF(err))})
			return
		}
		if t := rec.GetTrailer(); t != nil {
			switch {
			case t.GetObjects() != count:
				err = corrupt("trailer counts %d objects, read %d", t.GetObjects(), count)
			case t.GetCrc32C() != sum:
				err = corrupt("CRC-32C %08x, trailer says %08x", sum, t.GetCrc32C())
			default:
				if _, rerr := sr.br.ReadByte(); !errors.Is(rerr, io.EOF) {
					err = corrupt("data after the trailer")
				}
			}
			if err != nil {
				send(restoreBatch{err: err})
				return
			}
			if len(chunk) > 0 && !send(restoreBatch{objs: chunk}) {
				return
			}
			send(restoreBatch{done: true, count: count})
			return
		}
		o := rec.GetObject()
		if o == nil {
			send(restoreBatch{err: corrupt("record %d is neither an object nor the trailer", count+1)})
			return
		}
		// Increasing ids rule out a duplicate id without a lookup.
		if count > 0 && o.GetId() <= lastID {
			send(restoreBatch{err: corrupt("object %d: id %q after %q: not in id order, or twice", count+1, o.GetId(), lastID)})
			return
		}
		lastID = o.GetId()
		if err := checkStored(o, snapIndex); err != nil {
			send(restoreBatch{err: corrupt("object %d: %v", count+1, err)})
			return
		}
		count++
		chunk = append(chunk, o)
		if len(chunk) == restoreChunk {
			if !send(restoreBatch{objs: chunk}) {
				return
			}
			chunk = make([]*api.Object, 0, restoreChunk)
		}
	}
}

// checkStored checks one object as Apply would have stored it.
func checkStored(o *api.Object, snapIndex uint64) error {
	if err := validateObject(o); err != nil {
		return err
	}
	if err := validateTimes(o); err != nil {
		return err
	}
	if o.GetVersion() == 0 || o.GetVersion() > snapIndex {
		return fmt.Errorf("%s %q has version %d, outside [1, %d]", o.GetKind(), o.GetName(), o.GetVersion(), snapIndex)
	}
	return nil
}

func (sr *snapshotReader) ReadByte() (byte, error) {
	b, err := sr.br.ReadByte()
	if err == nil {
		sr.one[0] = b
		sr.crc.Write(sr.one[:])
	}
	return b, err
}

// next reads one record.
func (sr *snapshotReader) next() (*api.StoreSnapshotRecord, error) {
	n, err := binary.ReadUvarint(sr)
	if err != nil {
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
