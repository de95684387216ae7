package client

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The errors of a Client's calls are gRPC status errors with the codes
// documented on the Control service; status.Code(err) gives the code, and
// the functions below classify it. Each is false for nil.

// IsNotFound reports an object or manager that does not exist.
func IsNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// IsExists reports a create or rename whose name is taken.
func IsExists(err error) bool { return status.Code(err) == codes.AlreadyExists }

// IsConflict reports a change refused by the cluster's state: an expected
// version that did not match (ABORTED; also a watcher cut off for falling
// behind), a removal that would break quorum (FAILED_PRECONDITION), or a
// watch from a version older than the retained history (OUT_OF_RANGE).
func IsConflict(err error) bool {
	switch status.Code(err) {
	case codes.Aborted, codes.FailedPrecondition, codes.OutOfRange:
		return true
	}
	return false
}

// IsInvalid reports bad input: a name, kind, label, JSON spec or size that
// breaks the rules. Retrying the same call fails again.
func IsInvalid(err error) bool { return status.Code(err) == codes.InvalidArgument }

// IsUnavailable reports a cluster that could not answer: no manager
// reachable, no leader elected in time, leadership lost (a write's outcome
// is then unknown), or a deadline that passed first. Retrying later may
// succeed.
func IsUnavailable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}
