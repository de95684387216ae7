package store

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/shoal-project/shoal/api"
)

// Restore reads on three goroutines: one decodes and checks records, the
// caller's inserts them into the new tables but for the names index,
// which a third builds, in batches of restoreChunk objects, so that the
// three overlap.
const (
	// restoreChunk is how many objects go to the inserting goroutine at
	// once.
	restoreChunk = 1024
	// restoreQueue is how many chunks may wait between the two.
	restoreQueue = 4
)

// restoreBatch is one chunk of checked objects, or the end of the
// snapshot (done, with the count), or the error that stopped decoding.
type restoreBatch struct {
	objs     []stored
	requests []remembered
	done     bool
	count    uint64
	err      error
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
}

func readSnapshot(index uint64, r io.Reader) (tables, uint64, error) {
	sr := &snapshotReader{br: bufio.NewReaderSize(r, snapshotBuffer), crc: crc32.New(castagnoli)}
	h, err := sr.header(index)
	if err != nil {
		return tables{}, 0, err
	}
	batches := make(chan restoreBatch, restoreQueue)
	stop := make(chan struct{})
	go sr.decode(h.GetIndex(), h.GetFormat(), batches, stop)
	t := newTables()
	count, err := insertBatches(t, batches)
	close(stop)
	for range batches { // until the decoder has gone
	}
	if err != nil {
		return tables{}, 0, err
	}
	return t, count, nil
}

// insertBatches inserts what the decoder sends until it is done or fails.
// The names index is built on a goroutine of its own, beside the others:
// with decoding, three goroutines share the work. The decoder's id order
// check rules out a duplicate id; a duplicate kind and name shows in the
// names index.
func insertBatches(t tables, batches <-chan restoreBatch) (uint64, error) {
	names := make(chan []stored, restoreQueue)
	named := make(chan error, 1)
	go func() { named <- insertNames(t, names) }()
	count, err := insertOthers(t, batches, names)
	close(names)
	if nerr := <-named; err == nil {
		err = nerr
	}
	return count, err
}

// insertOthers inserts the objects' ids and labels, and the remembered
// requests, and hands each chunk of objects on to names.
func insertOthers(t tables, batches <-chan restoreBatch, names chan<- []stored) (uint64, error) {
	for b := range batches {
		if b.err != nil {
			return 0, b.err
		}
		if b.done {
			return b.count, nil
		}
		names <- b.objs
		for _, s := range b.objs {
			t.ids.ReplaceOrInsert(s.idEntry())
			t.putLabels(s, stored{})
		}
		seen := make(map[string]bool, len(b.requests)) // they all come in the last batch
		for _, r := range b.requests {                 // in increasing order, checked by the decoder
			if seen[r.id] {
				return 0, corrupt("request %q remembered twice", r.id)
			}
			seen[r.id] = true
			t.requests.ReplaceOrInsert(r)
		}
	}
	return 0, corrupt("decoder stopped without a word") // not reached
}

// insertNames inserts the names of the chunks of objects it is handed,
// until the channel closes, and returns the first name found twice.
func insertNames(t tables, chunks <-chan []stored) error {
	var err error
	for objs := range chunks {
		for _, s := range objs {
			if err != nil {
				break
			}
			if _, taken := t.names.ReplaceOrInsert(s.nameEntry()); taken {
				err = corrupt("%s %q twice", s.kind, s.name)
			}
		}
	}
	return err
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
	case h.GetFormat() != 1 && h.GetFormat() != snapshotFormat:
		return nil, corrupt("format %d, only 1 to %d are known", h.GetFormat(), snapshotFormat)
	case h.GetIndex() > index:
		return nil, corrupt("taken at index %d, restored as index %d", h.GetIndex(), index)
	}
	return h, nil
}

