// Package proxy is a user-space TCP proxy that puts faults on the links
// between named endpoints: blackholes, one-way blackholes, refused and cut
// connections, and delay with jitter. It stands in for a network emulator
// (netem) on machines without one.
//
// Each source endpoint gets its own egress listener that speaks HTTP
// CONNECT, and names its destination in the CONNECT request by a host name
// that only the Network resolves (AddTarget). The link a connection
// belongs to is therefore the ordered pair (source, destination), and a
// fault on A→B leaves B→A alone. gRPC-Go dials through an HTTP CONNECT
// proxy when HTTPS_PROXY is set and the target is not a loopback address
// or "localhost"; give each process HTTPS_PROXY=Egress(itself) and
// advertise host names, and every connection it makes to a peer goes
// through its own link to that peer. The bytes inside the tunnel (TLS) are
// relayed untouched.
//
//	net := proxy.New(t.Logf)
//	net.AddTarget("m2.peer.invalid", "127.0.0.1:41002")
//	url, _ := net.Egress("m1")            // HTTPS_PROXY of m1
//	net.SetLink("m1", "m2.peer.invalid", proxy.Fault{Blackhole: true})
//	net.HealAll()
package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Fault is what a link does to the connections on it. The zero Fault
// passes everything at once.
type Fault struct {
	// Blackhole holds every byte in both directions of the link's
	// connections, and new connections wait without an answer: the
	// endpoints see a path that went dead, not a closed connection.
	// Held bytes are delivered, in order, once the blackhole is lifted, as
	// TCP's retransmissions would.
	Blackhole bool
	// Drop is the share (0 to 1) of new connections that are closed at
	// once, and of the existing ones cut when the fault is set.
	Drop float64
	// Delay, plus a uniform random Jitter in [0, Jitter), is added to
	// every chunk of bytes; the order of bytes is kept.
	Delay, Jitter time.Duration
}

func (f Fault) String() string {
	var parts []string
	if f.Blackhole {
		parts = append(parts, "blackhole")
	}
	if f.Drop > 0 {
		parts = append(parts, fmt.Sprintf("drop %.0f%%", f.Drop*100))
	}
	if f.Delay > 0 || f.Jitter > 0 {
		parts = append(parts, fmt.Sprintf("delay %v±%v", f.Delay, f.Jitter))
	}
	if len(parts) == 0 {
		return "healthy"
	}
	return strings.Join(parts, ", ")
}

// linkKey is an ordered pair: connections that source makes to dest.
type linkKey struct{ source, dest string }

type link struct {
	fault   Fault
	changed chan struct{} // closed and replaced when fault changes
	tunnels map[*tunnel]struct{}
}

// Network relays the connections of every source through its links. It is
// safe for concurrent use.
type Network struct {
	logf func(format string, args ...any)

	mu        sync.Mutex
	targets   map[string]string // host name -> real address
	links     map[linkKey]*link
	listeners map[string]net.Listener
	rng       *rand.Rand
	closed    bool
	wg        sync.WaitGroup
	stats     Stats
}

// Stats counts what the Network did.
type Stats struct {
	Tunnels   int // connections relayed
	Refused   int // connections closed at once by a Drop fault
	Cut       int // connections cut when a Drop fault was set
	Unknown   int // CONNECT requests for a host no target has
	HeldBytes int // bytes that waited for a blackhole to lift
}

// New returns an empty Network that logs through logf (nil: no logs).
func New(logf func(format string, args ...any)) *Network {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Network{
		logf:      logf,
		targets:   map[string]string{},
		links:     map[linkKey]*link{},
		listeners: map[string]net.Listener{},
		rng:       rand.New(rand.NewPCG(1, 2)),
	}
}

