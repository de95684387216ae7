// Package clusterrpc is the gRPC face of a manager's Raft node for
// everything but Raft traffic: the RaftMembership service (join, address
// updates), joining a cluster and announcing a new address from the new
// or moved manager's side, forwarding calls from a follower to the
// leader, and the gRPC codes of the node's errors.
//
// A forwarded call carries one mark: the identity of its original caller
// in the metadata keys of package ca (ca.ForwardingContext), which the
// leader's ca.Authorizer checks and authorises. A call that carries it is
// never forwarded again, so a call takes at most one hop. A call from the
// local control socket, which has no certificate, is forwarded on behalf
// of the forwarding manager itself.
//
// It owns no Raft logic: membership decisions, their quorum checks and
// their serialisation are raft.Node's. It must not reach into raft's
// internals or the store.
//
//	api.RegisterRaftMembershipServer(grpcServer, clusterrpc.NewMembershipServer(node, true))
//	fctx, conn, err := clusterrpc.LeaderConn(ctx, node)   // on a follower
package clusterrpc
