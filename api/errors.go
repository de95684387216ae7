package api

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// The ErrorInfo (google.rpc.ErrorInfo) that managers attach to some of the
// status errors of the Control service, so that a client can act on them
// without reading messages.
const (
	// ErrorDomain is the ErrorInfo domain of the details below.
	ErrorDomain = "shoal"
	// ReasonNotApplied marks an UNAVAILABLE error after which the call
	// certainly changed nothing (no leader, this manager is not the
	// leader, the proposal was dropped, the manager is stopping before it
	// ran the call): the call may be retried as it is, writes included.
	// An UNAVAILABLE error without it may come after a write that was
	// committed all the same.
	ReasonNotApplied = "NOT_APPLIED"
)

// NotApplied returns st with the ErrorInfo of ReasonNotApplied.
func NotApplied(st *status.Status) *status.Status {
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: ReasonNotApplied})
	if err != nil {
		return st // only an OK status cannot carry details
	}
	return withInfo
}

// IsNotApplied reports whether err is a status error whose call changed
// nothing and may be retried as it is (ReasonNotApplied).
func IsNotApplied(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	for _, d := range st.Details() {
		if info, isInfo := d.(*errdetails.ErrorInfo); isInfo && info.GetDomain() == ErrorDomain && info.GetReason() == ReasonNotApplied {
			return true
		}
	}
	return false
}
