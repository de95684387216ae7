package clusterrpc

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft"
)

// JoinThrough returns the raft.JoinFunc that asks the manager at addr,
// over a connection made with opts, to add the calling manager.
func JoinThrough(addr string, opts ...grpc.DialOption) raft.JoinFunc {
	return func(ctx context.Context, req *api.JoinRequest) (*api.JoinResponse, error) {
		conn, err := grpc.NewClient(addr, opts...)
		if err != nil {
			return nil, fmt.Errorf("joining through %s: %w", addr, err)
		}
		defer conn.Close()
		resp, err := api.NewRaftMembershipClient(conn).Join(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("joining through %s: %w", addr, errorFromStatus(err))
		}
		return resp, nil
	}
}

// AnnounceAddress makes the cluster record addr as node n's address when
// n restarted at an address other than the one its peers know. They cannot
// reach it at the old one, so it asks them: any member forwards the
// request to the leader. Once n has replayed its log, it retries every
// election timeout until the address is recorded, or ctx ends, or n stops.
func AnnounceAddress(ctx context.Context, n *raft.Node, addr string, log *slog.Logger) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-n.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := n.WaitReplayed(ctx); err != nil {
		return
	}
	for {
		m, ok := n.Cluster().Get(n.ID())
		if !ok || m.Addr == addr {
			return
		}
		log.Info("announcing a new address", "old", m.Addr, "new", addr)
		for _, peer := range n.Cluster().Members() {
			if peer.RaftID != n.ID() && askToUpdateAddress(ctx, n, peer.RaftID, addr, log) {
				return
			}
		}
		select {
		case <-time.After(n.ElectionTimeout()):
		case <-ctx.Done():
			return
		}
	}
}

func askToUpdateAddress(ctx context.Context, n *raft.Node, peer uint64, addr string, log *slog.Logger) bool {
	conn, err := n.PeerConn(peer)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*n.ElectionTimeout())
	defer cancel()
	_, err = api.NewRaftMembershipClient(conn).UpdateAddress(ctx, &api.UpdateAddressRequest{
		RaftId: n.ID(), NodeId: n.NodeID(), Addr: addr})
	if err != nil {
		log.Warn("announcing the new address", "peer", fmt.Sprintf("%x", peer), "err", errorFromStatus(err))
		return false
	}
	return true
}
