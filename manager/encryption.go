package manager

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/keys"
)

// keysDirName is the directory of the data encryption keys in the state
// directory.
const keysDirName = "keys"

func (m *Manager) keysConfig() keys.Config {
	return keys.Config{Dir: filepath.Join(m.cfg.StateDir, keysDirName), Logger: m.log}
}

// openKeys returns the keys that encrypt this manager's Raft data: created
// on its first start, read on a restart, after waiting for the unlock key
// on the control socket, socket, when the manager runs with autolock.
// checkStateDir refused a state directory that needs keys it lacks.
func (m *Manager) openKeys(ctx context.Context, socket net.Listener) (*keys.Keys, error) {
	cfg := m.keysConfig()
	var k *keys.Keys
	if keys.Exists(cfg.Dir) {
		opened, locked, err := keys.Open(cfg)
		switch {
		case err != nil:
			return nil, fmt.Errorf("manager: %w", err)
		case locked:
			if k, err = m.waitForUnlock(ctx, cfg, socket); err != nil {
				return nil, err
			}
		default:
			k = opened
		}
	} else {
		var err error
		if k, err = keys.Create(cfg); err != nil {
			return nil, fmt.Errorf("manager: %w", err)
		}
	}
	if m.cfg.Autolock && !k.Autolocked() {
		u, err := k.EnableAutolock()
		if err != nil {
			k.Close()
			return nil, fmt.Errorf("manager: enabling autolock: %w", err)
		}
		m.setUnlockKey(u)
		m.announceUnlockKey()
	}
	return k, nil
}

// announceUnlockKey shows the unlock key once, outside the logs.
func (m *Manager) announceUnlockKey() {
	if m.cfg.UnlockKeyOutput == nil {
		return
	}
	fmt.Fprintf(m.cfg.UnlockKeyOutput, `
This manager's data is encrypted, and after a restart it stays locked until
it is given this unlock key (shoal unlock). Keep it somewhere safe: without
it the manager's data cannot be read. 'shoal cluster unlock-key' shows it
again while the manager runs.

    %s

`, m.currentUnlockKey())
}

func (m *Manager) setUnlockKey(u *keys.UnlockKey) {
	m.keyMu.Lock()
	m.unlockKey = u.String()
	m.keyMu.Unlock()
	u.Wipe()
}

func (m *Manager) currentUnlockKey() string {
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	return m.unlockKey
}

// waitForUnlock serves only the Unlock service on the control socket until
// the administrator gives the right unlock key, and returns the keys. It
// serves on a duplicate of socket, which stopping its server closes, so
// that socket stays bound for the manager's own server: a client that
// connects in between waits in the socket's backlog.
func (m *Manager) waitForUnlock(ctx context.Context, cfg keys.Config, socket net.Listener) (*keys.Keys, error) {
	lis, err := duplicateListener(socket)
	if err != nil {
		return nil, fmt.Errorf("manager: serving the unlock service on the control socket: %w", err)
	}
	unlocked := make(chan *keys.Keys, 1)
	// Every call but Unlock is refused with a message that says what to do.
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error { return lockedError() }))
	api.RegisterUnlockServer(srv, &unlockServer{m: m, cfg: cfg, unlocked: unlocked})
	go func() { _ = srv.Serve(lis) }()
	m.log.Warn("this manager is locked: give it its unlock key with 'shoal unlock'", "socket", m.SocketPath())
	select {
	case k := <-unlocked:
		srv.GracefulStop()
		m.log.Info("unlocked")
		return k, nil
	case <-ctx.Done():
		srv.Stop()
		return nil, fmt.Errorf("manager: stopped while locked: %w", ctx.Err())
	}
}

// duplicateListener returns a listener on the socket lis listens on, whose
// Close leaves lis open and the socket's file in place.
func duplicateListener(lis net.Listener) (net.Listener, error) {
	fl, ok := lis.(interface{ File() (*os.File, error) })
	if !ok {
		return nil, fmt.Errorf("a %T cannot be duplicated", lis)
	}
	f, err := fl.File()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return net.FileListener(f)
}

func lockedError() error {
	return status.Error(codes.Unavailable, "this manager is locked: unlock it with 'shoal unlock' and its unlock key")
}

type unlockServer struct {
	api.UnimplementedUnlockServer
	m        *Manager
	cfg      keys.Config
	unlocked chan *keys.Keys
}

func (s *unlockServer) Unlock(_ context.Context, req *api.UnlockRequest) (*api.UnlockResponse, error) {
	u, err := keys.ParseUnlockKey(strings.TrimSpace(req.GetUnlockKey()))
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "%v: an unlock key looks like SHLKEY-1-...", err)
	}
	k, err := keys.Unlock(s.cfg, u)
	switch {
	case errors.Is(err, keys.ErrWrongUnlockKey):
		u.Wipe()
		return nil, status.Error(codes.InvalidArgument, "wrong unlock key: this manager stays locked")
	case err != nil:
		u.Wipe()
		return nil, status.Errorf(codes.Internal, "unlocking: %v", err)
	}
	s.m.setUnlockKey(u)
	select {
	case s.unlocked <- k:
	default:
		k.Close() // unlocked already by a concurrent call
	}
	return &api.UnlockResponse{}, nil
}

func (s *controlServer) GetUnlockKey(_ context.Context, req *api.GetUnlockKeyRequest) (*api.GetUnlockKeyResponse, error) {
	k := s.m.keys
	if !k.Autolocked() {
		return &api.GetUnlockKeyResponse{}, nil
	}
	if req.GetRotate() {
		u, err := k.RotateUnlockKey()
		if err != nil {
			return nil, status.Errorf(codes.Internal, "rotating the unlock key: %v", err)
		}
		s.m.setUnlockKey(u)
		// Whoever held the old unlock key could read the old key file:
		// encrypt from now on with a data key it never wrapped.
		if err := k.RotateDEK(); err != nil {
			return nil, status.Errorf(codes.Internal, "rotating the data key: %v", err)
		}
		s.m.node.RequestSnapshot() // lets the old data key go
		s.m.log.Info("rotated the unlock key and the data key")
	}
	return &api.GetUnlockKeyResponse{UnlockKey: s.m.currentUnlockKey()}, nil
}

func (s *controlServer) RotateDataKey(context.Context, *api.RotateDataKeyRequest) (*api.RotateDataKeyResponse, error) {
	if err := s.m.keys.RotateDEK(); err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "rotating the data key: %v", err)
	}
	s.m.node.RequestSnapshot() // lets the old key go once it is durable
	st := s.m.keys.Status()
	s.m.log.Info("rotated the data key", "key_id", st.Current)
	return &api.RotateDataKeyResponse{KeyId: st.Current, OlderKeyIds: st.Older}, nil
}

// dataKeys is the Cipher of the Raft storage: the manager's data keys,
// whose retirement first seals this manager's other secrets (its TLS key,
// the bootstrap root CA) with the current key, so that none is left sealed
// with a retired one.
type dataKeys struct {
	*keys.Keys
	m *Manager
}

// RetireBefore seals the secrets again, then lets the older keys go. A
// crash in between leaves them sealed with a key that is kept. With no
// older key to let go (storage also calls it after a restart), there is
// nothing to seal again: the secrets are under the current key already.
func (k dataKeys) RetireBefore(generation uint64) error {
	if len(k.Keys.Status().Older) > 0 {
		if err := k.m.resealSecrets(); err != nil {
			return err
		}
	}
	return k.Keys.RetireBefore(generation)
}
