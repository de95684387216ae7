package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/raft"
	"github.com/shoal-project/shoal/store"
)

// clusterObjectName is the name of the one object of kind "cluster".
const clusterObjectName = "default"

// reconcileInterval is how often the leader brings the built-in objects in
// line with the membership.
const reconcileInterval = time.Second

// nodeSpec is the spec of a node object, one per manager.
type nodeSpec struct {
	RaftID string `json:"raft_id"`
	Addr   string `json:"addr"`
}

// followLeadership runs the leader-only work while this manager leads, and
// stops it when it stops leading or the manager shuts down.
func (m *Manager) followLeadership() {
	events, unsubscribe := m.node.SubscribeLeadership()
	defer unsubscribe()
	work := leaderWork{m: m}
	defer work.stop()
	for {
		select {
		case ev := <-events:
			if ev.State == raft.Leader {
				work.start(ev.Term)
			} else {
				work.stop()
			}
		case <-m.serving.Done():
			return
		case <-m.node.Done():
			return
		}
	}
}

// leaderWork is the work that runs while this manager leads.
type leaderWork struct {
	m      *Manager
	cancel context.CancelFunc // nil while not running
}

func (w *leaderWork) start(term uint64) {
	if w.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(w.m.serving)
	w.cancel = cancel
	w.m.log.Info("leading: starting leader work", "term", term)
	w.m.leaderWork.Add(1)
	go func() {
		defer w.m.leaderWork.Done()
		w.m.reconcileLoop(ctx)
	}()
}

func (w *leaderWork) stop() {
	if w.cancel == nil {
		return
	}
	w.m.log.Info("stopping leader work")
	w.cancel()
	w.cancel = nil
}

// reconcileLoop keeps the built-in objects true: one cluster object, and
// one node object per manager, until ctx ends.
func (m *Manager) reconcileLoop(ctx context.Context) {
	ticker := time.NewTicker(reconcileInterval)
	defer ticker.Stop()
	for {
		if err := m.reconcile(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("reconciling the built-in objects", "err", err)
		}
		select {
		case <-ticker.C:
		case <-ctx.Done():
			return
		}
	}
}

func (m *Manager) reconcile(ctx context.Context) error {
	want := map[string]nodeSpec{}
	for _, mem := range m.node.Cluster().Members() {
		want[mem.NodeID] = nodeSpec{RaftID: fmt.Sprintf("%x", mem.RaftID), Addr: mem.Addr}
	}
	var changes []func(store.Tx) error
	m.store.View(func(tx store.ReadTx) {
		if c, _ := tx.GetByName(store.KindCluster, clusterObjectName); c == nil {
			changes = append(changes, m.createCluster)
		} else {
			defer m.removeBootstrapRoot() // the store has the root CA now
		}
		have, err := tx.List(store.Selector{Kind: store.KindNode})
		if err != nil {
			changes = append(changes, func(store.Tx) error { return err })
			return
		}
		seen := map[string]bool{}
		for _, o := range have {
			seen[o.GetName()] = true
			spec, ok := want[o.GetName()]
			if !ok {
				changes = append(changes, func(tx store.Tx) error {
					return tx.Delete(store.KindNode, o.GetId(), o.GetVersion())
				})
				continue
			}
			if specBytes := mustJSON(spec); string(o.GetSpec()) != string(specBytes) || !maps.Equal(o.GetLabels(), nodeLabels) {
				changes = append(changes, func(tx store.Tx) error {
					updated := &api.Object{Kind: o.GetKind(), Id: o.GetId(), Name: o.GetName(), Labels: nodeLabels,
						Spec: specBytes, Version: o.GetVersion(), CreatedAt: o.GetCreatedAt()}
					return tx.Update(updated)
				})
			}
		}
		for nodeID, spec := range want {
			if !seen[nodeID] {
				changes = append(changes, func(tx store.Tx) error {
					_, err := tx.Create(&api.Object{Kind: store.KindNode, Name: nodeID, Labels: nodeLabels, Spec: mustJSON(spec)})
					return err
				})
			}
		}
	})
	if len(changes) == 0 {
		return nil
	}
	_, err := m.store.Update(ctx, func(tx store.Tx) error {
		for _, change := range changes {
			if err := change(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, store.ErrVersionConflict) || errors.Is(err, store.ErrExists) {
		return nil // someone changed them meanwhile; the next round sees it
	}
	return err
}

// nodeLabels are the labels of every node object.
var nodeLabels = map[string]string{"role": "manager"}

// createCluster creates the cluster object from the root CA this manager
// created when it founded the cluster, with a first join token.
func (m *Manager) createCluster(tx store.Tx) error {
	root, err := m.readBootstrapRoot()
	if err != nil {
		return fmt.Errorf("no cluster object, and no root CA to create it from: %w", err)
	}
	rootPEM, err := root.MarshalPEM()
	if err != nil {
		return err
	}
	spec := clusterSpec{ClusterID: root.ClusterID(), RootCA: string(rootPEM), ManagerToken: ca.NewJoinToken(root).String()}
	_, err = tx.Create(&api.Object{Kind: store.KindCluster, Name: clusterObjectName, Spec: mustJSON(spec)})
	return err
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// clusterID returns the cluster's ID, empty until the first leader has
// created the cluster object.
func (m *Manager) clusterID() string {
	spec, _ := m.clusterSpec()
	return spec.ClusterID
}