// Seed reseeds the random choices of Drop and Jitter.
func (n *Network) Seed(seed uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rng = rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// AddTarget makes host (a name without port) lead to addr. A CONNECT
// request names host:port; the port is ignored. Changing the address of
// a host affects new connections only.
func (n *Network) AddTarget(host, addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.targets[host] = addr
}

// Egress starts the listener of source and returns its URL, the value of
// HTTPS_PROXY for that process. Calling it again for the same source
// returns the same URL.
func (n *Network) Egress(source string) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return "", errors.New("proxy: network closed")
	}
	if l, ok := n.listeners[source]; ok {
		return "http://" + l.Addr().String(), nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("proxy: listening for %s: %w", source, err)
	}
	n.listeners[source] = l
	n.wg.Add(1)
	go n.accept(source, l)
	return "http://" + l.Addr().String(), nil
}

// SetLink sets the fault of the connections source makes to dest (a
// target host). Setting a Drop fault cuts that share of the link's open
// connections at once.
func (n *Network) SetLink(source, dest string, f Fault) {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.linkLocked(source, dest)
	l.fault = f
	close(l.changed)
	l.changed = make(chan struct{})
	if f.Drop > 0 {
		for t := range l.tunnels {
			if n.rng.Float64() < f.Drop {
				n.stats.Cut++
				t.close()
			}
		}
	}
	n.logf("proxy: link %s -> %s: %v", source, dest, f)
}

// Link returns the fault of source's connections to dest.
func (n *Network) Link(source, dest string) Fault {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.linkLocked(source, dest).fault
}

// HealAll lifts every fault.
func (n *Network) HealAll() {
	n.mu.Lock()
	keys := make([]linkKey, 0, len(n.links))
	for k, l := range n.links {
		if l.fault != (Fault{}) {
			keys = append(keys, k)
		}
	}
	n.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		return keys[i].source+" "+keys[i].dest < keys[j].source+" "+keys[j].dest
	})
	for _, k := range keys {
		n.SetLink(k.source, k.dest, Fault{})
	}
}

// Stats returns the counters so far.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.stats
}

// Close stops every listener and connection and waits for them.
func (n *Network) Close() {
	n.mu.Lock()
	n.closed = true
	for _, l := range n.listeners {
		l.Close()
	}
	for _, l := range n.links {
		for t := range l.tunnels {
			t.close()
		}
		close(l.changed)
		l.changed = make(chan struct{})
	}
	n.mu.Unlock()
	n.wg.Wait()
}

func (n *Network) linkLocked(source, dest string) *link {
	k := linkKey{source, dest}
	l, ok := n.links[k]
	if !ok {
		l = &link{changed: make(chan struct{}), tunnels: map[*tunnel]struct{}{}}
		n.links[k] = l
	}
	return l
}

// state returns the link's fault and the channel closed at its next change.
func (n *Network) state(k linkKey) (Fault, <-chan struct{}, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	l := n.linkLocked(k.source, k.dest)
	return l.fault, l.changed, n.closed
}

func (n *Network) accept(source string, l net.Listener) {
	defer n.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		n.wg.Add(1)
		go n.serve(source, c)
	}
}

