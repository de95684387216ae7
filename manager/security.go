package manager

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
	"github.com/shoal-project/shoal/internal/atomicfile"
	"github.com/shoal-project/shoal/store"
)

// bootstrapRootFile holds, in the certificates directory, the root CA with
// its key, sealed with the data keys, from the moment the first manager
// creates it until the cluster object carries it in the replicated store.
const bootstrapRootFile = "bootstrap-root-ca.sealed"

// bootstrapRootContext binds the sealed bootstrap root to its use.
const bootstrapRootContext = "shoal bootstrap root CA"

// security is this manager's TLS identity and the cluster's trust root.
type security struct {
	root     *ca.RootCA // the trust root, without its key
	holder   *ca.CertificateHolder
	identity ca.Identity
	// dir holds the credential files: certificates.pending during a first
	// start until commitIdentity, then certificates. Guarded by the
	// manager's credMu once the Raft node runs.
	dir string
}

// obtainCredentials loads this manager's certificate, or gets one on a
// first start: the first manager of a cluster creates the root CA and signs
// its own; one founding it from a backup signs its own with the backup's
// root CA; a joining manager asks the cluster's CA with the join token.
// A first start's credentials go to certificates.pending, which becomes
// certificates once the Raft state exists (see start.go).
func (m *Manager) obtainCredentials(ctx context.Context, found stateFound) (*security, error) {
	dir := ca.CertificatesPath(m.cfg.StateDir)
	var creds ca.Credentials
	var err error
	if found.raft {
		if !found.certs {
			// A first start stopped after it created its WAL, with the
			// pending certificates, and before it installed them.
			if err := m.commitIdentity(); err != nil {
				return nil, err
			}
			m.log.Info("installed the certificates that an interrupted first start left pending")
		}
		if creds, err = ca.LoadCredentials(dir, m.keys); err != nil {
			return nil, fmt.Errorf("manager: loading the certificates in %s: %w", dir, err)
		}
	} else {
		dir = m.pendingCertificatesPath()
		switch {
		case found.restore:
			creds, err = m.restoreCredentials(dir)
		case m.cfg.JoinAddr == "":
			creds, err = m.bootstrapCredentials(dir)
		default:
			creds, err = m.joinCredentials(ctx, dir)
		}
		if err != nil {
			return nil, err
		}
	}
	cert, err := creds.KeyPair.TLSCertificate()
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	holder, err := ca.NewCertificateHolder(cert)
	if err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	if holder.Identity().Role != ca.RoleManager {
		return nil, fmt.Errorf("manager: the certificate in %s is a %s's, not a manager's", dir, holder.Identity().Role)
	}
	return &security{root: creds.RootCA.WithoutKey(), holder: holder, identity: holder.Identity(), dir: dir}, nil
}

// bootstrapCredentials creates the cluster's root CA and this manager's
// certificate in dir (certificates.pending: a crash before the Raft state
// exists leaves a manager that bootstraps again). The root with its key is
// written first, so that credentials are never without their CA.
func (m *Manager) bootstrapCredentials(dir string) (ca.Credentials, error) {
	now := time.Now()
	root, err := ca.CreateRootCA(ca.NewID(), now)
	if err != nil {
		return ca.Credentials{}, fmt.Errorf("manager: creating the cluster's root CA: %w", err)
	}
	rootPEM, err := root.MarshalPEM()
	if err != nil {
		return ca.Credentials{}, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ca.Credentials{}, fmt.Errorf("manager: %w", err)
	}
	sealed, err := m.keys.Seal(rootPEM, []byte(bootstrapRootContext))
	if err != nil {
		return ca.Credentials{}, fmt.Errorf("manager: sealing the root CA: %w", err)
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, bootstrapRootFile), sealed, 0o600); err != nil {
		return ca.Credentials{}, fmt.Errorf("manager: saving the root CA: %w", err)
	}
	kp, err := m.newKeyPair(root, ca.NewID(), ca.RoleManager, now)
	if err != nil {
		return ca.Credentials{}, err
	}
	creds := ca.Credentials{RootCA: root, KeyPair: kp}
	if err := ca.SaveCredentials(dir, creds, m.keys); err != nil {
		return ca.Credentials{}, fmt.Errorf("manager: saving the certificates: %w", err)
	}
	m.log.Info("created the cluster's root CA", "cluster_id", root.ClusterID())
	return creds, nil
}

