package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"go.etcd.io/etcd/client/pkg/v3/fileutil"
	"go.etcd.io/etcd/server/v3/storage/wal"
	"go.etcd.io/etcd/server/v3/storage/wal/walpb"
	"google.golang.org/protobuf/encoding/protowire"
)

// The WAL's framing, as etcd's encoder writes it: an 8-byte little-endian
// length, the marshalled walpb.Record, zero padding to 8 bytes. A negative
// length carries the padding size in the low 3 bits of its top byte. Each
// record's Crc is the running CRC-32C of the Data of every record before
// it, so two consecutive records check each other.
const (
	frameHeaderBytes = 8
	sectorBytes      = 512 // etcd's minSectorSize: the unit a torn write loses
)

var (
	crcTable   = crc32.MakeTable(crc32.Castagnoli)
	zeroSector [sectorBytes]byte
)

// checkTornTail fails with ErrCorrupt when the last WAL segment stops being
// readable at some offset but intact records follow further on, unless a
// zeroed sector lies between them.
//
// etcd's decoder ends the log at the first zero length (preallocated space)
// and at a record that runs past the end of the file or holds a zeroed
// sector (a torn write); wal.Repair and ReadAll then cut the segment there.
// A crash loses only the unsynced end of the log, and a write the disk
// tore leaves zeroed sectors, so intact records after the stop with no
// zeroed sector before them mean the stop is damage, such as a flipped bit
// in a length field. Cutting there would silently drop records that were
// synced and acknowledged.
//
// It returns the segment's name for logging. Damage of another kind (a
// checksum mismatch) is left to ReadAll to report.
func checkTornTail(walDir string) (string, error) {
	segs, err := listSegments(walDir)
	if err != nil || len(segs) == 0 {
		return "", err
	}
	name := segs[len(segs)-1].name
	f, err := os.Open(filepath.Join(walDir, name))
	if err != nil {
		return name, fmt.Errorf("storage: open WAL segment: %w", err)
	}
	defer f.Close()

	stop, ok := decodableEnd(f)
	if !ok {
		return name, nil
	}
	info, err := f.Stat()
	if err != nil {
		return name, fmt.Errorf("storage: stat WAL segment %s: %w", name, err)
	}
	rest := make([]byte, info.Size()-stop)
	if _, err := f.ReadAt(rest, stop); err != nil && !errors.Is(err, io.EOF) {
		return name, fmt.Errorf("storage: read WAL segment %s: %w", name, err)
	}
	at, found := intactRecordsAfter(rest, stop)
	if !found || zeroedSectorBetween(rest, stop, at) {
		return name, nil
	}
	return name, fmt.Errorf("%w: %s is readable up to offset %d, but intact records follow at offset %d",
		ErrCorrupt, name, stop, at)
}

// decodableEnd decodes a segment with etcd's decoder, as wal.Repair does,
// and returns the offset where the log ends for it. ok is false when the
// decoder stops on anything but the end of the log or a torn record.
func decodableEnd(f *os.File) (end int64, ok bool) {
	dec := wal.NewDecoder(fileutil.NewFileReader(f))
	rec := &walpb.Record{}
	for {
		err := dec.Decode(rec)
		switch {
		case err == nil:
			if rec.GetType() == wal.CrcType {
				if c := dec.LastCRC(); c != 0 && rec.Validate(c) != nil {
					return 0, false
				}
				dec.UpdateCRC(rec.GetCrc())
			}
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return dec.LastOffset(), true
		default:
			return 0, false
		}
	}
}

// intactRecordsAfter looks in b, which starts at file offset base, for two
// consecutive frames whose checksums chain, starting at an 8-aligned file
// offset. It returns the file offset of the first of them.
func intactRecordsAfter(b []byte, base int64) (int64, bool) {
	first := (base + frameHeaderBytes - 1) / frameHeaderBytes * frameHeaderBytes
	for off := first - base; off+frameHeaderBytes <= int64(len(b)); off += frameHeaderBytes {
		// Most of a segment's tail is preallocated zeros: skip them a
		// sector at a time.
		for off+sectorBytes <= int64(len(b)) && bytes.Equal(b[off:off+sectorBytes], zeroSector[:]) {
			off += sectorBytes
		}
		r1, next, ok := parseFrame(b, off)
		if !ok {
			continue
		}
		r2, _, ok := parseFrame(b, next)
		if !ok || r2.typ == wal.CrcType {
			continue
		}
		if r2.crc == crc32.Update(r1.crc, crcTable, r2.data) {
			return base + off, true
		}
	}
	return 0, false
}

// frame is a WAL record as parseFrame reads it.
type frame struct {
	typ  int64
	crc  uint32
	data []byte
}

// parseFrame parses the frame at b[off:] strictly, in the form etcd's
// encoder writes: a well-formed length and padding, then the record's type
// (one etcd knows), its checksum and its data, in field order and nothing
// else. Being this strict makes garbage fail within a few bytes, so a scan
// over a damaged segment stays linear. It returns the offset after the
// frame.
func parseFrame(b []byte, off int64) (frame, int64, bool) {
	var f frame
	if off < 0 || off+frameHeaderBytes > int64(len(b)) {
		return f, 0, false
	}
	l := binary.LittleEndian.Uint64(b[off:])
	top := l >> 56
	n := int64(l &^ (0xff << 56))
	var pad int64
	switch {
	case top == 0:
	case top >= 0x81 && top <= 0x87:
		pad = int64(top & 0x7)
	default:
		return f, 0, false
	}
	start := off + frameHeaderBytes
	if n == 0 || (n+pad)%frameHeaderBytes != 0 || n > int64(len(b))-start-pad {
		return f, 0, false
	}
	rec := b[start : start+n]

	num, typ, k := protowire.ConsumeTag(rec)
	if k < 0 || num != 1 || typ != protowire.VarintType {
		return f, 0, false
	}
	rec = rec[k:]
	t, k := protowire.ConsumeVarint(rec)
	if k < 0 || int64(t) < wal.MetadataType || int64(t) > wal.SnapshotType {
		return f, 0, false
	}
	f.typ, rec = int64(t), rec[k:]

	num, typ, k = protowire.ConsumeTag(rec)
	if k < 0 || num != 2 || typ != protowire.VarintType {
		return f, 0, false
	}
	rec = rec[k:]
	c, k := protowire.ConsumeVarint(rec)
	if k < 0 || c > 0xffffffff {
		return f, 0, false
	}
	f.crc, rec = uint32(c), rec[k:]

	if len(rec) > 0 {
		num, typ, k = protowire.ConsumeTag(rec)
		if k < 0 || num != 3 || typ != protowire.BytesType {
			return f, 0, false
		}
		rec = rec[k:]
		f.data, k = protowire.ConsumeBytes(rec)
		if k < 0 || k != len(rec) {
			return f, 0, false
		}
	}
	return f, start + n + pad, true
}

// zeroedSectorBetween reports whether the file range [from, to) holds a
// stretch of zeros that runs to the end of a sector: what a write that never
// reached the disk leaves. Zeros that stop short of a sector end were
// written; they are padding or data.
func zeroedSectorBetween(b []byte, base, to int64) bool {
	from := base
	for from < to {
		end := min((from/sectorBytes+1)*sectorBytes, to)
		if end%sectorBytes == 0 && allZero(b[from-base:end-base]) {
			return true
		}
		from = end
	}
	return false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
