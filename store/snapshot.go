package store

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
)

// Snapshot format (see api.StoreSnapshotRecord): the magic, then records
// each framed as a uvarint length and an encoded StoreSnapshotRecord: one
// header, one record per object in id order, one per remembered request
// in the order they were applied, one trailer with the counts and the CRC-32C of
// every byte before it. Format 1 had no remembered requests; it is still
// read. Records are written and
// read one at a time, so neither side holds more than one object's
// encoding beyond the store itself.
const (
	snapshotMagic  = "SHOALSNP"
	snapshotFormat = 2
	// maxRecordBytes bounds one record when reading, so that a corrupt
	// length cannot make Restore allocate without limit.
	maxRecordBytes = HardMaxObjectBytes + 1024
	// snapshotBuffer is the size of the buffered reader and writer.
	snapshotBuffer = 256 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot captures the store as of the last applied entry: one
// immutable state, O(1) to take on the apply goroutine, and unchanged by
// later Applies. The returned function streams it to w and may run on any
// goroutine, while Apply goes on, and more than once.
func (s *Store) Snapshot() (write func(w io.Writer) error, err error) {
	return s.Capture().WriteSnapshot, nil
}

func writeSnapshot(w io.Writer, st *state) error {
	crc := crc32.New(castagnoli)
	bw := bufio.NewWriterSize(io.MultiWriter(w, crc), snapshotBuffer)
	if _, err := bw.WriteString(snapshotMagic); err != nil {
		return fmt.Errorf("store: writing snapshot: %w", err)
	}
	var buf []byte
	opts := proto.MarshalOptions{Deterministic: true}
	var n [binary.MaxVarintLen64]byte // here, not per record: it escapes
	writeRecord := func(rec []byte) error {
		if _, err := bw.Write(n[:binary.PutUvarint(n[:], uint64(len(rec)))]); err != nil {
			return err
		}
		_, err := bw.Write(rec)
		return err
	}
	header := &api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Header{
		Header: &api.StoreSnapshotHeader{Format: snapshotFormat, Index: st.index},
	}}
	buf, err := opts.MarshalAppend(buf, header)
	if err == nil {
		err = writeRecord(buf)
	}
	if err != nil {
		return fmt.Errorf("store: writing snapshot: %w", err)
	}
	var count uint64
	st.ids.Ascend(func(e byID) bool {
		// The blob is the object's encoding: written as the oneof field 2
		// of StoreSnapshotRecord, which saves decoding it and wrapping it
		// in two more messages.
		buf = protowire.AppendTag(buf[:0], 2, protowire.BytesType)
		buf = protowire.AppendString(buf, e.blob)
		err = writeRecord(buf)
		count++
		return err == nil
	})
	var requests uint64
	if err == nil {
		st.requests.Ascend(func(r remembered) bool { // likewise, field 4
			buf = protowire.AppendTag(buf[:0], 4, protowire.BytesType)
			buf = protowire.AppendString(buf, r.blob)
			err = writeRecord(buf)
			requests++
			return err == nil
		})
	}
	if err == nil {
		err = bw.Flush() // the CRC must have seen every byte
	}
	if err != nil {
		return fmt.Errorf("store: writing snapshot: %w", err)
	}
	trailer := &api.StoreSnapshotRecord{Record: &api.StoreSnapshotRecord_Trailer{
		Trailer: &api.StoreSnapshotTrailer{Objects: count, Crc32C: crc.Sum32(), Requests: requests},
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
// object's validity, unique ids and names, the remembered requests) into
// new tables before it
// swaps that in, so readers see the old state or the new one and an error
// (wrapping ErrCorruptSnapshot, never a panic) leaves the store as it was.
// Every watcher is then told to list again (watch.ErrReset), and new
// watches may start from index.
func (s *Store) Restore(index uint64, r io.Reader) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	t, count, err := readSnapshot(index, r)
	if err != nil {
		return err
	}
	s.publish(&state{index: index, restores: s.cur.Load().restores + 1, tables: t})
	requests := indexRequests(t)
	s.reqMu.Lock()
	s.requestIndex = requests
	s.reqMu.Unlock()
	s.events.Reset(index)
	s.log.Info("store restored from snapshot", "index", index, "objects", count)
	return nil
}