func (m *Manager) joinCredentials(ctx context.Context, dir string) (ca.Credentials, error) {
	if m.cfg.JoinToken == "" {
		return ca.Credentials{}, fmt.Errorf("manager: joining %s needs a join token (--token; ask a manager: shoal cluster join-token manager)", m.cfg.JoinAddr)
	}
	creds, err := ca.Join(ctx, m.cfg.JoinAddr, ca.RoleManager, m.cfg.JoinToken)
	if err != nil {
		return ca.Credentials{}, fmt.Errorf("manager: getting a certificate from %s: %w", m.cfg.JoinAddr, err)
	}
	if err := ca.SaveCredentials(dir, creds, m.keys); err != nil {
		return ca.Credentials{}, fmt.Errorf("manager: saving the certificates: %w", err)
	}
	return creds, nil
}

// newKeyPair signs a new certificate for nodeID, valid from a little
// before now.
func (m *Manager) newKeyPair(root *ca.RootCA, nodeID string, role ca.Role, now time.Time) (ca.KeyPair, error) {
	validity := m.cfg.CertificateValidity
	backdate := min(ca.DefaultBackdate, validity/10)
	kp, err := root.NewKeyPair(nodeID, role, now.Add(-backdate), now.Add(validity))
	if err != nil {
		return ca.KeyPair{}, fmt.Errorf("manager: signing a %s certificate: %w", role, err)
	}
	return kp, nil
}

// renewCertificate signs a new certificate for this manager with the root
// CA from the replicated store, saves it, and returns it for the holder.
func (m *Manager) renewCertificate(ctx context.Context) (*tls.Certificate, error) {
	root, err := (*authority)(m).RootCA(ctx)
	if err != nil {
		return nil, err
	}
	kp, err := m.newKeyPair(root, m.sec.identity.NodeID, ca.RoleManager, time.Now())
	if err != nil {
		return nil, err
	}
	m.credMu.Lock()
	err = ca.SaveKeyPair(m.sec.dir, kp, m.keys)
	m.credMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("manager: saving the renewed certificate: %w", err)
	}
	m.log.Info("renewed this manager's certificate")
	return kp.TLSCertificate()
}

// dialOption is how this manager dials its peers: mutual TLS with its
// certificate.
func (s *security) dialOption() grpc.DialOption {
	return grpc.WithTransportCredentials(credentials.NewTLS(ca.ClientTLSConfig(s.root, s.holder)))
}

// serverOptions secure the remote API: TLS 1.3 with client certificates,
// and a per-call authorisation by role.
func (m *Manager) serverOptions() ([]grpc.ServerOption, error) {
	tlsCfg, err := ca.ServerTLSConfig(m.sec.root, m.sec.holder)
	if err != nil {
		return nil, err
	}
	authz, err := ca.NewAuthorizer(ca.AuthorizerConfig{Policy: policy(), DenyList: (*denyList)(m), Revoked: (*revokedList)(m), Logger: m.log})
	if err != nil {
		return nil, err
	}
	return []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(tlsCfg)),
		grpc.ChainUnaryInterceptor(authz.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(authz.StreamServerInterceptor()),
	}, nil
}

