package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/clusterrpc"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/store"
)

// listPage bounds the objects sent in one ListObjects response, so that a
// page stays well under gRPC's 4 MiB message limit with objects of the
// default 1 MiB maximum... of typical size; pages also end at pageBytes.
const (
	listPage  = 500
	pageBytes = 1 << 20
)

// updateAttempts bounds how often an update without an expected version is
// retried after another writer changed the object between read and apply.
const updateAttempts = 5

// controlServer implements the Control service. Reads are served by this
// manager; writes run on the leader (see leaderOrForward).
type controlServer struct {
	api.UnimplementedControlServer
	m *Manager
}

// onLeader runs local when this manager leads, and otherwise forwards the
// call to the leader through remote. It keeps at it for as long as the
// caller's deadline allows while the attempts certainly changed nothing
// (no leader yet, an unreachable or deposed leader, a dropped proposal),
// so that an election is a delay, not an error; it returns as soon as an
// attempt may have changed something, or failed for another reason. A
// call forwarded here is not retried: the manager that forwarded it does.
func onLeader[T any](ctx context.Context, s *controlServer, local func(context.Context) (T, error),
	remote func(context.Context, api.ControlClient) (T, error)) (T, error) {
	return retryAttempts(ctx, s, s.leaderHere, local, remote)
}

// leaderHere reports whether this manager leads.
func (s *controlServer) leaderHere() bool {
	id := s.m.node.ID()
	return id != 0 && s.m.node.Leader() == id
}

// onProposer runs a write of objects here when this manager can propose it
// (the leader, or a follower that hands its proposals to Raft, which
// forwards them to the leader among the Raft messages: no second call and
// no second TLS hop per write), and otherwise as onLeader does. Either way
// it returns once the entry is applied here.
func onProposer[T any](ctx context.Context, s *controlServer, local func(context.Context) (T, error),
	remote func(context.Context, api.ControlClient) (T, error)) (T, error) {
	return retryAttempts(ctx, s, s.m.node.CanPropose, local, remote)
}

// retryAttempts makes attempts until one may have changed something, as
// onLeader describes; here says whether local may run on this manager.
func retryAttempts[T any](ctx context.Context, s *controlServer, here func() bool, local func(context.Context) (T, error),
	remote func(context.Context, api.ControlClient) (T, error)) (T, error) {
	backoff := clusterrpc.Backoff{Max: s.m.node.ElectionTimeout() / 2}
	for {
		res, err := attempt(ctx, s, here, local, remote)
		if err == nil || !api.IsNotApplied(err) || clusterrpc.IsForwarded(ctx) || !backoff.Wait(ctx) {
			return res, err
		}
	}
}

// attempt is one attempt of retryAttempts.
func attempt[T any](ctx context.Context, s *controlServer, here func() bool, local func(context.Context) (T, error),
	remote func(context.Context, api.ControlClient) (T, error)) (T, error) {
	n := s.m.node
	if here() {
		res, err := local(ctx)
		return res, toStatus(err)
	}
	var zero T
	// The leader authorises the original caller, not this manager; the
	// local administrator is forwarded as this manager.
	fctx, conn, err := clusterrpc.LeaderConn(ctx, n)
	if err != nil {
		return zero, toStatus(err)
	}
	res, err := remote(fctx, api.NewControlClient(conn))
	return res, forwardedError(err, s.m.sec.identity.NodeID)
}

// linearizableRead brings this manager's store up to date with every write
// acknowledged before it was called: a ReadIndex round through the
// leader. A round that found no leader, or timed out, is run again for as
// long as ctx allows, so that a read waits out an election.
func (m *Manager) linearizableRead(ctx context.Context) error {
	backoff := clusterrpc.Backoff{Max: m.node.ElectionTimeout() / 2}
	for {
		err := m.node.LinearizableRead(ctx)
		if err == nil || errors.Is(err, raft.ErrStopped) || status.Code(toStatus(err)) != codes.Unavailable || !backoff.Wait(ctx) {
			return toStatus(err)
		}
	}
}

// forwardedError is what the caller of a call this manager forwarded gets
// for the leader's err. A refusal of this manager as removed is not the
// caller's fault, nor a denial of its access: it learns that this manager
// is leaving, and to call another. Nothing ran on the leader.
func forwardedError(err error, self string) error {
	if id, ok := ca.RemovedNode(err); ok && id == self {
		return status.Error(codes.Unavailable, "this manager was removed from the cluster and is stopping; call another manager")
	}
	return err
}

