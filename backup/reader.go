package backup

import (
	"bufio"
	"bytes"
	"crypto/cipher"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
)

// Reader reads a backup file and checks it as it goes. NewReader reads
// the header; Read returns the body (the store's snapshot stream,
// decrypted), and io.EOF only once the end of the file, its checksum
// included, has been read and found sound.
type Reader struct {
	in    *bufio.Reader
	sum   hash.Hash // of every byte read before the trailer
	whole hash.Hash // of every byte read
	n     int64
	one   [1]byte

	header *api.BackupHeader
	digest []byte // of the magic and header
	left   uint64 // body bytes not read yet (plain) or not opened yet (encrypted)

	aead    cipher.AEAD // nil: a plain body, or an encrypted one without its key
	frame   uint64
	last    bool   // the last frame was opened
	opened  []byte // plaintext of the current frame not read yet
	sealed  []byte
	nonce   []byte
	ad      []byte
	err     error // sticky: io.EOF once the file was read whole and sound
	readErr error // an error of the file's reader other than its end
}

// NewReader reads the magic and header from r and checks what it can of
// them: the format, and the key when the body is encrypted (key may be
// nil: then Header works, Read fails with ErrEncrypted, and Skip still
// checks the file's structure and checksum). A refused header is reported
// as the file's damage when its checksum does not match.
func NewReader(r io.Reader, key *Key) (*Reader, error) {
	br := &Reader{in: bufio.NewReaderSize(r, 64<<10), sum: sha256.New(), whole: sha256.New()}
	if err := br.readHeader(key); err != nil {
		br.err = err
		return nil, err
	}
	return br, nil
}

func (r *Reader) readHeader(key *Key) error {
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(r.in, magic); err != nil || string(magic) != Magic {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("backup: reading: %w", err)
		}
		return invalid(ErrNotBackup, "not a shoal backup: it does not begin with %q", Magic)
	}
	r.hash(magic)
	size, err := binary.ReadUvarint(r)
	if err != nil {
		return r.structure(err, "the header's length")
	}
	if size > maxHeaderBytes {
		return r.damage(fmt.Errorf("a header of %d bytes, more than %d", size, maxHeaderBytes))
	}
	hb := make([]byte, size)
	if err := r.readFull(hb, "the header"); err != nil {
		return err
	}
	digest := sha256.New()
	digest.Write(magic)
	digest.Write(binary.AppendUvarint(nil, size))
	digest.Write(hb)
	r.digest = digest.Sum(nil)
	h := &api.BackupHeader{}
	if err := proto.Unmarshal(hb, h); err != nil {
		return r.damage(fmt.Errorf("the header does not decode: %w", err))
	}
	if h.GetFormat() != Format {
		return r.checked(invalid(ErrUnknownFormat, "backup format %d, and this shoal reads format %d only: use the shoal version that wrote it, or a newer one",
			h.GetFormat(), Format))
	}
	r.header, r.left = h, h.GetBodyBytes()
	if !h.GetEncrypted() || key == nil {
		return nil
	}
	if len(h.GetKdfSalt()) != saltSize {
		return r.damage(fmt.Errorf("an encrypted backup with a salt of %d bytes", len(h.GetKdfSalt())))
	}
	aead, check, err := key.derive(h.GetKdfSalt())
	if err != nil {
		return fmt.Errorf("backup: deriving the key: %w", err)
	}
	if subtle.ConstantTimeCompare(check, h.GetKeyCheck()) != 1 {
		return r.checked(invalid(ErrWrongKey, "the key in %s does not open this backup: give the key file it was saved with", key.Name()))
	}
	r.aead = aead
	r.nonce = make([]byte, aead.NonceSize())
	return nil
}

// Header is the file's header.
func (r *Reader) Header() *api.BackupHeader { return r.header }

// hash adds bytes read before the trailer to the checksums.
func (r *Reader) hash(p []byte) {
	r.sum.Write(p)
	r.whole.Write(p)
	r.n += int64(len(p))
}

