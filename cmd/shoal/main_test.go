package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-project/shoal/ca"
)

// testConfigHome is an XDG_CONFIG_HOME holding a client certificate of a
// throwaway cluster, so that commands given --host find one.
var testConfigHome string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "shoal-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := writeTestClientCert(filepath.Join(dir, "shoal")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testConfigHome = dir
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines leaked:", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

func writeTestClientCert(dir string) error {
	now := time.Now()
	root, err := ca.CreateRootCA(ca.NewID(), now)
	if err != nil {
		return err
	}
	kp, err := root.NewKeyPair(ca.NewID(), ca.RoleClient, now.Add(-time.Minute), now.Add(time.Hour))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, data := range map[string][]byte{clientCertFile: kp.CertificatePEM, clientKeyFile: kp.KeyPEM, clientCAFile: root.CertificatePEM()} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
