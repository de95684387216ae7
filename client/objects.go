package client

import (
	"context"
	"errors"
	"io"

	"github.com/shoal-project/shoal/api"
)

// Consistency says how fresh a read must be.
type Consistency int

const (
	// Linearizable reads see every write acknowledged before they began
	// (ReadIndex through the leader). The default.
	Linearizable Consistency = iota
	// Serializable reads the called manager's store as it is: faster,
	// works without a leader, may be stale.
	Serializable
)

func (c Consistency) String() string {
	if c == Serializable {
		return "serializable"
	}
	return "linearizable"
}

func (c Consistency) proto() api.ReadConsistency {
	if c == Serializable {
		return api.ReadConsistency_READ_CONSISTENCY_SERIALIZABLE
	}
	return api.ReadConsistency_READ_CONSISTENCY_LINEARIZABLE
}

// ReadOption tunes a read.
type ReadOption func(*readOptions)

type readOptions struct{ consistency Consistency }

// WithConsistency sets the consistency of a read; Linearizable without it.
func WithConsistency(c Consistency) ReadOption {
	return func(o *readOptions) { o.consistency = c }
}

func readOpts(opts []ReadOption) readOptions {
	var o readOptions
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Selector picks objects of one kind.
type Selector struct {
	// Kind is required for List; empty in a watch means every kind.
	Kind string
	// NamePrefix, when set, keeps the objects whose name starts with it.
	NamePrefix string
	// Labels must all match.
	Labels map[string]string
}

// Update describes the changes to an object; zero fields change nothing.
type Update struct {
	// Spec, when not nil, replaces the spec.
	Spec []byte
	// SetLabels are added or replaced; RemoveLabels are removed.
	SetLabels    map[string]string
	RemoveLabels []string
	// NewName, when not empty, renames the object.
	NewName string
	// ExpectedVersion, when not 0, must be the object's version or the
	// update fails with a conflict (IsConflict) and changes nothing.
	ExpectedVersion uint64
}

// Create creates obj (its kind, name, labels and spec; the rest is set by
// the store) and returns the stored object. A taken name fails with
// IsExists. It retries through elections and broken connections within
// ctx, and a retry that finds the object its earlier attempt created
// returns it (see retry.go for what that check cannot tell apart).
func (c *Client) Create(ctx context.Context, obj *api.Object) (*api.Object, error) {
	return c.createRetrying(ctx, obj)
}

// Get returns the object of kind named nameOrID (its name, else its id).
func (c *Client) Get(ctx context.Context, kind, nameOrID string, opts ...ReadOption) (*api.Object, error) {
	var resp *api.GetObjectResponse
	err := withRetry(ctx, always, func(ctx context.Context) (err error) {
		resp, err = c.control.GetObject(ctx, &api.GetObjectRequest{
			Ref:         &api.ObjectRef{Kind: kind, NameOrId: nameOrID},
			Consistency: readOpts(opts).consistency.proto(),
		}, callOptions(ctx)...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetObject(), nil
}

// List returns every object sel matches, in name order, and the store
// version the list was read at (a watch from that version misses nothing).
func (c *Client) List(ctx context.Context, sel Selector, opts ...ReadOption) ([]*api.Object, uint64, error) {
	var objs []*api.Object
	var version uint64
	err := withRetry(ctx, always, func(ctx context.Context) error {
		objs = nil
		return c.list(ctx, sel, opts, func(page []*api.Object, v uint64) error {
			objs, version = append(objs, page...), v
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	return objs, version, nil
}

// ListPages calls fn with the objects sel matches, in name order, one page
// at a time as they arrive (up to 500 objects each, and at least one page,
// maybe empty), with the store version they were all read at: a list of
// any length, held one page at a time on the manager and here. The call is
// retried like List until fn is first called; a failure after that, or
// fn's error, ends it, and a caller that wants the list whole starts again.
func (c *Client) ListPages(ctx context.Context, sel Selector, fn func(objs []*api.Object, version uint64) error, opts ...ReadOption) error {
	delivered := false
	var fnErr error
	err := withRetry(ctx, func(error) bool { return !delivered }, func(ctx context.Context) error {
		return c.list(ctx, sel, opts, func(page []*api.Object, v uint64) error {
			delivered = true
			fnErr = fn(page, v)
			return fnErr
		})
	})
	if fnErr != nil {
		return fnErr
	}
	return err
}

// list makes one ListObjects call, handing each page to page.
func (c *Client) list(ctx context.Context, sel Selector, opts []ReadOption, page func([]*api.Object, uint64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.control.ListObjects(ctx, &api.ListObjectsRequest{
		Kind:        sel.Kind,
		NamePrefix:  sel.NamePrefix,
		Labels:      sel.Labels,
		Consistency: readOpts(opts).consistency.proto(),
	}, callOptions(ctx)...)
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := page(resp.GetObjects(), resp.GetVersion()); err != nil {
			return err
		}
	}
}

// Update changes the object of kind named nameOrID and returns it as
// stored.
func (c *Client) Update(ctx context.Context, kind, nameOrID string, u Update) (*api.Object, error) {
	req := updateRequest(kind, nameOrID, u)
	req.RequestId = newRequestID()
	var resp *api.UpdateObjectResponse
	err := withRetry(ctx, always, func(ctx context.Context) (err error) {
		resp, err = c.control.UpdateObject(ctx, req, callOptions(ctx)...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp.GetObject(), nil
}

func updateRequest(kind, nameOrID string, u Update) *api.UpdateObjectRequest {
	req := &api.UpdateObjectRequest{
		Ref:             &api.ObjectRef{Kind: kind, NameOrId: nameOrID},
		Spec:            u.Spec,
		SetLabels:       u.SetLabels,
		RemoveLabels:    u.RemoveLabels,
		ExpectedVersion: u.ExpectedVersion,
	}
	if u.NewName != "" {
		req.NewName = &u.NewName
	}
	return req
}

// Delete deletes the object of kind named nameOrID, if its version is
// expectedVersion (0: any), and returns the version of the deletion.
func (c *Client) Delete(ctx context.Context, kind, nameOrID string, expectedVersion uint64) (uint64, error) {
	req := &api.DeleteObjectRequest{
		Ref:             &api.ObjectRef{Kind: kind, NameOrId: nameOrID},
		ExpectedVersion: expectedVersion,
		RequestId:       newRequestID(),
	}
	var resp *api.DeleteObjectResponse
	err := withRetry(ctx, always, func(ctx context.Context) (err error) {
		resp, err = c.control.DeleteObject(ctx, req, callOptions(ctx)...)
		return err
	})
	if err != nil {
		return 0, err
	}
	return resp.GetVersion(), nil
}

// Op is one operation of a transaction; build it with CreateOp, UpdateOp
// or DeleteOp.
type Op = *api.TransactionOp

// CreateOp creates obj.
func CreateOp(obj *api.Object) Op {
	return &api.TransactionOp{Op: &api.TransactionOp_Create{Create: &api.CreateObjectRequest{Object: obj}}}
}

// UpdateOp updates the object of kind named nameOrID.
func UpdateOp(kind, nameOrID string, u Update) Op {
	return &api.TransactionOp{Op: &api.TransactionOp_Update{Update: updateRequest(kind, nameOrID, u)}}
}

// DeleteOp deletes the object of kind named nameOrID if its version is
// expectedVersion (0: any).
func DeleteOp(kind, nameOrID string, expectedVersion uint64) Op {
	return &api.TransactionOp{Op: &api.TransactionOp_Delete{Delete: &api.DeleteObjectRequest{
		Ref: &api.ObjectRef{Kind: kind, NameOrId: nameOrID}, ExpectedVersion: expectedVersion}}}
}

// Transaction applies ops all-or-nothing, in one Raft entry. It returns
// the created or updated objects in the order of ops (a deletion gives an
// object with only kind, id and version) and the version of the entry.
func (c *Client) Transaction(ctx context.Context, ops ...Op) ([]*api.Object, uint64, error) {
	req := &api.TransactionRequest{Ops: ops, RequestId: newRequestID()}
	var resp *api.TransactionResponse
	err := withRetry(ctx, always, func(ctx context.Context) (err error) {
		resp, err = c.control.Transaction(ctx, req, callOptions(ctx)...)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return resp.GetObjects(), resp.GetVersion(), nil
}
