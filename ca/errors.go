package ca

import "errors"

// Errors returned by this package. Match them with errors.Is: most are
// wrapped with the detail that caused them (the field, the value, the
// parser's own error).
var (
	// ErrInvalidRootCA means bytes or a certificate cannot serve as the root
	// CA: not a self-signed ECDSA P-256 CA certificate, or a key that does
	// not belong to it.
	ErrInvalidRootCA = errors.New("ca: invalid root CA")
	// ErrNoSigningKey means a RootCA was loaded without its private key (as
	// every non-manager node holds it), so it can verify but not issue.
	ErrNoSigningKey = errors.New("ca: root CA has no signing key")
	// ErrInvalidCertificate means a certificate cannot be parsed, is not a
	// node certificate of this cluster (subject fields, key type), or does
	// not chain to the root CA.
	ErrInvalidCertificate = errors.New("ca: invalid certificate")
	// ErrInvalidCSR means a certificate request cannot be parsed, is not for
	// an ECDSA P-256 key, or is not signed by its own key.
	ErrInvalidCSR = errors.New("ca: invalid certificate request")
	// ErrInvalidKey means a private key cannot be parsed, is not ECDSA
	// P-256, or does not match its certificate.
	ErrInvalidKey = errors.New("ca: invalid private key")
	// ErrInvalidIdentity means a node ID, role or cluster ID is empty or
	// not one the package issues.
	ErrInvalidIdentity = errors.New("ca: invalid node identity")
	// ErrMalformedToken means a string is not a join token of the form
	// SHLTKN-1-<digest>-<secret>; the wrapping error says which part is
	// wrong.
	ErrMalformedToken = errors.New("ca: malformed join token")
	// ErrRootCAMismatch means a join token names another root CA than the
	// one at hand: on a joining node, the root CA it fetched is not the one
	// the token vouches for (and nothing secret was sent); on a manager, the
	// token belongs to another cluster or to a replaced root CA.
	ErrRootCAMismatch = errors.New("ca: root CA does not match the join token")
	// ErrInvalidToken means a well-formed join token for this root CA
	// carries a secret that is not the current one for the requested role:
	// mistyped, or rotated.
	ErrInvalidToken = errors.New("ca: invalid join token")
	// ErrJoinDisabled means the cluster has no join token for the requested
	// role, so no node may join with it.
	ErrJoinDisabled = errors.New("ca: joining with this role is disabled")
	// ErrNoCertificate means the peer of a call presented no verified
	// certificate.
	ErrNoCertificate = errors.New("ca: no client certificate")
	// ErrNodeRemoved means the node was removed from the cluster; its
	// certificate, still valid, is no longer honoured.
	ErrNodeRemoved = errors.New("ca: node removed")
	// ErrInvalidConfig means a configuration field is missing or out of
	// range; the wrapping error names the field and its value.
	ErrInvalidConfig = errors.New("ca: invalid config")
)