// ReadByte reads one byte of the structure (a length), for
// binary.ReadUvarint.
func (r *Reader) ReadByte() (byte, error) {
	b, err := r.in.ReadByte()
	switch {
	case err == nil:
		r.one[0] = b
		r.hash(r.one[:])
	case !errors.Is(err, io.EOF):
		r.readErr = err
	}
	return b, err
}

// readFull reads len(p) bytes of the structure, what names them.
func (r *Reader) readFull(p []byte, what string) error {
	n, err := io.ReadFull(r.in, p)
	r.hash(p[:n])
	if err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			r.readErr = err
		}
		return r.structure(err, what)
	}
	return nil
}

// structure reports a failed read of what: the end of the file, which
// comes too early, or an error of the disk or a length that overflows.
func (r *Reader) structure(err error, what string) error {
	switch {
	case r.readErr != nil:
		return fmt.Errorf("backup: reading: %w", r.readErr)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return invalid(ErrTruncated, "the file ends in %s, after %d bytes: it was cut short (an interrupted copy?)", what, r.n)
	}
	return r.damage(fmt.Errorf("%s: %w", what, err))
}

// damage reports what was found wrong in the structure: as damage to the
// file when its checksum does not match either, and otherwise as a file
// that is whole but was not written by shoal, or was altered with its
// checksum recomputed.
func (r *Reader) damage(found error) error {
	err := r.checked(nil)
	var fe *fileError
	if errors.As(err, &fe) {
		return &fileError{reason: fe.reason, msg: fe.msg + " (" + found.Error() + ")", cause: found}
	}
	if err != nil {
		return err
	}
	return &fileError{reason: ErrDamaged, cause: found,
		msg: fmt.Sprintf("the file is not a sound backup although its checksum matches (altered, or not written by shoal): %v", found)}
}

// checked reads the rest of the file, once its structure can no longer be
// followed or need not be, and returns an error about its checksum if that
// does not match (the problem found being a symptom), and otherwise err.
func (r *Reader) checked(err error) error {
	var tail []byte // the last bytes read, up to trailerSize, not hashed yet
	buf := make([]byte, 64<<10)
	for {
		n, rerr := r.in.Read(buf)
		tail = append(tail, buf[:n]...)
		if spill := len(tail) - trailerSize; spill > 0 {
			r.hash(tail[:spill])
			tail = append(tail[:0], tail[spill:]...)
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return fmt.Errorf("backup: reading: %w", rerr)
		}
	}
	r.whole.Write(tail)
	r.n += int64(len(tail))
	if len(tail) < trailerSize || !bytes.Equal(r.sum.Sum(nil), tail) {
		return invalid(ErrDamaged, "the file is damaged: its SHA-256 does not match the checksum at its end")
	}
	return err
}

// Read reads the body: the store's snapshot stream, decrypted. It returns
// io.EOF once the body, the checksum and the end of the file are read and
// sound, and otherwise the first problem found, for good.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.read(p)
	if err != nil {
		r.err = err
	}
	return n, err
}

func (r *Reader) read(p []byte) (int, error) {
	if r.header.GetEncrypted() {
		if r.aead == nil {
			return 0, invalid(ErrEncrypted, "the backup is encrypted: give the key file it was saved with (--key-file)")
		}
		for len(r.opened) == 0 {
			if r.last {
				return 0, r.end()
			}
			if err := r.openFrame(); err != nil {
				return 0, err
			}
		}
		n := copy(p, r.opened)
		r.opened = r.opened[n:]
		return n, nil
	}
	if r.left == 0 {
		return 0, r.end()
	}
	if uint64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.in.Read(p)
	r.hash(p[:n])
	r.left -= uint64(n)
	if err != nil && (n == 0 || !errors.Is(err, io.EOF)) {
		if !errors.Is(err, io.EOF) {
			r.readErr = err
		}
		return n, r.structure(err, "the objects")
	}
	return n, nil
}

