package client

import (
	"context"
	"maps"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
)

// The client retries a call that failed UNAVAILABLE (no leader, the
// manager called stopped, a connection that broke) until the call
// succeeds, fails otherwise, or its context ends, when the context has a
// deadline (a call without one is tried once, and fails at once when no
// manager is connected, as it would never end otherwise); each retry goes to the
// manager the connection reaches then, the next address of Config.Addrs
// when one went down. Whether a failed attempt may be retried depends on
// what it may have done:
//
//   - reads, and every call that the manager says changed nothing
//     (api.ReasonNotApplied), are always retried;
//   - a create whose outcome is unknown is not made again: the first
//     attempt may have created the object, and another caller deleted it
//     since, so a second create would create it twice. Instead the object
//     is read (linearizably, retried like any read): an object with the
//     same spec and labels, created after the first attempt began (less
//     createClockSkew) and not changed since, is the one the first
//     attempt wrote, and is reported; otherwise the create's outcome stays
//     unknown, and the UNAVAILABLE error of the attempt that may have
//     written it is returned (it may still be applied);
//   - other writes (updates, deletions, transactions) whose outcome is
//     unknown are not retried: repeated after it was applied, a write
//     could undo the writes others made since. The error is returned, and
//     the caller reads before it tries again.
const (
	retryFirstDelay = 10 * time.Millisecond
	retryMaxDelay   = 500 * time.Millisecond
	// createClockSkew is how far the leader's clock, which stamps
	// created_at, may be behind this one.
	createClockSkew = time.Second
)

// callOptions are the options of a call with ctx: with a deadline, the
// call waits for a connection to come up (the next manager's, when one
// went down) instead of failing at once, for as long as ctx allows.
func callOptions(ctx context.Context) []grpc.CallOption {
	if _, ok := ctx.Deadline(); !ok {
		return nil
	}
	return []grpc.CallOption{grpc.WaitForReady(true)}
}

// retryable says whether a failed attempt may be retried.
type retryable func(err error) bool

// always retries every UNAVAILABLE failure: for reads and calls that are
// safe to repeat.
func always(error) bool { return true }

// ifNotApplied retries only the failures after which nothing changed.
func ifNotApplied(err error) bool { return api.IsNotApplied(err) }

// withRetry runs call until it succeeds, fails with another code than
// UNAVAILABLE, fails UNAVAILABLE in a way may says is not to be retried,
// or ctx ends; it returns the last error. Without a deadline on ctx, it
// calls once.
func withRetry(ctx context.Context, may retryable, call func(ctx context.Context) error) error {
	_, hasDeadline := ctx.Deadline()
	delay := retryFirstDelay
	for {
		err := call(ctx)
		if err == nil || !hasDeadline || status.Code(err) != codes.Unavailable || !may(err) {
			return err
		}
		if !waitRetry(ctx, &delay) {
			return err
		}
	}
}

// waitRetry waits *delay, doubles it up to retryMaxDelay, and reports
// false, at once, when ctx ends first.
func waitRetry(ctx context.Context, delay *time.Duration) bool {
	t := time.NewTimer(*delay)
	defer t.Stop()
	select {
	case <-t.C:
		*delay = min(2**delay, retryMaxDelay)
		return true
	case <-ctx.Done():
		return false
	}
}

// createRetrying creates obj, retrying as the package comment says.
func (c *Client) createRetrying(ctx context.Context, obj *api.Object) (*api.Object, error) {
	began := time.Now()
	var created *api.Object
	var unknown error // the failure of an attempt that may have created obj
	err := withRetry(ctx, ifNotApplied, func(ctx context.Context) error {
		resp, err := c.control.CreateObject(ctx, &api.CreateObjectRequest{Object: obj}, callOptions(ctx)...)
		if err == nil {
			created = resp.GetObject()
		} else if status.Code(err) == codes.Unavailable && !api.IsNotApplied(err) {
			unknown = err
		}
		return err
	})
	if unknown == nil { // else err is unknown: it stopped the retries
		return created, err
	}
	if mine, ok := c.findOwnCreate(ctx, obj, began); ok {
		return mine, nil
	}
	return nil, unknown
}

// findOwnCreate returns the object named as obj if it is the one an
// earlier attempt to create obj wrote: same spec and labels, created after
// began (less createClockSkew).
func (c *Client) findOwnCreate(ctx context.Context, obj *api.Object, began time.Time) (*api.Object, bool) {
	var cur *api.Object
	err := withRetry(ctx, always, func(ctx context.Context) error {
		resp, err := c.control.GetObject(ctx, &api.GetObjectRequest{Ref: &api.ObjectRef{Kind: obj.GetKind(), NameOrId: obj.GetName()}}, callOptions(ctx)...)
		cur = resp.GetObject()
		return err
	})
	if err != nil || cur == nil {
		return nil, false
	}
	sameLabels := maps.Equal(cur.GetLabels(), obj.GetLabels())
	sameSpec := proto.Equal(&api.Object{Spec: cur.GetSpec()}, &api.Object{Spec: obj.GetSpec()})
	fresh := !cur.GetCreatedAt().AsTime().Before(began.Add(-createClockSkew))
	unchanged := proto.Equal(cur.GetCreatedAt(), cur.GetUpdatedAt())
	return cur, sameLabels && sameSpec && fresh && unchanged
}
