package backup

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
)

// Writer writes a backup file: the magic and header at once, then the
// body given to Write (the store's snapshot stream, header.BodyBytes
// bytes), then, at Close, the last frame and the checksum.
type Writer struct {
	out       io.Writer
	sum       hash.Hash // of every byte before the trailer
	whole     hash.Hash // of every byte
	n         int64
	body      uint64 // body bytes given to Write
	bodyBytes uint64 // as the header says

	aead   cipher.AEAD // nil: a plain body
	digest []byte      // of the magic and header
	frame  uint64      // the number of the next frame
	buf    []byte      // plaintext of the next frame
	sealed []byte
	nonce  []byte
	ad     []byte

	err    error
	closed bool
}

// NewWriter writes the magic and header h to out and returns the Writer of
// the body. h's format and encryption fields are set here: with a key the
// body is encrypted with a key of its own, derived from key with a new
// random salt.
func NewWriter(out io.Writer, h *api.BackupHeader, key *Key) (*Writer, error) {
	h = proto.CloneOf(h)
	h.Format, h.Encrypted, h.KdfSalt, h.KeyCheck = Format, false, nil, nil
	w := &Writer{out: out, sum: sha256.New(), whole: sha256.New(), bodyBytes: h.GetBodyBytes()}
	if key != nil {
		salt := make([]byte, saltSize)
		if _, err := rand.Read(salt); err != nil {
			return nil, err
		}
		aead, check, err := key.derive(salt)
		if err != nil {
			return nil, fmt.Errorf("backup: deriving the key: %w", err)
		}
		h.Encrypted, h.KdfSalt, h.KeyCheck = true, salt, check
		w.aead = aead
		w.buf = make([]byte, 0, frameSize)
		w.nonce = make([]byte, aead.NonceSize())
	}
	hb, err := proto.MarshalOptions{Deterministic: true}.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("backup: encoding the header: %w", err)
	}
	if len(hb) > maxHeaderBytes {
		return nil, fmt.Errorf("backup: a header of %d bytes is more than the %d a reader takes", len(hb), maxHeaderBytes)
	}
	prefix := binary.AppendUvarint([]byte(Magic), uint64(len(hb)))
	prefix = append(prefix, hb...)
	d := sha256.Sum256(prefix)
	w.digest = d[:]
	if err := w.write(prefix); err != nil {
		return nil, err
	}
	return w, nil
}

// write writes p to the file and to both checksums.
func (w *Writer) write(p []byte) error {
	if w.err != nil {
		return w.err
	}
	n, err := w.out.Write(p)
	w.sum.Write(p[:n])
	w.whole.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("backup: writing: %w", err)
	}
	return w.err
}

// Write adds p to the body.
func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("backup: Write after Close")
	}
	if w.body+uint64(len(p)) > w.bodyBytes {
		w.err = fmt.Errorf("backup: the body is longer than the %d bytes its header announced", w.bodyBytes)
		return 0, w.err
	}
	w.body += uint64(len(p))
	if w.aead == nil {
		if err := w.write(p); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	n := len(p)
	for len(p) > 0 {
		// A full frame is sealed only once more follows, so that the
		// last one, sealed by Close, is never empty but for an empty
		// body.
		if len(w.buf) == frameSize {
			if err := w.seal(false); err != nil {
				return 0, err
			}
		}
		k := copy(w.buf[len(w.buf):frameSize], p)
		w.buf = w.buf[:len(w.buf)+k]
		p = p[k:]
	}
	return n, nil
}

// seal writes the buffered plaintext as the next frame.
func (w *Writer) seal(last bool) error {
	w.ad = frameAD(w.ad, w.digest, w.frame, last)
	w.sealed = w.aead.Seal(w.sealed[:0], frameNonce(w.nonce, w.frame), w.buf, w.ad)
	size := uint64(len(w.sealed)) << 1
	if last {
		size |= 1
	}
	var prefix [binary.MaxVarintLen64]byte
	if err := w.write(prefix[:binary.PutUvarint(prefix[:], size)]); err != nil {
		return err
	}
	if err := w.write(w.sealed); err != nil {
		return err
	}
	w.frame++
	w.buf = w.buf[:0]
	return nil
}

// Close writes the last frame and the checksum. It fails when the body
// is shorter than its header announced: the file would not be whole.
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if w.body != w.bodyBytes {
		w.err = fmt.Errorf("backup: the body has %d bytes, and its header announced %d", w.body, w.bodyBytes)
		return w.err
	}
	if w.aead != nil {
		if err := w.seal(true); err != nil {
			return err
		}
	}
	return w.write(w.sum.Sum(nil))
}

// Size is the number of bytes written, the whole file's after Close.
func (w *Writer) Size() int64 { return w.n }

// SHA256 is the hex SHA-256 of the whole file (as sha256sum prints it),
// once Close returned.
func (w *Writer) SHA256() string { return hex.EncodeToString(w.whole.Sum(nil)) }
