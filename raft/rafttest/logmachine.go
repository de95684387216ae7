package rafttest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"sync"
)

// LogMachine is a StateMachine for tests: it records every applied payload
// with its index, so tests can compare what each member applied. Apply
// returns the entry's index. A payload starting with "reject:" is refused
// with an error, to test how rejections reach the proposer.
type LogMachine struct {
	mu      sync.Mutex
	entries []Applied
	// restores counts calls to Restore.
	restores int
}

// Applied is one applied entry.
type Applied struct {
	Index   uint64
	Payload string
}

// ErrRejected is what LogMachine.Apply returns for a "reject:" payload.
var ErrRejected = fmt.Errorf("rafttest: rejected")

// Apply implements raft.StateMachine.
func (m *LogMachine) Apply(index uint64, payload []byte) (any, error) {
	if len(payload) >= 7 && string(payload[:7]) == "reject:" {
		return nil, ErrRejected
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.entries); n > 0 && m.entries[n-1].Index >= index {
		panic(fmt.Sprintf("rafttest: index %d applied after %d", index, m.entries[n-1].Index))
	}
	m.entries = append(m.entries, Applied{Index: index, Payload: string(payload)})
	return index, nil
}

// Snapshot implements raft.StateMachine.
func (m *LogMachine) Snapshot() (func(io.Writer) error, error) {
	m.mu.Lock()
	captured := slices.Clone(m.entries)
	m.mu.Unlock()
	return func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		for _, e := range captured {
			var hdr [binary.MaxVarintLen64 * 2]byte
			n := binary.PutUvarint(hdr[:], e.Index)
			n += binary.PutUvarint(hdr[n:], uint64(len(e.Payload)))
			if _, err := bw.Write(hdr[:n]); err != nil {
				return err
			}
			if _, err := bw.WriteString(e.Payload); err != nil {
				return err
			}
		}
		return bw.Flush()
	}, nil
}

// Restore implements raft.StateMachine.
func (m *LogMachine) Restore(index uint64, r io.Reader) error {
	br := bufio.NewReader(r)
	var entries []Applied
	for {
		idx, err := binary.ReadUvarint(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		size, err := binary.ReadUvarint(br)
		if err != nil {
			return err
		}
		if size > 1<<30 {
			return fmt.Errorf("rafttest: payload of %d bytes in snapshot", size)
		}
		buf := make([]byte, size)
		if _, err := io.ReadFull(br, buf); err != nil {
			return err
		}
		entries = append(entries, Applied{Index: idx, Payload: string(buf)})
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.entries = entries
	m.restores++
	return nil
}

// Entries returns a copy of what was applied, in order.
func (m *LogMachine) Entries() []Applied {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.entries)
}

// Payloads returns the applied payloads, in order.
func (m *LogMachine) Payloads() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, len(m.entries))
	for i, e := range m.entries {
		out[i] = e.Payload
	}
	return out
}

// Restores returns how many times a snapshot was restored.
func (m *LogMachine) Restores() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.restores
}
