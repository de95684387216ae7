package proxy_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-project/shoal/robustness/proxy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer answers every line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan net.Conn, 16)
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() { _, _ = io.Copy(c, c) }()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// dial opens a tunnel to host through the egress proxy at proxyURL and
// returns the connection once the proxy has answered, or the error.
func dial(t *testing.T, proxyURL, host string) (net.Conn, *bufio.Reader, error) {
	t.Helper()
	u, err := url.Parse(proxyURL)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "CONNECT "+host+":2377 HTTP/1.1\r\nHost: "+host+":2377\r\n\r\n"); err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, &net.OpError{Op: "connect", Err: io.ErrUnexpectedEOF}
	}
	return c, br, nil
}

// roundTrip sends a line and waits up to timeout for it to come back.
func roundTrip(c net.Conn, br *bufio.Reader, line string, timeout time.Duration) (string, error) {
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	defer c.SetReadDeadline(time.Time{})
	got, err := br.ReadString('\n')
	return strings.TrimSuffix(got, "\n"), err
}

func newNetwork(t *testing.T) (*proxy.Network, string) {
	t.Helper()
	n := proxy.New(t.Logf)
	t.Cleanup(n.Close)
	n.AddTarget("echo.invalid", echoServer(t))
	u, err := n.Egress("a")
	if err != nil {
		t.Fatal(err)
	}
	return n, u
}

func TestRelaysBytes(t *testing.T) {
	_, u := newNetwork(t)
	c, br, err := dial(t, u, "echo.invalid")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := roundTrip(c, br, "hello", time.Second); err != nil || got != "hello" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
}

func TestUnknownHostIsRefused(t *testing.T) {
	n, u := newNetwork(t)
	if _, _, err := dial(t, u, "nobody.invalid"); err == nil {
		t.Fatal("a tunnel to an unknown host was opened")
	}
	if s := n.Stats(); s.Unknown != 1 {
		t.Fatalf("stats %+v, want one unknown", s)
	}
}

// A blackhole holds the bytes of an open connection and delivers them when
// it lifts; it affects only its own ordered pair.
func TestBlackholeHoldsBytesUntilHealed(t *testing.T) {
	n, u := newNetwork(t)
	c, br, err := dial(t, u, "echo.invalid")
	if err != nil {
		t.Fatal(err)
	}
	n.SetLink("b", "echo.invalid", proxy.Fault{Blackhole: true}) // another source
	if got, err := roundTrip(c, br, "one", time.Second); err != nil || got != "one" {
		t.Fatalf("b's blackhole stopped a's link: %q, %v", got, err)
	}
	n.SetLink("a", "echo.invalid", proxy.Fault{Blackhole: true})
	if got, err := roundTrip(c, br, "two", 300*time.Millisecond); err == nil {
		t.Fatalf("a line got through a blackhole: %q", got)
	}
	n.HealAll()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	got, err := br.ReadString('\n')
	if err != nil || got != "two\n" {
		t.Fatalf("after healing: %q, %v", got, err)
	}
	if s := n.Stats(); s.HeldBytes == 0 {
		t.Fatalf("stats %+v: no bytes held", s)
	}
}

// A new connection on a blackholed link gets no answer until it heals.
func TestBlackholeHoldsNewConnections(t *testing.T) {
	n, u := newNetwork(t)
	n.SetLink("a", "echo.invalid", proxy.Fault{Blackhole: true})
	type result struct {
		c   net.Conn
		br  *bufio.Reader
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, br, err := dial(t, u, "echo.invalid")
		done <- result{c, br, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("connected through a blackhole: %v", r.err)
	case <-time.After(300 * time.Millisecond):
	}
	n.SetLink("a", "echo.invalid", proxy.Fault{})
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got, err := roundTrip(r.c, r.br, "late", time.Second); err != nil || got != "late" {
		t.Fatalf("round trip: %q, %v", got, err)
	}
}

func TestDropCutsAndRefusesConnections(t *testing.T) {
	n, u := newNetwork(t)
	c, br, err := dial(t, u, "echo.invalid")
	if err != nil {
		t.Fatal(err)
	}
	n.SetLink("a", "echo.invalid", proxy.Fault{Drop: 1})
	if _, err := roundTrip(c, br, "x", time.Second); err == nil {
		t.Fatal("a connection survived a Drop of 1")
	}
	if _, _, err := dial(t, u, "echo.invalid"); err == nil {
		t.Fatal("a new connection got through a Drop of 1")
	}
	if s := n.Stats(); s.Cut != 1 || s.Refused != 1 {
		t.Fatalf("stats %+v, want one cut and one refused", s)
	}
}

func TestDelayKeepsOrder(t *testing.T) {
	n, u := newNetwork(t)
	c, br, err := dial(t, u, "echo.invalid")
	if err != nil {
		t.Fatal(err)
	}
	n.SetLink("a", "echo.invalid", proxy.Fault{Delay: 50 * time.Millisecond, Jitter: 30 * time.Millisecond})
	start := time.Now()
	for i := range 5 {
		if _, err := io.WriteString(c, string(rune('0'+i))+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	for i := range 5 {
		got, err := br.ReadString('\n')
		if err != nil || got != string(rune('0'+i))+"\n" {
			t.Fatalf("line %d: %q, %v", i, got, err)
		}
	}
	// Both directions are delayed.
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Fatalf("round trips took %v, want at least twice the delay", took)
	}
}
