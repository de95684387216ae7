package transport

import "errors"

// Errors returned by this package. Match them with errors.Is: most are
// wrapped with the peer or the configuration field they concern.
var (
	// ErrStopped means the Transport was stopped; it accepts no new peers
	// and sends nothing more.
	ErrStopped = errors.New("transport: stopped")
	// ErrPeerNotFound means no peer with that Raft ID was added, or it was
	// removed.
	ErrPeerNotFound = errors.New("transport: peer not found")
	// ErrPeerExists means AddPeer was called for a Raft ID that is already
	// known under another address; UpdatePeer changes an address.
	ErrPeerExists = errors.New("transport: peer already added with another address")
	// ErrInvalidPeer means a peer's Raft ID or address cannot be used: ID 0,
	// the local node's own ID, or an empty address.
	ErrInvalidPeer = errors.New("transport: invalid peer")
	// ErrInvalidConfig means a Config or ServerConfig field is out of range;
	// the wrapping error names the field and its value.
	ErrInvalidConfig = errors.New("transport: invalid config")
)
