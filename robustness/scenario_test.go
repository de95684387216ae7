package robustness

import (
	"context"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/client"
)

// A leader paused while the others elect a new one and create an object
// still believes it leads for a moment after it resumes. Cut off from
// the others, it must not tell a client that the object does not exist:
// neither a read nor a write that names it may answer "not found".
func TestDeposedLeaderGivesNoStaleNotFound(t *testing.T) {
	dir, err := os.MkdirTemp("", "shrb-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	c, err := newCluster(t, dir, 3, t.Logf, 1, nil)
	if c != nil {
		defer c.shutdown()
	}
	if err != nil {
		t.Fatal(err)
	}
	old, err := c.leader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dial := func(m *manager) *client.Client {
		cl, err := client.New(ctx, client.Config{Addrs: []string{m.listen}, TLS: c.tls})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	toOld := dial(old)
	defer toOld.Close()

	if err := old.pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = old.resume()
		}
	}()
	newLeader, err := c.leader(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	toNew := dial(newLeader)
	defer toNew.Close()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	created, err := toNew.Create(wctx, &api.Object{Kind: kind, Name: "x", Spec: encodeValue("new")})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s paused; %s leads and created x at version %d", old.name, newLeader.name, created.GetVersion())

	c.isolate(old)
	if err := old.resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	calls := []struct {
		name string
		call func(context.Context) error
	}{
		{"update", func(ctx context.Context) error {
			_, err := toOld.Update(ctx, kind, "x", client.Update{Spec: encodeValue("stale")})
			return err
		}},
		{"delete", func(ctx context.Context) error {
			_, err := toOld.Delete(ctx, kind, "x", 0)
			return err
		}},
		{"get", func(ctx context.Context) error {
			_, err := toOld.Get(ctx, kind, "x")
			return err
		}},
	}
	for _, tc := range calls {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := tc.call(cctx)
		cancel()
		t.Logf("%s of x through the deposed %s: %v", tc.name, old.name, err)
		if status.Code(err) == codes.NotFound {
			t.Errorf("%s of x through the deposed leader %s answered NOT_FOUND: %v", tc.name, old.name, err)
		}
	}
	c.net.HealAll()
	if err := c.waitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}
