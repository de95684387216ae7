package storage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// A state file holds the state machine's bytes of one snapshot, in frames
// of at most stateFrameBytes plain bytes each:
//
//	magic "SHOALST1" | mode (1 byte: 0 in clear, 1 sealed)
//	frame*: kind (1 byte: 0 more follow, 1 last) | uint32 length | body
//
// A sealed body is Cipher.AppendSeal(nil, plain, stateFrameAD(term, index, number,
// kind)): each frame has its own nonce (the Cipher picks one per Seal) and
// is bound to its snapshot, its position and whether it is the last, so
// frames cannot be reordered, dropped, moved to another file or cut off
// after any frame without Open refusing them. In clear the body is the
// plain bytes. Either way the reader checks the plain bytes' length and
// SHA-256 against the StateInfo the snapshot's record holds, so a file that
// decodes but is not the one the snapshot names is refused as well. The
// last frame may be empty (an empty state) and nothing may follow it.
const (
	stateMagic      = "SHOALST1"
	stateModeClear  = 0
	stateModeSealed = 1
	stateFrameMore  = 0
	stateFrameLast  = 1
	// stateFrameBytes is the plain size of every frame but the last.
	stateFrameBytes = 64 << 10
	// maxStateFrameBody bounds a body on reading: a frame and what a
	// Cipher adds (keys.Keys adds a key ID, a nonce and a tag).
	maxStateFrameBody = stateFrameBytes + 4<<10
	stateFrameHeader  = 1 + 4
	stateContext      = "shoal raft state"
)

// StateInfo identifies the plain bytes of a state file: their length and
// SHA-256. The node keeps it in its snapshot's data, which is small, and
// hands it back to OpenState, which refuses a file that does not match.
type StateInfo struct {
	Size   uint64
	SHA256 [sha256.Size]byte
}

func (i StateInfo) String() string {
	return fmt.Sprintf("%d bytes, sha256 %x", i.Size, i.SHA256[:8])
}

func stateFrameAD(term, index, number uint64, kind byte) []byte {
	b := make([]byte, 0, len(stateContext)+8*3+1)
	b = append(b, stateContext...)
	b = binary.BigEndian.AppendUint64(b, term)
	b = binary.BigEndian.AppendUint64(b, index)
	b = binary.BigEndian.AppendUint64(b, number)
	return append(b, kind)
}

// stateEncoder writes plain bytes to w in frames, sealed when c is not nil.
// Its methods are not safe for concurrent use.
type stateEncoder struct {
	w           io.Writer
	c           Cipher
	term, index uint64
	number      uint64
	plain       []byte // the frame being filled
	sealed      []byte // a frame's sealed body, reused
	sum         hash.Hash
	size        uint64
	err         error // sticky
}

func newStateEncoder(w io.Writer, c Cipher, term, index uint64) (*stateEncoder, error) {
	mode := byte(stateModeClear)
	if c != nil {
		mode = stateModeSealed
	}
	if _, err := w.Write(append([]byte(stateMagic), mode)); err != nil {
		return nil, err
	}
	return &stateEncoder{
		w: w, c: c, term: term, index: index,
		plain: make([]byte, 0, stateFrameBytes),
		sum:   sha256.New(),
	}, nil
}

// Write adds p to the frames. A full frame is written only once more bytes
// follow it, so that the last frame is known to be the last when written.
func (e *stateEncoder) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	written := len(p)
	for len(p) > 0 {
		if len(e.plain) == stateFrameBytes {
			if e.err = e.flush(stateFrameMore); e.err != nil {
				return 0, e.err
			}
		}
		n := min(stateFrameBytes-len(e.plain), len(p))
		e.plain = append(e.plain, p[:n]...)
		p = p[n:]
	}
	return written, nil
}

// finish writes the last frame and returns what the file holds.
func (e *stateEncoder) finish() (StateInfo, error) {
	if e.err == nil {
		e.err = e.flush(stateFrameLast)
	}
	if e.err != nil {
		return StateInfo{}, e.err
	}
	e.err = errors.New("storage: state file already finished")
	info := StateInfo{Size: e.size}
	e.sum.Sum(info.SHA256[:0])
	return info, nil
}

func (e *stateEncoder) flush(kind byte) error {
	body := e.plain
	if e.c != nil {
		var err error
		if e.sealed, err = e.c.AppendSeal(e.sealed[:0], e.plain, stateFrameAD(e.term, e.index, e.number, kind)); err != nil {
			return fmt.Errorf("storage: encrypt frame %d of the state at index %d: %w", e.number, e.index, err)
		}
		body = e.sealed
	}
	var head [5]byte
	head[0] = kind
	binary.BigEndian.PutUint32(head[1:], uint32(len(body)))
	if _, err := e.w.Write(head[:]); err != nil {
		return err
	}
	if _, err := e.w.Write(body); err != nil {
		return err
	}
	e.sum.Write(e.plain)
	e.size += uint64(len(e.plain))
	e.number++
	e.plain = e.plain[:0]
	return nil
}

