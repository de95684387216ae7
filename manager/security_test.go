package manager

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/ca"
)

func call(t *testing.T, addr string, creds credentials.TransportCredentials, fn func(*grpc.ClientConn) error) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return fn(conn)
}

func getInfo(conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := api.NewControlClient(conn).GetClusterInfo(ctx, &api.GetClusterInfoRequest{})
	return err
}

// TestRemoteAPIRefusesWhoDoesNotBelong checks every way in that must be
// closed, with real TLS handshakes on loopback.
func TestRemoteAPIRefusesWhoDoesNotBelong(t *testing.T) {
	ms := startCluster(t, 1)
	tm := ms[0]
	other := startCluster(t, 1)[0] // another cluster, another CA

	tests := []struct {
		name  string
		creds credentials.TransportCredentials
		fn    func(*grpc.ClientConn) error
		want  codes.Code
	}{
		{"plaintext client", insecure.NewCredentials(), getInfo, codes.Unavailable},
		{"TLS without a certificate", credentials.NewTLS(ca.ClientTLSConfig(tm.m.sec.root, nil)), getInfo, codes.Unauthenticated},
		{"certificate of another cluster", other.clientCredentials(ca.RoleClient), getInfo, codes.Unavailable},
		{"client certificate on the Raft service", tm.clientCredentials(ca.RoleClient), func(c *grpc.ClientConn) error {
			_, err := api.NewRaftClient(c).ProcessRaftMessage(context.Background(), &api.ProcessRaftMessageRequest{Messages: [][]byte{{1}}})
			return err
		}, codes.PermissionDenied},
		{"client certificate asking for the join token", tm.clientCredentials(ca.RoleClient), func(c *grpc.ClientConn) error {
			_, err := api.NewControlClient(c).GetJoinToken(context.Background(), &api.GetJoinTokenRequest{})
			return err
		}, codes.PermissionDenied},
		{"client certificate", tm.clientCredentials(ca.RoleClient), getInfo, codes.OK},
		{"read-write certificate removing a manager", tm.clientCredentials(ca.RoleClient), func(c *grpc.ClientConn) error {
			_, err := api.NewControlClient(c).RemoveMember(context.Background(), &api.RemoveMemberRequest{Id: tm.m.NodeID()})
			return err
		}, codes.PermissionDenied},
		{"read-write certificate issuing a certificate", tm.clientCredentials(ca.RoleClient), func(c *grpc.ClientConn) error {
			_, err := api.NewControlClient(c).IssueClientCertificate(context.Background(), &api.IssueClientCertificateRequest{Csr: []byte("x")})
			return err
		}, codes.PermissionDenied},
		{"read-only certificate reading", tm.clientCredentials(ca.RoleReader), getInfo, codes.OK},
		{"read-only certificate writing", tm.clientCredentials(ca.RoleReader), func(c *grpc.ClientConn) error {
			_, err := api.NewControlClient(c).CreateObject(context.Background(), &api.CreateObjectRequest{Object: &api.Object{Kind: "item", Name: "a"}})
			return err
		}, codes.PermissionDenied},
		{"admin certificate asking for the join token", tm.clientCredentials(ca.RoleAdmin), func(c *grpc.ClientConn) error {
			_, err := api.NewControlClient(c).GetJoinToken(context.Background(), &api.GetJoinTokenRequest{})
			return err
		}, codes.OK},
		{"admin certificate asking for the unlock key", tm.clientCredentials(ca.RoleAdmin), func(c *grpc.ClientConn) error {
			_, err := api.NewControlClient(c).GetUnlockKey(context.Background(), &api.GetUnlockKeyRequest{})
			return err
		}, codes.PermissionDenied},
		{"manager certificate", tm.clientCredentials(ca.RoleManager), getInfo, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := call(t, tm.m.Addr(), tt.creds, tt.fn)
			if got := status.Code(err); got != tt.want {
				t.Fatalf("got %v (%v), want %v", got, err, tt.want)
			}
		})
	}
}

func TestJoinNeedsTheCurrentToken(t *testing.T) {
	ms := startCluster(t, 1)
	tm := ms[0]
	good, err := tm.m.JoinToken()
	if err != nil {
		t.Fatal(err)
	}
	otherToken, err := startCluster(t, 1)[0].m.JoinToken()
	if err != nil {
		t.Fatal(err)
	}
	// A token with this cluster's digest and a wrong secret.
	wrongSecret := good[:strings.LastIndex(good, "-")+1] + strings.Repeat("0", len(good)-strings.LastIndex(good, "-")-1)

	rotated, err := tm.dialSocket().GetJoinToken(context.Background(), &api.GetJoinTokenRequest{Rotate: true})
	if err != nil {
		t.Fatal(err)
	}
	if rotated.GetToken() == good {
		t.Fatal("rotation kept the token")
	}

	tests := []struct {
		name, token, wantErr string
	}{
		{"no token", "", "needs a join token"},
		{"wrong secret", wrongSecret, "token"},
		{"rotated token", good, "token"},
		{"token of another cluster (digest mismatch)", otherToken, "root CA"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, t.TempDir(), tm.m.Addr())
			cfg.JoinToken = tt.token
			cfg.StartTimeout = 5 * time.Second
			m, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = m.Run(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run = %v, want an error mentioning %q", err, tt.wantErr)
			}
		})
	}

	cfg := testConfig(t, t.TempDir(), tm.m.Addr())
	cfg.JoinToken = rotated.GetToken()
	startManager(t, cfg)
}

func TestRemovedManagerIsRefusedWithAValidCertificate(t *testing.T) {
	ms := startCluster(t, 3)
	leader := leaderOf(t, ms)
	var victim *testManager
	for _, tm := range ms {
		if tm != leader {
			victim = tm
		}
	}
	// Keep the victim's certificate, as a removed manager would.
	cert := victim.m.sec.holder.Certificate()
	if _, err := leader.dialAs(ca.RoleAdmin).RemoveMember(context.Background(), &api.RemoveMemberRequest{Id: victim.m.NodeID()}); err != nil {
		t.Fatal(err)
	}
	holder, err := ca.NewCertificateHolder(cert)
	if err != nil {
		t.Fatal(err)
	}
	creds := credentials.NewTLS(ca.ClientTLSConfig(leader.m.sec.root, holder))
	waitFor(t, "the removal to be refused", func() bool {
		err := call(t, leader.m.Addr(), creds, getInfo)
		return status.Code(err) == codes.PermissionDenied && ca.IsNodeRemoved(err)
	})
}

func TestCertificateIsRenewedWhileTrafficFlows(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), "")
	cfg.CertificateValidity = 4 * time.Second
	first := startManager(t, cfg)
	joining := joinConfig(t, first)
	joining.CertificateValidity = 4 * time.Second
	second := startManager(t, joining)
	ms := []*testManager{first, second}

	serials := map[*testManager]string{}
	for _, tm := range ms {
		serials[tm] = tm.m.sec.holder.Leaf().SerialNumber.String()
	}
	c := second.dial()
	ctx := context.Background()
	i := 0
	waitFor(t, "both certificates to be renewed", func() bool {
		i++
		if _, err := c.CreateObject(ctx, &api.CreateObjectRequest{Object: &api.Object{Kind: "tick", Name: "t" + time.Now().Format("150405.000000")}}); err != nil {
			t.Fatalf("write %d during renewal: %v", i, err)
		}
		for _, tm := range ms {
			if tm.m.sec.holder.Leaf().SerialNumber.String() == serials[tm] {
				return false
			}
		}
		return true
	})
}
