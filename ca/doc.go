// Package ca is the cluster's certificate authority and its use on the
// wire: the root CA, node certificates, join tokens, TLS configurations,
// per-call authorisation, the CA gRPC service of package api, certificate
// renewal, and the node's credential files in STATE_DIR/certificates.
//
// It must not import the raft or store packages. What it needs from the
// replicated state comes through interfaces it declares and the manager
// implements: Authority (the root CA with its key, the join tokens) and
// DenyList (removed nodes).
//
// # Identities
//
// A root CA (ECDSA P-256, self-signed, 20 years) is created once, when the
// first manager bootstraps; its subject O is the cluster ID. Its key travels
// to every manager through the replicated store (RootCA.MarshalPEM,
// ParseRootCA), so every manager can issue certificates. A node certificate
// (ECDSA P-256, 90 days by default) names the node ID in its subject CN,
// the role in OU ("manager", or one of ClientRoles: "client-ro",
// "client" for read-write, "client-admin") and the cluster ID in O.
// Manager certificates also carry the DNS name ManagerServerName, which every
// client dials, and may serve; client certificates may only dial. Keys are
// generated on the node; the CA signs CSRs and never sees a node's key.
//
// # Joining
//
// A node joins with a token (see JoinToken for the format) that names the
// digest of the root CA certificate and carries a secret. Join fetches the
// root CA over TLS it cannot verify yet, checks it against the token's
// digest, and only then sends the token and a CSR, over TLS verified
// against that root. The CA draws the new node's ID. Each role has its own
// token; the cluster may disable joining as a client by having no client
// token, and then client certificates come only from RootCA.NewKeyPair on a
// manager (the administrator's local path).
//
// # Authorisation
//
// The remote listener uses ServerTLSConfig: TLS 1.3, client certificates
// optional but verified against the root when given. An Authorizer then
// decides every call from the caller's certificate and a Policy of which
// roles may call which method; public methods (the CA's bootstrap calls)
// need no certificate. A manager that forwards a call passes the original
// caller's identity in metadata (ForwardingContext); only a manager may do
// so. A DenyList refuses removed nodes whose certificates are still valid,
// and a RevocationList revoked certificates.
//
// # Renewal
//
// A CertificateHolder serves the node's certificate to every TLS handshake;
// a Renewer replaces it at a random point between half and four fifths of
// its lifetime, so new connections use the new certificate without a
// restart.
//
// # Usage
//
// The first manager:
//
//	now := time.Now()
//	root, err := ca.CreateRootCA(ca.NewID(), now)
//	// Keep root.MarshalPEM() and one ca.NewJoinToken(root) per role in the
//	// replicated cluster object.
//	kp, err := root.NewKeyPair(ca.NewID(), ca.RoleManager,
//		now.Add(-ca.DefaultBackdate), now.Add(ca.DefaultCertificateValidity))
//	err = ca.SaveCredentials(ca.CertificatesPath(stateDir), ca.Credentials{RootCA: root, KeyPair: kp}, sealer)
//
// Every manager:
//
//	cert, err := kp.TLSCertificate()
//	holder, err := ca.NewCertificateHolder(cert)
//	tlsCfg, err := ca.ServerTLSConfig(root, holder)
//	authz, err := ca.NewAuthorizer(ca.AuthorizerConfig{Policy: policy, DenyList: removed, Logger: logger})
//	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(tlsCfg)),
//		grpc.ChainUnaryInterceptor(authz.UnaryServerInterceptor()),
//		grpc.ChainStreamInterceptor(authz.StreamServerInterceptor()))
//	caSrv, err := ca.NewServer(ca.ServerConfig{Authority: authority, Logger: logger})
//	api.RegisterCAServer(srv, caSrv)
//
// A joining node:
//
//	creds, err := ca.Join(ctx, "10.0.0.1:2377", ca.RoleManager, token)
//	err = ca.SaveCredentials(ca.CertificatesPath(stateDir), creds, sealer)
//	cert, err := creds.KeyPair.TLSCertificate()
//	holder, err := ca.NewCertificateHolder(cert)
//	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(
//		credentials.NewTLS(ca.ClientTLSConfig(creds.RootCA, holder))))
package ca
