package client

import (
	"context"
	"crypto/rand"
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
// when one went down.
//
// Reads are always retried. So are writes (creates, updates, deletions,
// transactions), even when an attempt's outcome is unknown: each write
// carries a request ID, chosen once per call and sent with every attempt,
// and the store remembers the IDs of the writes it applied
// (store.RememberedRequests, the last 131,072 writes of the cluster), so
// an attempt that repeats one already applied, through any manager, is
// answered with what the first did and applies nothing. A write is thus
// applied at most once, and its caller learns its outcome, unless its
// retry comes after that many other writes (seconds at full speed); then
// an update may be applied a second time (the same change again) and a
// deletion fail with not found. A create checks that case: when a retry
// of a create whose outcome was unknown finds the name taken, the object
// is read (linearizably): one with the same spec and labels, created after
// the first attempt began (less createClockSkew) and not changed since, is
// the one the first attempt wrote, and is reported; otherwise the
// UNAVAILABLE error of the attempt that may have written it is returned.
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

// newRequestID returns a new request ID: 16 random bytes.
func newRequestID() []byte {
	id := make([]byte, 16)
	_, _ = rand.Read(id) // never fails
	return id
}

// createRetrying creates obj, retrying as the package comment says.
func (c *Client) createRetrying(ctx context.Context, obj *api.Object) (*api.Object, error) {
	began := time.Now()
	req := &api.CreateObjectRequest{Object: obj, RequestId: newRequestID()}
	var created *api.Object
	var unknown error // the failure of an attempt that may have created obj
	err := withRetry(ctx, always, func(ctx context.Context) error {
		resp, err := c.control.CreateObject(ctx, req, callOptions(ctx)...)
		if err == nil {
			created = resp.GetObject()
		} else if status.Code(err) == codes.Unavailable && !api.IsNotApplied(err) {
			unknown = err
		}
		return err
	})
	if unknown == nil || status.Code(err) != codes.AlreadyExists {
		return created, err
	}
	// The store forgot the request (see above): the name may be taken by
	// this very create.
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
