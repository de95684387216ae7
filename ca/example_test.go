package ca_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/shoal-project/shoal/ca"
)

// The first manager creates the root CA and a join token; a joining node
// checks the root it fetched against the token before trusting it.
func Example() {
	now := time.Now()
	root, err := ca.CreateRootCA("cluster-1", now)
	if err != nil {
		panic(err)
	}
	token := ca.NewJoinToken(root).String()

	// On the joining node, with the root fetched from some manager:
	parsed, err := ca.ParseJoinToken(token)
	if err != nil {
		panic(err)
	}
	fetched, err := ca.ParseRootCA(root.CertificatePEM())
	if err != nil {
		panic(err)
	}
	fmt.Println("root matches token:", parsed.CheckRootCA(fetched) == nil)

	impostor, _ := ca.CreateRootCA("cluster-1", now)
	fmt.Println("impostor refused:", errors.Is(parsed.CheckRootCA(impostor), ca.ErrRootCAMismatch))

	// A manager signs; any node verifies with the certificate alone.
	kp, err := root.NewKeyPair("node-1", ca.RoleManager, now.Add(-time.Minute), now.Add(ca.DefaultCertificateValidity))
	if err != nil {
		panic(err)
	}
	cert, err := kp.TLSCertificate()
	if err != nil {
		panic(err)
	}
	id, err := fetched.VerifyNodeCertificate(cert.Leaf, now)
	fmt.Printf("%s is a %s of %s (%v)\n", id.NodeID, id.Role, id.ClusterID, err)
	// Output:
	// root matches token: true
	// impostor refused: true
	// node-1 is a manager of cluster-1 (<nil>)
}
