package manager

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/clusterrpc"
	"github.com/shoal-project/shoal/store"
	"github.com/shoal-project/shoal/watch"
)

// ErrBadConfig is wrapped by the errors of a start refused for its
// configuration: a flag that cannot work (an address that is not
// host:port, is in use or is not this machine's; flags that contradict
// each other or the state directory; a state directory that cannot be
// used). Such a start stops before it writes anything but the state
// directory itself, and before it contacts the cluster: change the
// configuration and start again.
var ErrBadConfig = errors.New("bad configuration")

// configError marks err as ErrBadConfig while keeping its own chain.
type configError struct{ err error }

func (e configError) Error() string        { return e.err.Error() }
func (e configError) Unwrap() error        { return e.err }
func (e configError) Is(target error) bool { return target == ErrBadConfig }

func configErrorf(format string, args ...any) error {
	return configError{fmt.Errorf(format, args...)}
}

// toStatus turns the errors of the store, the watch queue and the Raft node
// into gRPC status errors whose codes a client can act on (see the Control
// service in api/control.proto). The message is the error's own text.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var code codes.Code
	switch {
	case errors.Is(err, store.ErrExists):
		code = codes.AlreadyExists
	case errors.Is(err, store.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, store.ErrVersionConflict):
		code = codes.Aborted
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrTooLarge):
		code = codes.InvalidArgument
	case errors.Is(err, watch.ErrCompacted):
		code = codes.OutOfRange
	case errors.Is(err, watch.ErrLagged), errors.Is(err, watch.ErrReset):
		code = codes.Aborted
	case errors.Is(err, watch.ErrClosed):
		code = codes.Unavailable
	default:
		return clusterrpc.ToStatus(err)
	}
	return status.Error(code, err.Error())
}