// serve reads the CONNECT request of one connection and relays it.
func (n *Network) serve(source string, client net.Conn) {
	defer n.wg.Done()
	br := bufio.NewReader(client)
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	req, err := http.ReadRequest(br)
	_ = client.SetReadDeadline(time.Time{})
	if err != nil || req.Method != http.MethodConnect {
		client.Close()
		return
	}
	host, _, err := net.SplitHostPort(req.Host)
	if err != nil {
		host = req.Host
	}
	k := linkKey{source, host}
	n.mu.Lock()
	addr, ok := n.targets[host]
	if !ok {
		n.stats.Unknown++
	}
	n.mu.Unlock()
	if !ok {
		io.WriteString(client, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
		client.Close()
		return
	}
	// A blackholed link answers nothing until it heals or the client
	// gives up, like a SYN that gets no reply.
	for {
		f, changed, closed := n.state(k)
		if closed {
			client.Close()
			return
		}
		if f.Drop > 0 && n.chance(f.Drop) {
			n.mu.Lock()
			n.stats.Refused++
			n.mu.Unlock()
			client.Close()
			return
		}
		if !f.Blackhole {
			break
		}
		if !waitOrGone(client, br, changed) {
			client.Close()
			return
		}
	}
	server, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		io.WriteString(client, "HTTP/1.1 503 Service Unavailable\r\n\r\n")
		client.Close()
		return
	}
	// The tunnel is on its link before the client hears it is open, so a
	// fault set from then on finds it.
	t := &tunnel{client: client, server: server, done: make(chan struct{})}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		t.close()
		return
	}
	n.linkLocked(k.source, k.dest).tunnels[t] = struct{}{}
	n.stats.Tunnels++
	n.mu.Unlock()
	if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		t.close()
	}

	var relays sync.WaitGroup
	relays.Add(2)
	go func() { defer relays.Done(); n.relay(k, t, br, server) }()
	go func() { defer relays.Done(); n.relay(k, t, server, client) }()
	relays.Wait()
	n.mu.Lock()
	delete(n.linkLocked(k.source, k.dest).tunnels, t)
	n.mu.Unlock()
}

// waitOrGone waits for changed, and reports false if the client hung up
// first. It peeks, so no byte the client sends is lost.
func waitOrGone(c net.Conn, br *bufio.Reader, changed <-chan struct{}) bool {
	defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	for {
		select {
		case <-changed:
			return true
		default:
		}
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, err := br.Peek(1)
		var ne net.Error
		switch {
		case err == nil: // early bytes: they wait in br
			select {
			case <-changed:
				return true
			case <-time.After(100 * time.Millisecond):
			}
		case !(errors.As(err, &ne) && ne.Timeout()):
			return false
		}
	}
}

func (n *Network) chance(p float64) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.rng.Float64() < p
}

func (n *Network) jitter(j time.Duration) time.Duration {
	if j <= 0 {
		return 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return time.Duration(n.rng.Int64N(int64(j)))
}

// tunnel is one relayed connection.
type tunnel struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
}

func (t *tunnel) close() {
	t.once.Do(func() {
		close(t.done)
		t.client.Close()
		t.server.Close()
	})
}

type chunk struct {
	b    []byte
	read time.Time
}

// relay copies from src to dst through the link's faults: a reader queues
// chunks as they arrive, a writer passes each on once its delay is over
// and no blackhole holds it.
func (n *Network) relay(k linkKey, t *tunnel, src io.Reader, dst net.Conn) {
	queue := make(chan chunk, 256)
	readerDone := make(chan struct{})
	defer func() {
		t.close()
		<-readerDone
	}()
	go func() {
		defer close(readerDone)
		defer close(queue)
		for {
			buf := make([]byte, 32<<10)
			m, err := src.Read(buf)
			if m > 0 {
				select {
				case queue <- chunk{b: buf[:m], read: time.Now()}:
				case <-t.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	var lastDue time.Time
	for c := range queue {
		held := false
		for {
			f, changed, closed := n.state(k)
			if closed {
				return
			}
			if f.Blackhole {
				if !held {
					held = true
					n.mu.Lock()
					n.stats.HeldBytes += len(c.b)
					n.mu.Unlock()
				}
				select {
				case <-changed:
					continue
				case <-t.done:
					return
				}
			}
			due := c.read.Add(f.Delay + n.jitter(f.Jitter))
			if due.Before(lastDue) {
				due = lastDue // keep the byte order
			}
			if wait := time.Until(due); wait > 0 {
				timer := time.NewTimer(wait)
				select {
				case <-timer.C:
				case <-changed:
					timer.Stop()
					continue // the fault changed: look again
				case <-t.done:
					timer.Stop()
					return
				}
			}
			lastDue = due
			break
		}
		if _, err := dst.Write(c.b); err != nil {
			return
		}
	}
}
