package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-project/shoal/client"
	"github.com/shoal-project/shoal/manager"
)

// startTestCluster starts n managers in this process on loopback, the
// first bootstrapping and the others joining it, and stops them when the
// test ends.
func startTestCluster(t *testing.T, n int) []*devManager {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbench-") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var ms []*devManager
	t.Cleanup(func() {
		stopDevManagers(ctx, ms)
		if t.Failed() {
			for _, dm := range ms {
				b, _ := os.ReadFile(dm.log.Name())
				t.Logf("--- log of %s:\n%s", dm.dir, b)
			}
		}
		os.RemoveAll(dir)
	})
	for i := range n {
		cfg := manager.DefaultConfig()
		cfg.StateDir = filepath.Join(dir, fmt.Sprintf("m%d", i+1))
		cfg.ListenAddr = "127.0.0.1:0"
		cfg.Raft.TickInterval = 50 * time.Millisecond
		if i > 0 {
			cfg.JoinAddr = ms[0].m.Addr()
			if cfg.JoinToken, err = ms[0].m.JoinToken(); err != nil {
				t.Fatal(err)
			}
		}
		dm, err := startDevManager(ctx, cfg, true)
		if dm != nil {
			ms = append(ms, dm)
		}
		if err != nil {
			t.Fatalf("starting manager %d: %v", i+1, err)
		}
	}
	return ms
}

// benchJSON is the part of bench's JSON the tests read.
type benchJSON struct {
	Op           string           `json:"op"`
	Clients      int              `json:"clients"`
	Conns        int              `json:"conns"`
	KeySpace     int              `json:"key_space"`
	Consistency  string           `json:"consistency"`
	Ops          int64            `json:"ops"`
	Errors       int64            `json:"errors"`
	ErrorsByCode map[string]int64 `json:"errors_by_code"`
	Histogram    []struct {
		Count int64 `json:"count"`
	} `json:"histogram"`
	Fill *struct {
		Ops     int64 `json:"ops"`
		Existed int64 `json:"existed"`
		Errors  int64 `json:"errors"`
	} `json:"fill"`
	Watch *struct {
		Watchers int   `json:"watchers"`
		Events   int64 `json:"events"`
		Expected int64 `json:"expected"`
		Errors   int64 `json:"errors"`
	} `json:"watch"`
}

func (b benchJSON) histogramCount() int64 {
	var n int64
	for _, bk := range b.Histogram {
		n += bk.Count
	}
	return n
}