// appliedHere returns once this manager has applied version, the Raft
// index of a write the leader answered for it, so that the write's caller
// then reads it here, serializable reads included: the leader answers when
// it has applied the entry, which this manager may not even know to be
// committed yet. The wait ends with ctx; the write is committed all the
// same, as the error says.
func (s *controlServer) appliedHere(ctx context.Context, version uint64) error {
	err := s.m.node.WaitApplied(ctx, version)
	if err == nil {
		return nil
	}
	st := status.Convert(toStatus(err))
	return status.Errorf(st.Code(), "the write was committed at version %d, but this manager has not applied it yet: %s", version, st.Message())
}

// read makes the next read of the local store as fresh as c asks.
func (s *controlServer) read(ctx context.Context, c api.ReadConsistency) error {
	if c == api.ReadConsistency_READ_CONSISTENCY_SERIALIZABLE {
		return nil
	}
	return s.m.linearizableRead(ctx)
}

// refuseBuiltin refuses a write to the kinds that describe the cluster:
// the leader keeps them.
func refuseBuiltin(kind string) error {
	if store.IsBuiltinKind(kind) {
		return status.Errorf(codes.InvalidArgument, "objects of kind %q are kept by shoal itself and cannot be changed", kind)
	}
	return nil
}

func (s *controlServer) CreateObject(ctx context.Context, req *api.CreateObjectRequest) (*api.CreateObjectResponse, error) {
	if req.GetObject() == nil {
		return nil, status.Error(codes.InvalidArgument, "create: no object given")
	}
	if err := refuseBuiltin(req.GetObject().GetKind()); err != nil {
		return nil, err
	}
	return onProposer(ctx, s, func(ctx context.Context) (*api.CreateObjectResponse, error) {
		res, err := s.m.store.UpdateRequest(ctx, req.GetRequestId(), func(tx store.Tx) error {
			_, err := tx.Create(req.GetObject())
			return err
		})
		if err != nil {
			return nil, err
		}
		return &api.CreateObjectResponse{Object: publicObject(repeatedCreate(res, res.Objects[0], req.GetObject()))}, nil
	}, func(ctx context.Context, c api.ControlClient) (*api.CreateObjectResponse, error) {
		resp, err := c.CreateObject(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp, s.appliedHere(ctx, resp.GetObject().GetVersion())
	})
}

// repeatedCreate returns o, the result of a create that wrote w; for a
// repeat of a create whose object changed since, of which the store keeps
// only the kind, id and version, the object as w wrote it (without its
// times, not kept).
func repeatedCreate(res *store.Result, o, w *api.Object) *api.Object {
	if !res.Repeated || o.GetName() != "" {
		return o
	}
	return &api.Object{Kind: o.GetKind(), Id: o.GetId(), Name: w.GetName(), Labels: w.GetLabels(), Spec: w.GetSpec(), Version: o.GetVersion()}
}

func (s *controlServer) GetObject(ctx context.Context, req *api.GetObjectRequest) (*api.GetObjectResponse, error) {
	if err := s.read(ctx, req.GetConsistency()); err != nil {
		return nil, err
	}
	var obj *api.Object
	var err error
	s.m.store.View(func(tx store.ReadTx) { obj, err = resolve(tx, req.GetRef()) })
	if err != nil {
		return nil, toStatus(err)
	}
	return &api.GetObjectResponse{Object: publicObject(obj)}, nil
}

// resolve finds the object ref names: by kind and name, else by id.
func resolve(tx store.ReadTx, ref *api.ObjectRef) (*api.Object, error) {
	if err := store.ValidateKind(ref.GetKind()); err != nil {
		return nil, err
	}
	if ref.GetNameOrId() == "" {
		return nil, fmt.Errorf("%w: no name or id given", store.ErrInvalid)
	}
	o, err := tx.GetByName(ref.GetKind(), ref.GetNameOrId())
	if !errors.Is(err, store.ErrNotFound) {
		return o, err
	}
	if byID, idErr := tx.Get(ref.GetNameOrId()); idErr == nil && byID.GetKind() == ref.GetKind() {
		return byID, nil
	}
	return nil, err
}

func (s *controlServer) ListObjects(req *api.ListObjectsRequest, stream grpc.ServerStreamingServer[api.ListObjectsResponse]) error {
	if req.GetKind() == "" {
		return status.Error(codes.InvalidArgument, "list: a kind is required")
	}
	if err := s.read(stream.Context(), req.GetConsistency()); err != nil {
		return err
	}
	// The pages are sent as the objects are read from one state of the
	// store, which the View keeps (it blocks nothing): a list of any
	// length holds one page here.
	var err, sendErr error
	s.m.store.View(func(tx store.ReadTx) {
		version := tx.Version()
		page := &api.ListObjectsResponse{Version: version}
		size := 0
		err = tx.Each(store.Selector{Kind: req.GetKind(), NamePrefix: req.GetNamePrefix(), Labels: req.GetLabels()}, func(o *api.Object) bool {
			n := proto.Size(o)
			if len(page.Objects) == listPage || (size > 0 && size+n > pageBytes) {
				if sendErr = stream.Send(page); sendErr != nil {
					return false
				}
				page, size = &api.ListObjectsResponse{Version: version}, 0
			}
			page.Objects = append(page.Objects, publicObject(o))
			size += n
			return true
		})
		if err == nil && sendErr == nil {
			sendErr = stream.Send(page) // the last page, maybe empty: it carries the version
		}
	})
	if err != nil {
		return toStatus(err)
	}
	return sendErr
}

func (s *controlServer) UpdateObject(ctx context.Context, req *api.UpdateObjectRequest) (*api.UpdateObjectResponse, error) {
	if err := refuseBuiltin(req.GetRef().GetKind()); err != nil {
		return nil, err
	}
	return onProposer(ctx, s, func(ctx context.Context) (*api.UpdateObjectResponse, error) {
		update := func(tx store.Tx) error { return updateInTx(tx, req, true) }
		res, err := s.updateRetrying(ctx, req.GetRequestId(), req.GetExpectedVersion() == 0, update)
		if errors.Is(err, errUnchanged) {
			// Nothing to change in this manager's store, which may be
			// behind: only once it is up to date is "unchanged" the answer.
			if err = s.m.linearizableRead(ctx); err != nil {
				return nil, err
			}
			res, err = s.updateRetrying(ctx, req.GetRequestId(), req.GetExpectedVersion() == 0, update)
		}
		if errors.Is(err, errUnchanged) {
			var cur *api.Object
			s.m.store.View(func(tx store.ReadTx) { cur, err = resolve(tx, req.GetRef()) })
			if err != nil {
				return nil, err
			}
			return &api.UpdateObjectResponse{Object: publicObject(cur)}, nil
		}
		if err != nil {
			return nil, err
		}
		return &api.UpdateObjectResponse{Object: publicObject(res.Objects[0])}, nil
	}, func(ctx context.Context, c api.ControlClient) (*api.UpdateObjectResponse, error) {
		resp, err := c.UpdateObject(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp, s.appliedHere(ctx, resp.GetObject().GetVersion())
	})
}

// updateRetrying runs a read-modify-write with request ID id (see
// store.UpdateRequest). When the caller gave no
// expected version, the version read is expected instead, so a concurrent
// change is never silently overwritten, and a conflict is retried.
//
// The objects are looked up in this manager's own store, which may be
// behind the cluster's: a leader that has not applied its predecessors'
// entries yet, or was deposed without knowing it, or a manager whose Raft
// node has not started (n.Leader() == n.ID() == 0) and whose store is
// still empty. So "not found" is only answered once a linearizable read
// has brought the store up to date and the write, run again, still finds
// nothing. Running it again is safe: a failed lookup proposed nothing, and
// an entry refused at apply (an id a stale lookup gave) changed nothing.
// If the store cannot be brought up to date, the caller gets that error
// (unavailable), not a stale "not found". A repeat of a write applied
// meanwhile under the same request ID is then answered as one.
func (s *controlServer) updateRetrying(ctx context.Context, id []byte, retry bool, fn func(store.Tx) error) (*store.Result, error) {
	confirmed := false
	for attempt := 1; ; attempt++ {
		res, err := s.m.store.UpdateRequest(ctx, id, fn)
		if errors.Is(err, store.ErrNotFound) && !confirmed {
			if rerr := s.m.linearizableRead(ctx); rerr != nil {
				return nil, rerr
			}
			confirmed = true
			attempt--
			continue
		}
		if !retry || !errors.Is(err, store.ErrVersionConflict) || attempt == updateAttempts {
			return res, err
		}
	}
}

// errUnchanged is updateInTx's answer to an update that would change
// nothing (the same spec, name and labels): no new version is written.
var errUnchanged = errors.New("the update changes nothing")

// updateInTx applies req to the object it names. With skipUnchanged, an
// update that would leave the object as it is (a label removed that it
// does not have, the same spec again) writes nothing and returns
// errUnchanged, unless its expected version does not match. The object
// read is changed in place: a read returns the caller's own copy.
func updateInTx(tx store.Tx, req *api.UpdateObjectRequest, skipUnchanged bool) error {
	o, err := resolve(tx, req.GetRef())
	if err != nil {
		return err
	}
	changed := false
	if req.Spec != nil && !bytes.Equal(req.GetSpec(), o.GetSpec()) {
		o.Spec, changed = req.GetSpec(), true
	}
	if req.NewName != nil && req.GetNewName() != o.GetName() {
		o.Name, changed = req.GetNewName(), true
	}
	if len(req.GetSetLabels()) > 0 || len(req.GetRemoveLabels()) > 0 {
		labels := maps.Clone(o.GetLabels())
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, req.GetSetLabels())
		for _, k := range req.GetRemoveLabels() {
			delete(labels, k)
		}
		if !maps.Equal(labels, o.GetLabels()) {
			o.Labels, changed = labels, true
		}
	}
	if v := req.GetExpectedVersion(); v != 0 && v != o.GetVersion() {
		o.Version, changed = v, true
	}
	if skipUnchanged && !changed {
		return errUnchanged
	}
	return tx.Update(o)
}

func (s *controlServer) DeleteObject(ctx context.Context, req *api.DeleteObjectRequest) (*api.DeleteObjectResponse, error) {
	if err := refuseBuiltin(req.GetRef().GetKind()); err != nil {
		return nil, err
	}
	return onProposer(ctx, s, func(ctx context.Context) (*api.DeleteObjectResponse, error) {
		res, err := s.updateRetrying(ctx, req.GetRequestId(), req.GetExpectedVersion() == 0, func(tx store.Tx) error {
			return deleteInTx(tx, req)
		})
		if err != nil {
			return nil, err
		}
		return &api.DeleteObjectResponse{Version: res.Version}, nil
	}, func(ctx context.Context, c api.ControlClient) (*api.DeleteObjectResponse, error) {
		resp, err := c.DeleteObject(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp, s.appliedHere(ctx, resp.GetVersion())
	})
}

func deleteInTx(tx store.Tx, req *api.DeleteObjectRequest) error {
	cur, err := resolve(tx, req.GetRef())
	if err != nil {
		return err
	}
	expected := req.GetExpectedVersion()
	if expected == 0 {
		expected = cur.GetVersion()
	}
	return tx.Delete(cur.GetKind(), cur.GetId(), expected)
}

func (s *controlServer) Transaction(ctx context.Context, req *api.TransactionRequest) (*api.TransactionResponse, error) {
	if len(req.GetOps()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "transaction: no operations given")
	}
	retry := true
	for i, op := range req.GetOps() {
		var kind string
		switch o := op.GetOp().(type) {
		case *api.TransactionOp_Create:
			kind = o.Create.GetObject().GetKind()
		case *api.TransactionOp_Update:
			kind = o.Update.GetRef().GetKind()
			retry = retry && o.Update.GetExpectedVersion() == 0
		case *api.TransactionOp_Delete:
			kind = o.Delete.GetRef().GetKind()
			retry = retry && o.Delete.GetExpectedVersion() == 0
		default:
			return nil, status.Errorf(codes.InvalidArgument, "transaction: operation %d is empty", i)
		}
		if err := refuseBuiltin(kind); err != nil {
			return nil, err
		}
	}
	return onProposer(ctx, s, func(ctx context.Context) (*api.TransactionResponse, error) {
		res, err := s.updateRetrying(ctx, req.GetRequestId(), retry, func(tx store.Tx) error {
			for i, op := range req.GetOps() {
				var err error
				switch o := op.GetOp().(type) {
				case *api.TransactionOp_Create:
					if o.Create.GetObject() == nil {
						err = fmt.Errorf("%w: no object given", store.ErrInvalid)
					} else {
						_, err = tx.Create(o.Create.GetObject())
					}
				case *api.TransactionOp_Update:
					err = updateInTx(tx, o.Update, false)
				case *api.TransactionOp_Delete:
					err = deleteInTx(tx, o.Delete)
				}
				if err != nil {
					return fmt.Errorf("operation %d: %w", i, err)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		objs := slices.Clone(res.Objects)
		for i, op := range req.GetOps() {
			if c := op.GetCreate(); c != nil && i < len(objs) {
				objs[i] = repeatedCreate(res, objs[i], c.GetObject())
			}
		}
		return &api.TransactionResponse{Objects: objs, Version: res.Version}, nil
	}, func(ctx context.Context, c api.ControlClient) (*api.TransactionResponse, error) {
		resp, err := c.Transaction(ctx, req)
		if err != nil {
			return nil, err
		}
		return resp, s.appliedHere(ctx, resp.GetVersion())
	})
}

func (s *controlServer) Watch(req *api.WatchRequest, stream grpc.ServerStreamingServer[api.WatchResponse]) error {
	sel := store.Selector{Kind: req.GetKind(), NamePrefix: req.GetNamePrefix(), Labels: req.GetLabels()}
	from := req.GetFromVersion()
	if from == 0 {
		from = s.m.store.Version()
	}
	w, err := s.m.store.Watch(from, sel)
	if err != nil {
		return toStatus(err)
	}
	defer w.Close()
	s.m.ins.watchers.Inc()
	defer s.m.ins.watchers.Dec()
	if err := stream.Send(&api.WatchResponse{StartVersion: from}); err != nil {
		return err
	}
	// The watch ends with the client's call or with the manager's shutdown.
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	stop := context.AfterFunc(s.m.serving, cancel)
	defer stop()
	var next *api.WatchEvent // read, and left for the next message
	for {
		if next == nil {
			ev, err := w.Next(ctx)
			if err != nil {
				if s.m.serving.Err() != nil {
					return status.Error(codes.Unavailable, "the manager is shutting down; watch again from the last version seen")
				}
				return toStatus(err)
			}
			next = watchEvent(ev)
		}
		var batch []*api.WatchEvent
		batch, next = watchBatch(w, next)
		if err := stream.Send(&api.WatchResponse{Events: batch}); err != nil {
			return err
		}
	}
}

// A watch sends the events that are already there together, up to
// watchBatchEvents events and watchBatchBytes bytes (the first one
// whatever its size): one message, and one write to the connection, for a
// burst of changes instead of one each.
const (
	watchBatchEvents = 256
	watchBatchBytes  = 1 << 20
)

// nowCtx is an ended context: Next with it returns an event already
// there, or ctx's error instead of waiting.
var nowCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// watchBatch returns first and the events after it that w holds already,
// within the batch's bounds, and the event read that did not fit, if any.
// An error (the watch lagged, was reset or closed) ends the batch; w's
// next Next returns it again.
func watchBatch(w *store.Watcher, first *api.WatchEvent) (batch []*api.WatchEvent, next *api.WatchEvent) {
	batch = []*api.WatchEvent{first}
	size := proto.Size(first)
	for len(batch) < watchBatchEvents {
		ev, err := w.Next(nowCtx)
		if err != nil {
			return batch, nil
		}
		e := watchEvent(ev)
		if size += proto.Size(e); size > watchBatchBytes {
			return batch, e
		}
		batch = append(batch, e)
	}
	return batch, nil
}

func watchEvent(ev store.Event) *api.WatchEvent {
	out := &api.WatchEvent{Object: publicObject(ev.Object), Version: ev.Version}
	switch ev.Type {
	case store.EventCreate:
		out.Type = api.EventType_EVENT_TYPE_CREATE
	case store.EventUpdate:
		out.Type = api.EventType_EVENT_TYPE_UPDATE
	case store.EventDelete:
		out.Type = api.EventType_EVENT_TYPE_DELETE
	}
	return out
}
