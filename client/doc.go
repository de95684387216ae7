// Package client is the Go client of a shoal cluster: it calls the Control
// API of one manager, either on its local control socket (the
// administrator on the manager's machine) or on its remote API over TCP.
//
// Any manager answers: followers forward writes to the leader themselves,
// so the client holds no leader logic. Given several TCP addresses, the
// client connects to the first that answers and moves on to the next one
// when the connection breaks. Reads are linearizable unless
// WithConsistency(Serializable) asks for the faster, possibly stale, read
// of the called manager's own store.
//
// Errors keep the gRPC status codes documented on the Control service
// (api/control.proto); IsNotFound, IsExists, IsConflict, IsInvalid and
// IsUnavailable classify them.
//
// The package depends on the api package only, never on the server's
// packages. A Client is safe for concurrent use.
package client
