package transport

import (
	"errors"

	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/raft/membership"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The error that tells a sender it was removed from the cluster travels as
// gRPC status FAILED_PRECONDITION whose message is the text of
// membership.ErrMemberRemoved (what api/raft.proto promises) and whose
// details carry an ErrorInfo with this reason and domain. The sender matches
// the ErrorInfo, so the check survives a reworded message; the exact message
// is accepted too, for peers that send only what the proto file promises.
const (
	// ErrorDomain is the ErrorInfo domain of the errors this package puts on
	// the wire.
	ErrorDomain = "raft.shoal"
	// ReasonMemberRemoved is the ErrorInfo reason of the refusal of a
	// message whose sender was removed from the cluster.
	ReasonMemberRemoved = "MEMBER_REMOVED"
)

// memberRemovedStatus is the status a server returns when the Handler
// refused a message because its sender was removed.
var memberRemovedStatus = func() *status.Status {
	st, err := status.New(codes.FailedPrecondition, membership.ErrMemberRemoved.Error()).
		WithDetails(&errdetails.ErrorInfo{Reason: ReasonMemberRemoved, Domain: ErrorDomain})
	if err != nil {
		// WithDetails fails only for a code of OK or a detail that cannot
		// be marshalled; neither can happen with constants.
		panic("transport: build member-removed status: " + err.Error())
	}
	return st
}()

// IsMemberRemoved reports whether err, returned by a call to a peer, means
// the peer refused the call because the caller was removed from the cluster.
// It also reports true for errors wrapping membership.ErrMemberRemoved, so it
// can be used on both sides of a call.
func IsMemberRemoved(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, membership.ErrMemberRemoved) {
		return true
	}
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	if st.Code() == codes.PermissionDenied {
		// The peer's authorisation layer refused our certificate's node
		// ID as removed, before the Raft service saw the message.
		for _, d := range st.Details() {
			if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ca.ErrorDomain && info.GetReason() == ca.ReasonNodeRemoved {
				return true
			}
		}
		return false
	}
	if st.Code() != codes.FailedPrecondition {
		return false
	}
	hasInfo := false
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetDomain() == ErrorDomain && info.GetReason() == ReasonMemberRemoved {
				return true
			}
			hasInfo = true
		}
	}
	return !hasInfo && st.Message() == membership.ErrMemberRemoved.Error()
}