// policy says who may call what on the remote API: Raft traffic is for
// managers; reading the objects and the cluster for every certificate;
// writing objects for managers, read-write and admin clients; membership,
// join tokens, certificates and backups for managers and admin clients (and the
// local administrator, whose calls are forwarded as this manager's); the
// keys of one manager's disk for its control socket only; health for
// anyone.
func policy() ca.Policy {
	p := ca.CAPolicy()
	managers := ca.AllowRoles(ca.RoleManager)
	readers := ca.AllowRoles(ca.RoleManager, ca.RoleReader, ca.RoleClient, ca.RoleAdmin)
	writers := ca.AllowRoles(ca.RoleManager, ca.RoleClient, ca.RoleAdmin)
	admins := ca.AllowRoles(ca.RoleManager, ca.RoleAdmin)
	add := func(desc grpc.ServiceDesc, access ca.Access) {
		for _, md := range desc.Methods {
			p["/"+desc.ServiceName+"/"+md.MethodName] = access
		}
		for _, sd := range desc.Streams {
			p["/"+desc.ServiceName+"/"+sd.StreamName] = access
		}
	}
	add(api.Raft_ServiceDesc, managers)
	add(api.RaftMembership_ServiceDesc, managers)
	// Every Control method is named here: a new one is refused to every
	// certificate until it is given a rule.
	for _, m := range []string{api.Control_GetObject_FullMethodName, api.Control_ListObjects_FullMethodName,
		api.Control_Watch_FullMethodName, api.Control_GetClusterInfo_FullMethodName, api.Control_ListMembers_FullMethodName,
		api.Control_GetClusterHealth_FullMethodName} {
		p[m] = readers
	}
	for _, m := range []string{api.Control_CreateObject_FullMethodName, api.Control_UpdateObject_FullMethodName,
		api.Control_DeleteObject_FullMethodName, api.Control_Transaction_FullMethodName} {
		p[m] = writers
	}
	for _, m := range []string{api.Control_RemoveMember_FullMethodName, api.Control_PromoteMember_FullMethodName,
		api.Control_DemoteMember_FullMethodName, api.Control_TransferLeadership_FullMethodName,
		api.Control_GetJoinToken_FullMethodName, api.Control_IssueClientCertificate_FullMethodName,
		api.Control_RevokeCertificate_FullMethodName,
		// A backup holds the root CA's key and the join token.
		api.Control_SaveBackup_FullMethodName} {
		p[m] = admins
	}
	// The unlock key and the data keys concern one manager's disk: only
	// its local administrator, on the control socket, may touch them
	// (GetUnlockKey and RotateDataKey have no rule).
	add(healthpb.Health_ServiceDesc, ca.AllowAnyone())
	add(reflectionv1.ServerReflection_ServiceDesc, readers)
	add(reflectionv1alpha.ServerReflection_ServiceDesc, readers)
	return p
}

// denyList refuses the certificates of removed managers.
type denyList Manager

func (d *denyList) IsRemoved(nodeID string) bool {
	return d.node != nil && d.node.Cluster().IsNodeRemoved(nodeID)
}

// clusterSpec is the spec of the cluster object. The root CA's key and the
// join token live only in the replicated store: the Control API shows the
// spec without them (see publicObject).
type clusterSpec struct {
	ClusterID    string `json:"cluster_id"`
	RootCA       string `json:"root_ca"`
	ManagerToken string `json:"manager_token,omitempty"`
	// RevokedCertificates are the client IDs (subject CNs) of the
	// certificates revoked, in the order of their revocation.
	RevokedCertificates []string `json:"revoked_certificates,omitempty"`
}

// clusterSpec returns the spec of the cluster object, or an error when the
// first leader has not created it yet.
func (m *Manager) clusterSpec() (clusterSpec, error) {
	var spec clusterSpec
	var err error
	m.store.View(func(tx store.ReadTx) {
		var o *api.Object
		if o, err = tx.GetByName(store.KindCluster, clusterObjectName); err == nil {
			spec, err = parseClusterSpec(o)
		}
	})
	if err != nil {
		return clusterSpec{}, status.Errorf(codes.Unavailable, "the cluster is not initialised yet: %v", err)
	}
	return spec, nil
}

func parseClusterSpec(o *api.Object) (clusterSpec, error) {
	var spec clusterSpec
	if err := json.Unmarshal(o.GetSpec(), &spec); err != nil {
		return clusterSpec{}, fmt.Errorf("the cluster object's spec: %w", err)
	}
	return spec, nil
}

