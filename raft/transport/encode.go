package transport

// totalLen returns the summed length of segs.
func totalLen(segs [][]byte) int {
	n := 0
	for _, s := range segs {
		n += len(s)
	}
	return n
}

// forEachChunk calls yield with consecutive chunks of the concatenation of
// segs, each size bytes long except the last, and stops at the first error.
// A chunk that lies inside one segment is a subslice of it; only chunks
// that straddle segments are copied. yield must not modify the chunks.
func forEachChunk(segs [][]byte, size int, yield func(chunk []byte) error) error {
	var pending []byte
	for _, s := range segs {
		for len(s) > 0 {
			if len(pending) == 0 && len(s) >= size {
				if err := yield(s[:size]); err != nil {
					return err
				}
				s = s[size:]
				continue
			}
			if pending == nil {
				pending = make([]byte, 0, size)
			}
			n := min(size-len(pending), len(s))
			pending = append(pending, s[:n]...)
			s = s[n:]
			if len(pending) == size {
				if err := yield(pending); err != nil {
					return err
				}
				pending = nil
			}
		}
	}
	if len(pending) > 0 {
		return yield(pending)
	}
	return nil
}
