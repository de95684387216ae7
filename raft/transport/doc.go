// Package transport carries one Raft node's messages to its peers over gRPC
// and receives theirs.
//
// It owns the peer connections, one bounded queue and one sending goroutine
// per peer, the streaming of snapshots and their state, the chunking of
// other large messages, the reports that etcd's raft expects from its
// transport (ReportUnreachable, ReportSnapshot), and the server side of the
// Raft service of package api. It decides nothing about Raft itself and
// never touches the store or the disk: received
// messages go to a Handler, reports go to the Raft interface, and the local
// node decides what they mean.
//
// # Sending
//
// Send encodes each message on the caller's goroutine and queues it for its
// peer without blocking. A peer's sender packs every message waiting for it
// into one batch of at most Config.MaxUnaryMessageSize bytes and writes the
// batches, in order, to one long-lived RaftMessages stream, without waiting
// for the peer: the peer answers the first batch once it has stepped it,
// and later ones at most once a second (an answer for every batch cost a
// write and a read of the socket each), and those answers mark the peer
// active. The stream ends on any failure (the
// peer's refusal, a broken connection, a send stuck for Config.SendTimeout);
// that is reported with ReportUnreachable and the next batch opens a new
// stream. A peer that does not serve RaftMessages (an older version) gets
// each batch in a ProcessRaftMessage call instead. A message larger than a
// batch goes in Config.ChunkSize chunks by StreamRaftMessage. A snapshot
// (MsgSnap), whose data only names its state, goes by StreamSnapshot
// followed by that state, read from Config.Snapshots in ChunkSize chunks, on
// a goroutine of its own so that heartbeats and votes keep flowing
// meanwhile; it is reported with ReportSnapshot once the peer answered. The
// receiving server hands the message and a stream of the state to
// Handler.ReceiveSnapshot; neither side holds more than a chunk of the
// state. A message that cannot be queued or sent is dropped and reported
// with ReportUnreachable; Raft recovers from lost messages by itself.
//
// # Removed members
//
// A Handler refuses the messages of a removed member with an error wrapping
// membership.ErrMemberRemoved. The server sends it as FAILED_PRECONDITION with
// an ErrorInfo (domain ErrorDomain, reason ReasonMemberRemoved); a sender
// that gets it calls Raft.NotifyRemoved once and stops sending.
//
// # Logs
//
// Logs use the keys raft_id (the local node), peer (the remote node) and
// type (the Raft message type); Raft IDs are printed in hexadecimal.
//
// # Usage
//
//	tr, err := transport.New(transport.Config{ID: id, Raft: node, Snapshots: node, Logger: logger})
//	if err != nil {
//		return err
//	}
//	defer tr.Stop()
//	if err := tr.AddPeer(peerID, "10.0.0.2:2377"); err != nil {
//		return err
//	}
//
//	srv := grpc.NewServer(transport.ServerOptions()...)
//	api.RegisterRaftServer(srv, transport.NewServer(node, transport.ServerConfig{}))
//	go srv.Serve(listener)
//
//	// In the Raft loop, for each Ready:
//	tr.Send(rd.Messages)
package transport