// changeClusterSpec changes, in tx, the spec of the cluster object with
// change, which reports whether it changed anything (nothing is written
// otherwise).
func changeClusterSpec(tx store.Tx, change func(*clusterSpec) (bool, error)) error {
	o, err := tx.GetByName(store.KindCluster, clusterObjectName)
	if err != nil {
		return err
	}
	spec, err := parseClusterSpec(o)
	if err != nil {
		return err
	}
	changed, err := change(&spec)
	if err != nil || !changed {
		return err
	}
	return tx.Update(&api.Object{Kind: o.GetKind(), Id: o.GetId(), Name: o.GetName(), Labels: o.GetLabels(),
		Spec: mustJSON(spec), Version: o.GetVersion(), CreatedAt: o.GetCreatedAt()})
}

// publicObject returns o as the Control API shows it: without secrets.
func publicObject(o *api.Object) *api.Object {
	if o.GetKind() != store.KindCluster {
		return o
	}
	spec, err := parseClusterSpec(o)
	if err != nil {
		return o
	}
	if root, err := ca.ParseRootCA([]byte(spec.RootCA)); err == nil {
		spec.RootCA = string(root.CertificatePEM())
	}
	spec.ManagerToken = ""
	out := &api.Object{Kind: o.GetKind(), Id: o.GetId(), Name: o.GetName(), Labels: o.GetLabels(),
		Spec: mustJSON(spec), Version: o.GetVersion(), CreatedAt: o.GetCreatedAt(), UpdatedAt: o.GetUpdatedAt()}
	return out
}

// authority is the replicated state the CA service signs with.
type authority Manager

func (a *authority) RootCA(context.Context) (*ca.RootCA, error) {
	spec, err := (*Manager)(a).clusterSpec()
	if err != nil {
		return nil, err
	}
	return ca.ParseRootCA([]byte(spec.RootCA))
}

// JoinToken reads the token after a linearizable read, so that a rotated
// token stops working on every manager as soon as the rotation returns.
func (a *authority) JoinToken(ctx context.Context, role ca.Role) (string, error) {
	if role != ca.RoleManager {
		return "", nil // clients get certificates from an administrator, not with a token
	}
	if err := (*Manager)(a).linearizableRead(ctx); err != nil {
		return "", err
	}
	spec, err := (*Manager)(a).clusterSpec()
	if err != nil {
		return "", err
	}
	return spec.ManagerToken, nil
}

// readBootstrapRoot reads the root CA the first manager created, if this
// manager did.
func (m *Manager) readBootstrapRoot() (*ca.RootCA, error) {
	sealed, err := os.ReadFile(filepath.Join(m.sec.dir, bootstrapRootFile))
	if err != nil {
		return nil, err
	}
	b, err := m.keys.Open(sealed, []byte(bootstrapRootContext))
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", bootstrapRootFile, err)
	}
	return ca.ParseRootCA(b)
}

// resealSecrets seals this manager's private key, and the bootstrap root
// CA while it exists, again with the current data key, so that the keys
// that sealed them before can go.
func (m *Manager) resealSecrets() error {
	m.credMu.Lock()
	defer m.credMu.Unlock()
	creds, err := ca.LoadCredentials(m.sec.dir, m.keys)
	if err != nil {
		return fmt.Errorf("manager: reading the node key to seal it again: %w", err)
	}
	if err := ca.SaveKeyPair(m.sec.dir, creds.KeyPair, m.keys); err != nil {
		return fmt.Errorf("manager: sealing the node key again: %w", err)
	}
	root, err := m.readBootstrapRoot()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("manager: reading the bootstrap root CA to seal it again: %w", err)
	}
	rootPEM, err := root.MarshalPEM()
	if err != nil {
		return err
	}
	sealed, err := m.keys.Seal(rootPEM, []byte(bootstrapRootContext))
	if err != nil {
		return fmt.Errorf("manager: sealing the bootstrap root CA again: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(m.sec.dir, bootstrapRootFile), sealed, 0o600)
}

func (m *Manager) removeBootstrapRoot() {
	err := os.Remove(filepath.Join(m.sec.dir, bootstrapRootFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("removing the bootstrap root CA file", "err", err)
	}
}