// TestBenchAgainstACluster runs every bench command against real
// managers and checks the counts, never the timings.
func TestBenchAgainstACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a cluster")
	}
	ms := startTestCluster(t, 3)
	socket := ms[0].m.SocketPath()

	// A client certificate, for the run over TCP.
	certDir := t.TempDir()
	if code, _, stderr := runCLI(t, nil, "", "cluster", "client-cert", "--out", certDir, "--socket", socket); code != 0 {
		t.Fatalf("client-cert: %d %s", code, stderr)
	}
	tlsVars := map[string]string{
		"SHOAL_TLS_CERT": filepath.Join(certDir, clientCertFile),
		"SHOAL_TLS_KEY":  filepath.Join(certDir, clientKeyFile),
		"SHOAL_TLS_CA":   filepath.Join(certDir, clientCAFile),
	}
	hosts := ms[0].m.Addr() + "," + ms[1].m.Addr() + "," + ms[2].m.Addr()

	runBenchCLI := func(vars map[string]string, args ...string) benchJSON {
		t.Helper()
		code, stdout, stderr := runCLI(t, vars, "", append(append([]string{"bench"}, args...), "-o", "json")...)
		if code != 0 {
			t.Fatalf("shoal bench %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		var b benchJSON
		if err := json.Unmarshal([]byte(stdout), &b); err != nil {
			t.Fatalf("shoal bench %s: %v\n%s", strings.Join(args, " "), err, stdout)
		}
		if b.Errors != 0 || len(b.ErrorsByCode) != 0 {
			t.Errorf("shoal bench %s: errors %d %v", strings.Join(args, " "), b.Errors, b.ErrorsByCode)
		}
		if b.histogramCount() != b.Ops {
			t.Errorf("shoal bench %s: the histogram holds %d latencies for %d ops", strings.Join(args, " "), b.histogramCount(), b.Ops)
		}
		return b
	}
	count := func(kind string) int {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := client.New(ctx, client.Config{SocketPath: socket})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		objs, _, err := c.List(ctx, client.Selector{Kind: kind})
		if err != nil {
			t.Fatal(err)
		}
		return len(objs)
	}

	// New names: one object per put.
	put := runBenchCLI(nil, "put", "--socket", socket, "--clients", "8", "--conns", "2", "--total", "120", "--kind", "fresh")
	if put.Op != "put" || put.Ops != 120 || put.Clients != 8 || put.Conns != 2 || put.Fill != nil {
		t.Errorf("put: %+v", put)
	}
	if n := count("fresh"); n != 120 {
		t.Errorf("after 120 puts of new names, %d objects", n)
	}

	// A key space over TCP, connections spread over the managers: the
	// names are created, then updated. (The key space is large enough for
	// concurrent updates of one object to be rare: the managers retry the
	// update that loses such a race only so often.)
	upd := runBenchCLI(tlsVars, "put", "--host", hosts, "--clients", "3", "--conns", "3", "--total", "90", "--key-space", "200", "--kind", "space")
	if upd.Ops != 90 || upd.Fill == nil || upd.Fill.Ops != 200 || upd.Fill.Existed != 0 {
		t.Errorf("put in a key space: %+v, fill %+v", upd, upd.Fill)
	}
	if n := count("space"); n != 200 {
		t.Errorf("after puts in a key space of 200, %d objects", n)
	}

	// Gets of the same names: they exist already.
	for _, consistency := range []string{"linearizable", "serializable"} {
		get := runBenchCLI(nil, "get", "--socket", ms[2].m.SocketPath(), "--clients", "4", "--conns", "2", "--total", "80",
			"--key-space", "200", "--kind", "space", "--consistency", consistency)
		if get.Ops != 80 || get.Consistency != consistency || get.Fill == nil || get.Fill.Ops != 0 || get.Fill.Existed != 200 {
			t.Errorf("get %s: %+v, fill %+v", consistency, get, get.Fill)
		}
	}
	skip := runBenchCLI(nil, "get", "--socket", socket, "--total", "10", "--key-space", "200", "--kind", "space", "--skip-fill")
	if skip.Ops != 10 || skip.Fill != nil {
		t.Errorf("get --skip-fill: %+v", skip)
	}

	// Transactions of new names, then of names in a key space.
	txn := runBenchCLI(nil, "txn", "--socket", socket, "--clients", "3", "--total", "15", "--txn-ops", "4", "--kind", "tx")
	if txn.Ops != 15 {
		t.Errorf("txn: %+v", txn)
	}
	if n := count("tx"); n != 60 {
		t.Errorf("after 15 transactions of 4 new names, %d objects", n)
	}
	txn = runBenchCLI(nil, "txn", "--socket", socket, "--total", "15", "--txn-ops", "4", "--key-space", "200", "--kind", "space", "--skip-fill")
	if txn.Ops != 15 || count("space") != 200 {
		t.Errorf("txn in a key space: %+v", txn)
	}

	// Watches: every watcher receives every put.
	w := runBenchCLI(nil, "watch", "--socket", socket, "--clients", "4", "--conns", "2", "--total", "50", "--watchers", "3", "--kind", "w")
	if w.Ops != 50 || w.Watch == nil || w.Watch.Watchers != 3 || w.Watch.Expected != 150 || w.Watch.Events != 150 || w.Watch.Errors != 0 {
		t.Errorf("watch: %+v, watch %+v", w, w.Watch)
	}

	// The report for people.
	code, stdout, stderr := runCLI(t, nil, "", "bench", "put", "--socket", socket, "--total", "5", "--kind", "text")
	if code != 0 {
		t.Fatalf("bench put: exit %d: %s", code, stderr)
	}
	for _, want := range []string{"put: 5 ops in", "1 client over 1 connection, 256-byte values, a new name each time", "p99.9", "up to"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the report does not say %q:\n%s", want, stdout)
		}
	}
}

func TestBenchUsage(t *testing.T) {
	host := unreachable(t)
	tests := []struct {
		args []string
		want int
		msg  string
	}{
		{[]string{"bench", "put", "--total", "5", "--duration", "1s", "--host", host}, exitUsage, "exclude each other"},
		{[]string{"bench", "put", "--clients", "2", "--conns", "3", "--host", host}, exitUsage, "at most one connection per client"},
		{[]string{"bench", "get", "--key-space", "0", "--host", host}, exitUsage, "key space of at least 1"},
		{[]string{"bench", "get", "--consistency", "eventual", "--host", host}, exitUsage, "--consistency"},
		{[]string{"bench", "put", "--val-size", "1", "--host", host}, exitUsage, "at least 2"},
		{[]string{"bench", "put", "-o", "xml", "--host", host}, exitUsage, `-o "xml"`},
		{[]string{"bench", "put", "--host", host, "--total", "1"}, exitUnavailable, "cannot reach a manager"},
	}
	for _, tt := range tests {
		code, _, stderr := runCLI(t, nil, "", tt.args...)
		if code != tt.want || !strings.Contains(stderr, tt.msg) {
			t.Errorf("shoal %s: exit %d, %q; want %d and %q", strings.Join(tt.args, " "), code, stderr, tt.want, tt.msg)
		}
	}
}