// decode reads and checks the object records and the trailer, sending
// them on in chunks, until the end, an error, or stop. It closes batches
// when it returns.
func (sr *snapshotReader) decode(snapIndex uint64, format uint32, batches chan<- restoreBatch, stop <-chan struct{}) {
	defer close(batches)
	send := func(b restoreBatch) bool {
		select {
		case batches <- b:
			return true
		case <-stop:
			return false
		}
	}
	var count, requests uint64
	var lastID string
	var lastRequest uint64
	chunk := make([]stored, 0, restoreChunk)
	var reqs []remembered
	// accept takes the next object, checked but for its place in the id
	// order: increasing ids rule out a duplicate id without a lookup.
	accept := func(held stored) bool {
		if count > 0 && held.id <= lastID {
			send(restoreBatch{err: corrupt("object %d: id %q after %q: not in id order, or twice", count+1, held.id, lastID)})
			return false
		}
		lastID = held.id
		count++
		chunk = append(chunk, held)
		if len(chunk) == restoreChunk {
			if !send(restoreBatch{objs: chunk}) {
				return false
			}
			chunk = make([]stored, 0, restoreChunk)
		}
		return true
	}
	for {
		sum := sr.crc.Sum32() // of every byte before this record
		err := sr.read()
		if err == nil && format >= 2 && requests == 0 {
			if held, ok := sr.heldAsIs(snapIndex); ok {
				if !accept(held) {
					return
				}
				continue
			}
		}
		var rec *api.StoreSnapshotRecord
		if err == nil {
			rec, err = sr.record()
		}
		if err != nil {
			send(restoreBatch{err: corrupt("after %d objects: %v", count, noEOF(err))})
			return
		}
		if t := rec.GetTrailer(); t != nil {
			switch {
			case t.GetObjects() != count:
				err = corrupt("trailer counts %d objects, read %d", t.GetObjects(), count)
			case t.GetRequests() != requests:
				err = corrupt("trailer counts %d remembered requests, read %d", t.GetRequests(), requests)
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
			if (len(chunk) > 0 || len(reqs) > 0) && !send(restoreBatch{objs: chunk, requests: reqs}) {
				return
			}
			send(restoreBatch{done: true, count: count})
			return
		}
		if r := rec.GetRequest(); r != nil {
			held, err := checkRemembered(r, snapIndex)
			switch {
			case err != nil:
				err = corrupt("remembered request %d: %v", requests+1, err)
			case held.index <= lastRequest:
				err = corrupt("remembered request %d: at index %d, after %d", requests+1, held.index, lastRequest)
			case requests == RememberedRequests:
				err = corrupt("more than %d remembered requests", RememberedRequests)
			}
			if err != nil {
				send(restoreBatch{err: err})
				return
			}
			lastRequest = held.index
			requests++
			reqs = append(reqs, held)
			continue
		}
		o := rec.GetObject()
		switch {
		case o == nil:
			send(restoreBatch{err: corrupt("record %d is neither an object, a request nor the trailer", count+requests+1)})
			return
		case requests > 0:
			send(restoreBatch{err: corrupt("object %d after the remembered requests", count+1)})
			return
		}
		if err := checkStored(o, snapIndex); err != nil {
			send(restoreBatch{err: corrupt("object %d: %v", count+1, err)})
			return
		}
		held, err := sr.held(o, format)
		if err != nil {
			send(restoreBatch{err: corrupt("object %d: %v", count+1, err)})
			return
		}
		if !accept(held) {
			return
		}
	}
}

// held returns o, the object of the record just read, as the store holds
// it. A snapshot of format 2 or later carries the store's own encoding of
// every object (writeSnapshot copies it), which is kept as it is: one
// allocation instead of encoding o again, which took a third of decoding a
// record. It is encoded again if the record holds anything else, or
// if the encoding's indexed fields are not o's (a field written twice,
// which a decoder takes the last of): every manager then holds the store's
// own encoding whatever wrote the snapshot.
func (sr *snapshotReader) held(o *api.Object, format uint32) (stored, error) {
	if enc, ok := sr.objectEncoding(); ok && format >= 2 {
		s, err := parseStored(string(enc))
		if err == nil && s.kind == o.GetKind() && s.id == o.GetId() && s.name == o.GetName() && len(s.labels) == len(o.GetLabels()) {
			return s, nil
		}
	}
	return storeObject(o)
}

// objectEncoding returns the encoding the record read last holds, when the
// record is an object record and nothing else.
func (sr *snapshotReader) objectEncoding() ([]byte, bool) {
	num, typ, n := protowire.ConsumeTag(sr.buf)
	if n <= 0 || num != 2 || typ != protowire.BytesType {
		return nil, false
	}
	enc, m := protowire.ConsumeBytes(sr.buf[n:])
	return enc, m > 0 && n+m == len(sr.buf) && len(enc) > 0
}

// heldAsIs returns the object of the record read last as the store holds
// it, without decoding it into an *api.Object, when the record is an
// object record that holds the store's own encoding and that encoding
// passes every check decoding and checkStored make; otherwise false, and
// the record is decoded, which also says what is wrong with it. Decoding
// took half of a restore's decoding goroutine, and most of its garbage.
func (sr *snapshotReader) heldAsIs(snapIndex uint64) (stored, bool) {
	enc, ok := sr.objectEncoding()
	if !ok || !plainObject(enc) {
		return stored{}, false
	}
	s, err := parseStored(string(enc))
	if err != nil || s.version == 0 || s.version > snapIndex || len(s.labels) > MaxLabels ||
		ValidateKind(s.kind) != nil || ValidateID(s.id) != nil || ValidateName(s.name) != nil {
		return stored{}, false
	}
	for i, l := range s.labels {
		// In key order, as a deterministic encoding writes them: a key
		// twice, of which decoding keeps the last, is decoded.
		if (i > 0 && l.key <= s.labels[i-1].key) || validateLabel(l.key, l.value) != nil {
			return stored{}, false
		}
	}
	return s, true
}

// plainObject reports whether enc, an encoded Object, holds each field
// once (the labels excepted) and with its own wire type, no field unknown
// to Object, labels of a key and a value each, and valid created_at and
// updated_at: what decoding would accept, and checkStored of the times,
// but also refusing what decoding would take the last of, merge or skip.
func plainObject(enc []byte) bool {
	var seen uint16
	for len(enc) > 0 {
		num, typ, n := protowire.ConsumeTag(enc)
		if n < 0 || num < 1 || num > 8 || (num != 4 && seen&(1<<num) != 0) {
			return false
		}
		seen |= 1 << num
		enc = enc[n:]
		if num == 6 {
			_, n := protowire.ConsumeVarint(enc)
			if typ != protowire.VarintType || n < 0 {
				return false
			}
			enc = enc[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(enc)
		if typ != protowire.BytesType || n < 0 {
			return false
		}
		enc = enc[n:]
		switch num {
		case 4:
			if !onlyFields(v, protowire.BytesType, nil) {
				return false
			}
		case 7, 8:
			if !validTimestamp(v) {
				return false
			}
		}
	}
	return seen&(1<<7) != 0 && seen&(1<<8) != 0
}

// validTimestamp reports whether v encodes a google.protobuf.Timestamp
// that CheckValid accepts.
func validTimestamp(v []byte) bool {
	var seconds, nanos uint64
	if !onlyFields(v, protowire.VarintType, func(num protowire.Number, x uint64) {
		if num == 1 {
			seconds = x
		} else {
			nanos = x
		}
	}) {
		return false
	}
	t := timestamppb.Timestamp{Seconds: int64(seconds), Nanos: int32(nanos)}
	return uint64(int32(nanos)) == nanos && t.CheckValid() == nil
}

// onlyFields reports whether msg holds fields 1 and 2 only, once each and
// of wire type typ; varint, if set, is given the value of each varint.
func onlyFields(msg []byte, typ protowire.Type, varint func(num protowire.Number, x uint64)) bool {
	var seen [3]bool
	for len(msg) > 0 {
		num, t, n := protowire.ConsumeTag(msg)
		if n < 0 || t != typ || (num != 1 && num != 2) || seen[num] {
			return false
		}
		seen[num] = true
		msg = msg[n:]
		if typ == protowire.VarintType {
			x, n := protowire.ConsumeVarint(msg)
			if n < 0 {
				return false
			}
			if varint != nil {
				varint(num, x)
			}
			msg = msg[n:]
			continue
		}
		if n = protowire.ConsumeFieldValue(num, t, msg); n < 0 {
			return false
		}
		msg = msg[n:]
	}
	return true
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

// read reads the next record's bytes into sr.buf.
func (sr *snapshotReader) read() error {
	n, err := binary.ReadUvarint(sr)
	if err != nil {
		return fmt.Errorf("record length: %w", err)
	}
	if n > maxRecordBytes {
		return fmt.Errorf("record of %d bytes exceeds %d", n, maxRecordBytes)
	}
	if cap(sr.buf) < int(n) {
		sr.buf = make([]byte, n)
	}
	sr.buf = sr.buf[:n]
	if _, err := io.ReadFull(sr.br, sr.buf); err != nil {
		return fmt.Errorf("record of %d bytes: %w", n, noEOF(err))
	}
	sr.crc.Write(sr.buf)
	return nil
}

// next reads and decodes one record.
func (sr *snapshotReader) next() (*api.StoreSnapshotRecord, error) {
	if err := sr.read(); err != nil {
		return nil, err
	}
	return sr.record()
}

// record decodes the record read last.
func (sr *snapshotReader) record() (*api.StoreSnapshotRecord, error) {
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
