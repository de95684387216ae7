package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/ca"
)

func TestClientCertDoesNotOverwriteAnotherClustersCredentials(t *testing.T) {
	newRoot := func() []byte {
		root, err := ca.CreateRootCA(ca.NewID(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return root.CertificatePEM()
	}
	ours, theirs := newRoot(), newRoot()
	tests := []struct {
		name     string
		existing []byte // ca.crt already in the directory; nil: none
		wantCode codes.Code
	}{
		{"empty directory", nil, codes.OK},
		{"the same cluster", ours, codes.OK},
		{"another cluster", theirs, codes.FailedPrecondition},
		{"an unreadable ca.crt", []byte("not a certificate"), codes.FailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.existing != nil {
				if err := os.WriteFile(filepath.Join(dir, clientCAFile), tt.existing, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			err := checkSameCluster(dir, ours)
			if status.Code(err) != tt.wantCode {
				t.Fatalf("checkSameCluster: %v, want code %v", err, tt.wantCode)
			}
			if err != nil && (!strings.Contains(err.Error(), "--force") || exitCode(err) != exitConflict) {
				t.Errorf("the refusal %q (exit %d) should name --force and exit %d", err, exitCode(err), exitConflict)
			}
		})
	}
}

func TestTLSCertAloneTakesTheFilesBesideIt(t *testing.T) {
	elsewhere := filepath.Join(t.TempDir(), "creds")
	if err := writeTestClientCert(elsewhere); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		flags   connFlags
		vars    map[string]string
		wantErr string // empty: the configuration loads
	}{
		{"--tls-cert alone", connFlags{tlsCert: filepath.Join(elsewhere, clientCertFile)}, nil, ""},
		{"SHOAL_TLS_CERT alone", connFlags{}, map[string]string{"SHOAL_TLS_CERT": filepath.Join(elsewhere, clientCertFile)}, ""},
		{"nothing: the client directory", connFlags{}, nil, ""},
		{"--tls-cert in a directory without a key", connFlags{tlsCert: filepath.Join(t.TempDir(), clientCertFile)}, nil, "is missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := testEnv(tt.vars, "")
			a := &app{env: e, conn: tt.flags}
			cfg, err := a.tlsConfig()
			if tt.wantErr == "" {
				if err != nil || cfg == nil {
					t.Fatalf("tlsConfig: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("tlsConfig: %v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}
