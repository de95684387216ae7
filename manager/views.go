package manager

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft"
)

// peerAskTimeout bounds the call asking one other manager for its view.
const peerAskTimeout = 2 * time.Second

// probeInterval is how often a manager asks the others for their views,
// for the dashboard and the round-trip metric.
const probeInterval = 2 * time.Second

// GetClusterHealth answers with every member's own view, asked directly:
// it needs no leader.
func (s *controlServer) GetClusterHealth(ctx context.Context, _ *api.GetClusterHealthRequest) (*api.GetClusterHealthResponse, error) {
	resp, err := s.m.gatherViews(ctx)
	return resp, toStatus(err)
}

// localInfo is this manager's own view, as GetClusterInfo answers it.
func (m *Manager) localInfo(st raft.Status) *api.GetClusterInfoResponse {
	members := toMembers(st)
	info := &api.GetClusterInfoResponse{
		ClusterId:             m.clusterID(),
		LeaderRaftId:          st.Leader,
		Term:                  st.Term,
		CommitIndex:           st.Commit,
		AppliedIndex:          st.Applied,
		StoreVersion:          m.store.Version(),
		Members:               uint32(len(members)),
		RaftState:             st.State,
		CertificateExpiryUnix: m.sec.holder.Leaf().NotAfter.Unix(),
		TimeUnixMs:            time.Now().UnixMilli(),
		WalFsyncUs:            m.fsyncs.mean(readFsyncs()).Microseconds(),
	}
	for _, mem := range members {
		if mem.GetRaftId() == st.ID {
			info.Manager = mem
		}
		if mem.GetRaftId() == st.Leader {
			info.LeaderAddr = mem.GetAddr()
		}
		if mem.GetReachable() {
			info.ReachableMembers++
		}
	}
	return info
}

// gatherViews asks every other member for its own view, all at once, each
// call bounded by peerAskTimeout, and returns them after this manager's.
func (m *Manager) gatherViews(ctx context.Context) (*api.GetClusterHealthResponse, error) {
	st, err := m.node.Status()
	if err != nil {
		return nil, err
	}
	resp := &api.GetClusterHealthResponse{AnsweredBy: st.ID, Members: toMembers(st)}
	views := make([]*api.ManagerView, len(st.Members))
	var wg sync.WaitGroup
	for i, mem := range st.Members {
		if mem.RaftID == st.ID {
			views[i] = &api.ManagerView{RaftId: mem.RaftID, NodeId: mem.NodeID, Addr: mem.Addr, Info: m.localInfo(st)}
			continue
		}
		wg.Go(func() { views[i] = m.askPeer(ctx, mem.RaftID, mem.NodeID, mem.Addr) })
	}
	wg.Wait()
	for _, v := range views {
		if v.GetRaftId() == st.ID {
			resp.Views = append([]*api.ManagerView{v}, resp.Views...)
		} else {
			resp.Views = append(resp.Views, v)
		}
	}
	return resp, nil
}

// askPeer asks one member for its view over the Raft transport's
// connection to it, and records the round trip.
func (m *Manager) askPeer(ctx context.Context, id uint64, nodeID, addr string) *api.ManagerView {
	v := &api.ManagerView{RaftId: id, NodeId: nodeID, Addr: addr}
	conn, err := m.node.PeerConn(id)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, peerAskTimeout)
	defer cancel()
	start := time.Now()
	info, err := api.NewControlClient(conn).GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
	rtt := time.Since(start)
	if err != nil {
		v.Error = oneLineStatus(err)
		return v
	}
	m.ins.peerRoundTrip.WithLabelValues(nodeID).Observe(rtt.Seconds())
	v.Info = info
	v.RoundTripUs = rtt.Microseconds()
	if t := info.GetTimeUnixMs(); t != 0 {
		v.ClockOffsetMs = t - start.Add(rtt/2).UnixMilli()
	}
	return v
}

// probeViews gathers the views every probeInterval until ctx ends, keeping
// the last for the dashboard.
func (m *Manager) probeViews(ctx context.Context, last *atomic.Pointer[api.GetClusterHealthResponse]) {
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		if resp, err := m.gatherViews(ctx); err == nil {
			last.Store(resp)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// oneLineStatus is the message and code of a failed call, without gRPC's
// framing.
func oneLineStatus(err error) string {
	st := status.Convert(err)
	return st.Message() + " (" + st.Code().String() + ")"
}
