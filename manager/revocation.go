package manager

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/store"
)

// The deny list of revoked certificates lives in the cluster object's
// spec (RevokedCertificates), so it is replicated through Raft with the
// rest of the cluster's state and survives restarts and snapshots. Every
// authorised call consults it on the manager it reaches: revokedSet
// caches the list as of one version of the cluster object, and is rebuilt
// when that version changes.

// revokedSet is the deny list as of the cluster object's version.
type revokedSet struct {
	version uint64
	ids     map[string]bool
}

// revokedList is the manager as the Authorizer's ca.RevocationList.
type revokedList Manager

func (r *revokedList) IsRevoked(nodeID string) bool {
	m := (*Manager)(r)
	if m.store == nil {
		return false
	}
	// The list is parsed again only when the cluster object's version,
	// read without decoding the object, is not the cached one's.
	set := m.revoked.Load()
	found := false
	var o *api.Object
	m.store.View(func(tx store.ReadTx) {
		version, err := tx.VersionByName(store.KindCluster, clusterObjectName)
		if found = err == nil; found && (set == nil || set.version != version) {
			o, _ = tx.GetByName(store.KindCluster, clusterObjectName)
		}
	})
	if !found {
		return false // no cluster object yet: nothing was revoked
	}
	if o != nil {
		spec, err := parseClusterSpec(o)
		if err != nil {
			m.log.Error("reading the revoked certificates", "err", err)
			return false
		}
		set = &revokedSet{version: o.GetVersion(), ids: make(map[string]bool, len(spec.RevokedCertificates))}
		for _, id := range spec.RevokedCertificates {
			set.ids[id] = true
		}
		m.revoked.Store(set)
	}
	return set.ids[nodeID]
}

// RevokeCertificate adds a client certificate's ID to the deny list, on
// the leader. A manager's ID is refused: managers leave with node rm.
func (s *controlServer) RevokeCertificate(ctx context.Context, req *api.RevokeCertificateRequest) (*api.RevokeCertificateResponse, error) {
	id := req.GetId()
	if err := ca.ValidateNodeID(id); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "revoke: %v (give the client ID that 'shoal cluster client-cert' printed)", err)
	}
	if _, isMember := s.m.node.Cluster().ByNodeID(id); isMember || id == s.m.sec.identity.NodeID {
		return nil, status.Errorf(codes.FailedPrecondition, "%s is a manager: remove it with 'shoal node rm %s' instead", id, id)
	}
	return onLeader(ctx, s, func(ctx context.Context) (*api.RevokeCertificateResponse, error) {
		already := false
		_, err := s.m.store.Update(ctx, func(tx store.Tx) error {
			return changeClusterSpec(tx, func(spec *clusterSpec) (bool, error) {
				if already = slices.Contains(spec.RevokedCertificates, id); already {
					return false, nil
				}
				spec.RevokedCertificates = append(spec.RevokedCertificates, id)
				return true, nil
			})
		})
		if err != nil {
			return nil, fmt.Errorf("revoking %s: %w", id, err)
		}
		if !already {
			s.m.log.Info("revoked a certificate", "client_id", id)
		}
		return &api.RevokeCertificateResponse{Already: already}, nil
	}, func(ctx context.Context, c api.ControlClient) (*api.RevokeCertificateResponse, error) {
		resp, err := c.RevokeCertificate(ctx, req)
		if err != nil {
			return nil, err
		}
		// This manager refuses the certificate too before the caller hears
		// back: its store has caught up with the leader's.
		return resp, s.m.linearizableRead(ctx)
	})
}
