// Package manager runs one shoal manager: it owns the state directory, the
// two listeners (the TCP remote API for peers and remote clients, and the
// unix control socket for the local administrator), the Control API, the
// forwarding of writes from followers to the leader, the work only the
// leader does, the order of startup and shutdown, and backups: sending one
// (Control.SaveBackup) and founding a cluster from one (restore.go).
//
// It wires the raft node and the object store together: the store applies
// what the node commits and proposes through it. It must not reach into
// either one's internals; it uses their exported contracts only.
//
// Usage:
//
//	cfg := manager.DefaultConfig()
//	cfg.StateDir = "/var/lib/shoal"
//	m, err := manager.New(cfg)
//	if err != nil { ... }
//	err = m.Run(ctx) // until ctx ends (clean shutdown) or a fatal error
package manager
