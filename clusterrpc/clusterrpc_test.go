package clusterrpc

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/raft/membership"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{&raft.NotLeaderError{}, codes.Unavailable},
		{fmt.Errorf("wrapped: %w", raft.ErrLostLeadership), codes.Unavailable},
		{membership.ErrNodeIsMember, codes.AlreadyExists},
		{membership.ErrCannotDemote, codes.FailedPrecondition},
		{raft.ErrCannotPromote, codes.FailedPrecondition},
		{membership.ErrUnknownMember, codes.NotFound},
		{raft.ErrWrongNode, codes.PermissionDenied},
		{raft.ErrProposalTooLarge, codes.InvalidArgument},
		{context.DeadlineExceeded, codes.DeadlineExceeded},
		{status.Error(codes.Aborted, "as is"), codes.Aborted},
		{errors.New("something else"), codes.Unknown},
	}
	for _, tt := range tests {
		if got := status.Code(ToStatus(tt.err)); got != tt.want {
			t.Errorf("ToStatus(%v) has code %v, want %v", tt.err, got, tt.want)
		}
	}
}

// incoming turns the outgoing metadata of a forwarded call into the
// incoming metadata the leader sees.
func incoming(ctx context.Context) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx)
	return metadata.NewIncomingContext(context.Background(), md)
}

func TestForwardMarkIsTheForwardedCaller(t *testing.T) {
	if IsForwarded(context.Background()) {
		t.Fatal("a direct call counts as forwarded")
	}
	// A call from the control socket has no certificate: it is forwarded
	// on behalf of the forwarding manager.
	fctx, err := forwardingContext(context.Background(), "manager-1")
	if err != nil {
		t.Fatal(err)
	}
	at := incoming(fctx)
	if !IsForwarded(at) {
		t.Fatal("a forwarded call does not count as forwarded")
	}
	md, _ := metadata.FromIncomingContext(at)
	if got := md.Get(ca.MetadataForwardedNodeID); len(got) != 1 || got[0] != "manager-1" {
		t.Fatalf("forwarded on behalf of %v, want manager-1", got)
	}
	if IsForwarded(WithoutForwardMark(at)) {
		t.Fatal("WithoutForwardMark left the mark")
	}
}
