package raft

import (
	"context"
	"errors"
	"fmt"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/raft/membership"
	"github.com/shoal-project/shoal/raft/transport"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// ProcessRaftMessage steps a message from a peer into the node. It
// implements transport.Handler. A message from a removed member is refused
// with membership.ErrMemberRemoved, which tells the sender to stop.
func (n *Node) ProcessRaftMessage(ctx context.Context, m *raftpb.Message) error {
	if !n.started.Load() {
		return ErrNotStarted
	}
	if n.cluster.IsRemoved(m.GetFrom()) {
		return fmt.Errorf("%w: Raft ID %x", membership.ErrMemberRemoved, m.GetFrom())
	}
	if m.GetTo() != n.id {
		return fmt.Errorf("raft: message for %x reached %x", m.GetTo(), n.id)
	}
	n.heardFrom(m.GetFrom())
	if err := n.raftNode.Step(ctx, m); err != nil {
		if errors.Is(err, raft.ErrStopped) {
			return ErrStopped
		}
		return err
	}
	return nil
}

// NewRaftServer returns the gRPC Raft service of this node, to register on
// the manager's listener.
func (n *Node) NewRaftServer() api.RaftServer {
	return transport.NewServer(n, transport.ServerConfig{})
}
