package client

import (
	"context"
	"errors"
	"io"
	"iter"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
)

// Watcher receives the changes of a watch, in version order, once each.
// It is not safe for concurrent use; Close may be called from any
// goroutine.
type Watcher struct {
	stream  api.Control_WatchClient
	cancel  context.CancelFunc
	start   uint64
	pending []*api.WatchEvent
}

// Watch starts a watch of the objects sel matches (all empty: every
// object), from fromVersion (exclusive; 0: from the next change). It
// returns once the manager has accepted the watch, so a fromVersion older
// than the history the manager keeps fails here (IsConflict: list again
// and watch from the list's version).
func (c *Client) Watch(ctx context.Context, sel Selector, fromVersion uint64) (*Watcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.control.Watch(ctx, &api.WatchRequest{
		Kind:        sel.Kind,
		NamePrefix:  sel.NamePrefix,
		Labels:      sel.Labels,
		FromVersion: fromVersion,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	first, err := stream.Recv()
	if err != nil {
		cancel()
		if errors.Is(err, io.EOF) {
			err = status.Error(codes.Unavailable, "the manager ended the watch before it started")
		}
		return nil, err
	}
	return &Watcher{stream: stream, cancel: cancel, start: first.GetStartVersion(), pending: first.GetEvents()}, nil
}

// StartVersion is the version the watch starts after: every change with a
// higher version is delivered.
func (w *Watcher) StartVersion() uint64 { return w.start }

// Next blocks until the next change and returns it. It fails when the
// watch ends: the context given to Watch ended, Close was called, the
// manager shut down (IsUnavailable: watch again from the last version
// seen, on another manager) or cut the watcher off for falling behind
// (IsConflict).
func (w *Watcher) Next() (*api.WatchEvent, error) {
	for len(w.pending) == 0 {
		resp, err := w.stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, status.Error(codes.Unavailable, "the manager ended the watch; watch again from the last version seen")
		}
		if err != nil {
			return nil, err
		}
		w.pending = resp.GetEvents()
	}
	ev := w.pending[0]
	w.pending = w.pending[1:]
	return ev, nil
}

// Events returns the changes as an iterator, which stops after yielding
// the error that ended the watch (never nil), or when the loop breaks.
func (w *Watcher) Events() iter.Seq2[*api.WatchEvent, error] {
	return func(yield func(*api.WatchEvent, error) bool) {
		for {
			ev, err := w.Next()
			if !yield(ev, err) || err != nil {
				return
			}
		}
	}
}

// Close ends the watch.
func (w *Watcher) Close() { w.cancel() }