// stateDecoder reads the plain bytes back from a state file, frame by
// frame. Its errors wrap ErrStateFile, and ErrDecrypt too when a frame does
// not open; it returns io.EOF only after the last frame, once the length
// and SHA-256 of everything read matched want.
type stateDecoder struct {
	r           io.Reader
	c           Cipher
	name        string // for errors
	term, index uint64
	want        StateInfo

	started bool
	number  uint64
	last    bool
	body    []byte
	plain   []byte // what is left of the current frame
	sum     hash.Hash
	size    uint64
	err     error // sticky; io.EOF at the end
}

func newStateDecoder(r io.Reader, c Cipher, name string, term, index uint64, want StateInfo) *stateDecoder {
	return &stateDecoder{r: r, c: c, name: name, term: term, index: index, want: want, sum: sha256.New()}
}

func (d *stateDecoder) Read(p []byte) (int, error) {
	for len(d.plain) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		d.err = d.next()
	}
	n := copy(p, d.plain)
	d.plain = d.plain[n:]
	return n, nil
}

func (d *stateDecoder) fail(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrStateFile, d.name, fmt.Sprintf(format, args...))
}

// next reads the next frame into d.plain, or returns the error that ends
// the stream.
func (d *stateDecoder) next() error {
	if !d.started {
		d.started = true
		var head [len(stateMagic) + 1]byte
		if _, err := io.ReadFull(d.r, head[:]); err != nil {
			return d.fail("reading the header: %v", err)
		}
		if !bytes.Equal(head[:len(stateMagic)], []byte(stateMagic)) {
			return d.fail("not a state file (bad magic)")
		}
		switch mode := head[len(stateMagic)]; {
		case mode == stateModeSealed && d.c == nil:
			return d.fail("the file is encrypted and no key was given")
		case mode == stateModeClear && d.c != nil:
			return fmt.Errorf("%w: %s: %w: the file is in clear, but the directory is encrypted", ErrStateFile, d.name, ErrDecrypt)
		case mode != stateModeSealed && mode != stateModeClear:
			return d.fail("unknown mode %d", mode)
		}
	}
	if d.last {
		return d.end()
	}
	var head [stateFrameHeader]byte
	if _, err := io.ReadFull(d.r, head[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return d.fail("truncated: it ends after frame %d, before its last frame", d.number)
		}
		return d.fail("reading frame %d: %v", d.number, err)
	}
	kind, n := head[0], binary.BigEndian.Uint32(head[1:])
	if kind != stateFrameMore && kind != stateFrameLast {
		return d.fail("frame %d has unknown kind %d", d.number, kind)
	}
	if n > maxStateFrameBody {
		return d.fail("frame %d claims %d bytes, more than a frame holds", d.number, n)
	}
	if cap(d.body) < int(n) {
		d.body = make([]byte, n)
	}
	d.body = d.body[:n]
	if _, err := io.ReadFull(d.r, d.body); err != nil {
		return d.fail("reading frame %d: %v", d.number, err)
	}
	plain := d.body
	if d.c != nil {
		var err error
		if plain, err = d.c.Open(d.body, stateFrameAD(d.term, d.index, d.number, kind)); err != nil {
			return fmt.Errorf("%w: %s: frame %d: %w: %w", ErrStateFile, d.name, d.number, ErrDecrypt, err)
		}
	}
	if len(plain) > stateFrameBytes || (kind == stateFrameMore && len(plain) != stateFrameBytes) {
		return d.fail("frame %d holds %d bytes", d.number, len(plain))
	}
	d.sum.Write(plain)
	d.size += uint64(len(plain))
	d.number++
	d.last = kind == stateFrameLast
	d.plain = plain
	return nil
}

// end checks, after the last frame, that nothing follows and that what was
// read is what the snapshot names.
func (d *stateDecoder) end() error {
	var extra [1]byte
	if n, _ := io.ReadFull(d.r, extra[:]); n > 0 {
		return d.fail("bytes follow the last frame")
	}
	var sum [sha256.Size]byte
	d.sum.Sum(sum[:0])
	if got := (StateInfo{Size: d.size, SHA256: sum}); got != d.want {
		return d.fail("holds %v, the snapshot names %v", got, d.want)
	}
	return io.EOF
}
