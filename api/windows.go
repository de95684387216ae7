package api

// StreamWindow and ConnWindow are the fixed gRPC flow-control windows, per
// stream and per connection, of every shoal endpoint: the managers' servers,
// the connections between managers and the client library's connections.
// Without fixed windows, gRPC sizes them by estimating the bandwidth-delay
// product with a PING each time data arrives after the last PING was
// answered, which on a stream of small Raft batches, or on a client's calls
// one at a time, is a PING and its answer for nearly every message: one more
// write and read of the socket on both sides. 4 MiB per stream moves about
// 80 MB/s over a link with a 50 ms round trip.
const (
	StreamWindow = 4 << 20
	ConnWindow   = 16 << 20
)
