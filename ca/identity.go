package ca

import (
	"crypto/rand"
	"crypto/x509"
	"fmt"
)

// Role is what a certificate allows its node to do. It is written in the
// certificate's subject OU.
type Role string

const (
	// RoleManager is a manager: it takes part in Raft, serves the remote API
	// and may sign certificates.
	RoleManager Role = "manager"
	// RoleClient is a client of the remote API, such as the CLI, that
	// reads, writes and watches objects (read-write).
	RoleClient Role = "client"
	// RoleReader is a client that reads and watches objects only.
	RoleReader Role = "client-ro"
	// RoleAdmin is a client that may also change the membership, hand out
	// join tokens and certificates, and revoke certificates.
	RoleAdmin Role = "client-admin"
)

// ClientRoles are the roles of client certificates, from the least to the
// most allowed.
var ClientRoles = []Role{RoleReader, RoleClient, RoleAdmin}

// ManagerServerName is the DNS name in every manager certificate, and the
// only one. Clients and managers dial with tls.Config.ServerName set to it,
// so a manager's certificate does not depend on the addresses it is reached
// at, and a certificate without it (a client's) cannot serve.
const ManagerServerName = "shoal-manager"

// rootCACommonName is the subject CN of every root CA certificate; the
// cluster ID is its O.
const rootCACommonName = "shoal-root-ca"

// maxIDLength bounds node and cluster IDs. IDs travel in certificates and
// in gRPC metadata, so they are kept short and to a safe alphabet.
const maxIDLength = 64

// Valid reports whether r is a role this package issues.
func (r Role) Valid() bool {
	return r == RoleManager || r.IsClient()
}

// IsClient reports whether r is one of ClientRoles.
func (r Role) IsClient() bool {
	return r == RoleReader || r == RoleClient || r == RoleAdmin
}

// ValidateNodeID returns an error wrapping ErrInvalidIdentity unless id is
// a valid node ID: 1 to 64 letters, digits, '.', '_' and '-'.
func ValidateNodeID(id string) error { return validateID("node ID", id) }

// Identity is who a certificate names: subject CN, OU and O.
type Identity struct {
	NodeID    string
	Role      Role
	ClusterID string
}

// Validate returns an error wrapping ErrInvalidIdentity unless the node ID
// and the cluster ID are valid IDs and the role is one this package issues.
func (id Identity) Validate() error {
	if err := validateID("node ID", id.NodeID); err != nil {
		return err
	}
	if !id.Role.Valid() {
		return fmt.Errorf("%w: role %q", ErrInvalidIdentity, id.Role)
	}
	return validateID("cluster ID", id.ClusterID)
}

// validateID accepts 1 to maxIDLength letters, digits, '.', '_' and '-'.
func validateID(what, id string) error {
	if id == "" || len(id) > maxIDLength {
		return fmt.Errorf("%w: %s %q must have 1 to %d characters", ErrInvalidIdentity, what, id, maxIDLength)
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("%w: %s %q has a character other than letters, digits, '.', '_' and '-'", ErrInvalidIdentity, what, id)
		}
	}
	return nil
}

// NewID returns a random 128-bit ID as 25 lowercase base-36 characters. The
// CA names new nodes with it; it suits cluster IDs as well.
func NewID() string {
	var b [16]byte
	// crypto/rand.Read never fails (Go 1.24 and later).
	_, _ = rand.Read(b[:])
	return base36(b[:], base36Len(len(b)))
}

// IdentityFromCertificate reads the identity a node certificate names. It
// checks the form of the subject (exactly one OU naming a valid role and one
// O), not the signature: pass only certificates verified against the root
// CA (those of tls.ConnectionState.VerifiedChains), or use
// RootCA.VerifyNodeCertificate.
func IdentityFromCertificate(cert *x509.Certificate) (Identity, error) {
	if cert == nil {
		return Identity{}, fmt.Errorf("%w: no certificate", ErrInvalidCertificate)
	}
	s := cert.Subject
	if len(s.OrganizationalUnit) != 1 || len(s.Organization) != 1 {
		return Identity{}, fmt.Errorf("%w: subject %q needs exactly one OU and one O", ErrInvalidCertificate, s.String())
	}
	id := Identity{NodeID: s.CommonName, Role: Role(s.OrganizationalUnit[0]), ClusterID: s.Organization[0]}
	if err := id.Validate(); err != nil {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidCertificate, err)
	}
	return id, nil
}
