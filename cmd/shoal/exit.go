package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit codes; documented in the root command's help and docs/cli.md.
const (
	exitOK          = 0
	exitError       = 1 // anything else
	exitUsage       = 2 // bad usage or invalid input (a bad backup file among it)
	exitNotFound    = 3 // no such object or manager
	exitConflict    = 4 // already exists, version mismatch, refused to keep quorum, learner not caught up
	exitUnavailable = 5 // no manager reachable, no leader, timed out
	exitDenied      = 6 // the certificate used may not do this
)

const exitCodesHelp = `Exit codes:
  0  success
  1  any other error
  2  bad usage or invalid input (unknown flag, bad JSON, invalid name or kind,
     a backup file that is damaged, truncated or not a backup, a wrong key)
  3  not found (no such object or manager)
  4  conflict (name already taken, --if-version did not match, a removal
     or demotion refused to keep quorum, a learner not caught up yet for a
     promotion, a watch version too old: list again)
  5  unavailable (no manager reachable, no leader elected, timed out)
  6  denied (the certificate's role may not do this, it was revoked, or
     none was given)`

// usageError is bad usage or invalid input found before any call.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// exitCode maps an error to the documented exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return exitUnavailable
	}
	switch status.Code(err) {
	case codes.InvalidArgument, codes.ResourceExhausted:
		return exitUsage
	case codes.NotFound:
		return exitNotFound
	case codes.AlreadyExists, codes.Aborted, codes.FailedPrecondition, codes.OutOfRange:
		return exitConflict
	case codes.Unavailable, codes.DeadlineExceeded:
		return exitUnavailable
	case codes.PermissionDenied, codes.Unauthenticated:
		return exitDenied
	}
	return exitError
}

// errorMessage is the one line printed for err: what went wrong and, when
// it helps, what to do.
func errorMessage(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.DeadlineExceeded) {
			return "timed out; raise --timeout, or see whether the cluster has a leader with 'shoal cluster info'"
		}
		return oneLine(err.Error())
	}
	msg := oneLine(st.Message())
	switch st.Code() {
	case codes.Unavailable:
		if strings.Contains(msg, "leader") {
			return msg + "; is a majority of the managers up? see 'shoal node ls'"
		}
		return msg
	case codes.DeadlineExceeded:
		return "timed out waiting for the manager (" + msg + "); raise --timeout, or see whether the cluster has a leader with 'shoal cluster info'"
	case codes.Aborted:
		if strings.Contains(msg, "version") {
			return msg + "; get the object again and retry with its current version"
		}
	case codes.OutOfRange:
		return msg + "; list the objects again and watch from the version the list gives"
	case codes.PermissionDenied, codes.Unauthenticated:
		return "permission denied: " + msg + "; this needs a manager's control socket or a certificate allowed to do it"
	}
	return msg
}

// oneLine keeps a message on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