// openFrame reads and opens the next frame.
func (r *Reader) openFrame() error {
	what := fmt.Sprintf("frame %d", r.frame)
	// A whole file goes on after a frame that is not the last with another
	// frame and then the checksum: when no more than a checksum is left,
	// the file was cut at a frame's end (whatever those bytes are).
	if rest, err := r.in.Peek(trailerSize + 1); len(rest) <= trailerSize && errors.Is(err, io.EOF) {
		return r.structure(io.ErrUnexpectedEOF, what)
	}
	v, err := binary.ReadUvarint(r)
	if err != nil {
		return r.structure(err, what)
	}
	size, last := v>>1, v&1 == 1
	overhead := uint64(r.aead.Overhead())
	if size < overhead || size > frameSize+overhead {
		return r.damage(fmt.Errorf("%s of %d bytes, outside [%d, %d]", what, size, overhead, frameSize+overhead))
	}
	if cap(r.sealed) < int(size) {
		r.sealed = make([]byte, size)
	}
	r.sealed = r.sealed[:size]
	if err := r.readFull(r.sealed, what); err != nil {
		return err
	}
	r.ad = frameAD(r.ad, r.digest, r.frame, last)
	opened, err := r.aead.Open(r.sealed[:0], frameNonce(r.nonce, r.frame), r.sealed, r.ad)
	if err != nil {
		return r.damage(fmt.Errorf("%s does not authenticate", what))
	}
	switch n := uint64(len(opened)); {
	case n > r.left:
		return r.damage(fmt.Errorf("the frames hold more than the %d bytes the header announces", r.header.GetBodyBytes()))
	case last && n != r.left:
		return r.damage(fmt.Errorf("the last frame leaves %d of the %d bytes the header announces", r.left-n, r.header.GetBodyBytes()))
	}
	r.left -= uint64(len(opened))
	r.opened, r.last = opened, last
	r.frame++
	return nil
}

// end reads the checksum at the end of the file, and then the end.
func (r *Reader) end() error {
	trailer := make([]byte, trailerSize)
	n, err := io.ReadFull(r.in, trailer)
	r.whole.Write(trailer[:n])
	r.n += int64(n)
	if err != nil {
		if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			r.readErr = err
		}
		return r.structure(err, "its checksum")
	}
	if !bytes.Equal(r.sum.Sum(nil), trailer) {
		return invalid(ErrDamaged, "the file is damaged: its SHA-256 does not match the checksum at its end")
	}
	extra, err := io.Copy(io.Discard, r.in)
	if err != nil {
		return fmt.Errorf("backup: reading: %w", err)
	}
	if extra > 0 {
		unit := "bytes"
		if extra == 1 {
			unit = "byte"
		}
		return invalid(ErrDamaged, "the file is damaged: it goes on for %d %s after its checksum", extra, unit)
	}
	return io.EOF
}

// Skip reads the rest of the file without opening its frames, and checks
// its structure and checksum: for an encrypted file without its key. It
// returns nil when the file is sound as far as that goes.
func (r *Reader) Skip() error {
	if r.err != nil {
		return r.finalErr()
	}
	if !r.header.GetEncrypted() || r.aead != nil {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	for !r.last {
		what := fmt.Sprintf("frame %d", r.frame)
		v, err := binary.ReadUvarint(r)
		if err != nil {
			r.err = r.structure(err, what)
			return r.err
		}
		size, last := v>>1, v&1 == 1
		if size > frameSize+sealOverhead {
			r.err = r.damage(fmt.Errorf("%s of %d bytes, more than %d", what, size, frameSize+sealOverhead))
			return r.err
		}
		if cap(r.sealed) < int(size) {
			r.sealed = make([]byte, size)
		}
		if err := r.readFull(r.sealed[:size], what); err != nil {
			r.err = err
			return err
		}
		r.last = last
		r.frame++
	}
	r.err = r.end()
	return r.finalErr()
}

// finalErr is the sticky error, nil once the file was read sound.
func (r *Reader) finalErr() error {
	if errors.Is(r.err, io.EOF) {
		return nil
	}
	return r.err
}

// Size is the number of bytes read so far: the file's, once it was read
// to its end.
func (r *Reader) Size() int64 { return r.n }

// SHA256 is the hex SHA-256 of the bytes read so far: the file's, as
// sha256sum prints it, once it was read to its end.
func (r *Reader) SHA256() string { return hex.EncodeToString(r.whole.Sum(nil)) }
