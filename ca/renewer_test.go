package ca

import (
	"context"
	"crypto/tls"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/shoal-project/shoal/api"
)

// startRenewer runs r until the test ends.
func startRenewer(t *testing.T, r *Renewer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil after cancellation", err)
		}
	})
}

// TestRenewalWithoutRestart renews a client's certificate over the CA
// service and a manager's locally, on a fake clock, while a connection
// opened before keeps working; new connections present the new
// certificates on both sides.
func TestRenewalWithoutRestart(t *testing.T) {
	// TLS checks validity against the real clock, the CA and the Renewers
	// use the fake one. Starting the fake clock 48 minutes in the past keeps
	// both the first certificates (issued then, valid an hour) and the
	// renewed ones (issued about 47 minutes later) valid in real time.
	clock := clockwork.NewFakeClockAt(time.Now().Add(-48 * time.Minute))
	m := startManager(t, managerOptions{clock: clock, validity: time.Hour})
	ctx := testContext(t)

	creds, err := Join(ctx, m.addr, RoleClient, m.authority.token(RoleClient))
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	dir := CertificatesPath(t.TempDir())
	if err := SaveCredentials(dir, creds, nil); err != nil {
		t.Fatal(err)
	}
	client := newHolder(t, creds.KeyPair)
	conn := dial(t, m.addr, ClientTLSConfig(creds.RootCA, client))
	oldClientSerial := client.Leaf().SerialNumber.String()
	oldManagerSerial := m.holder.Leaf().SerialNumber.String()

	clientRenewed := make(chan struct{}, 1)
	clientRenewer, err := NewRenewer(RenewerConfig{
		Holder: client, Clock: clock, Logger: testLogger(t),
		Renew: func(ctx context.Context) (*tls.Certificate, error) {
			kp, err := RenewKeyPair(ctx, api.NewCAClient(conn), creds.RootCA, client.Identity())
			if err != nil {
				return nil, err
			}
			if err := SaveKeyPair(dir, kp, nil); err != nil {
				return nil, err
			}
			select {
			case clientRenewed <- struct{}{}:
			default:
			}
			return kp.TLSCertificate()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A manager holds the root's key: it renews without a call.
	managerRenewer, err := NewRenewer(RenewerConfig{
		Holder: m.holder, Clock: clock, Logger: testLogger(t),
		Renew: func(context.Context) (*tls.Certificate, error) {
			now := clock.Now()
			kp, err := m.root.NewKeyPair(m.holder.Identity().NodeID, RoleManager, now.Add(-DefaultBackdate), now.Add(time.Hour))
			if err != nil {
				return nil, err
			}
			return kp.TLSCertificate()
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	// Calls on the connection opened before the renewal keep succeeding
	// throughout.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var calls int
	var callErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := callProbe(ctx, conn, probeClientAllowed); err != nil {
				callErr = err
				return
			}
			calls++
		}
	}()

	startRenewer(t, clientRenewer)
	startRenewer(t, managerRenewer)
	if err := clock.BlockUntilContext(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// Past four fifths of both certificates' lifetime (66 minutes, with
	// the backdating): both renew, whatever their jitter drew.
	clock.Advance(47 * time.Minute)
	<-clientRenewed
	// Both Renewers wait again once the new certificates are in place.
	if err := clock.BlockUntilContext(ctx, 2); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if callErr != nil || calls == 0 {
		t.Fatalf("calls on the old connection: %d, then %v", calls, callErr)
	}

	newClientSerial := client.Leaf().SerialNumber.String()
	newManagerSerial := m.holder.Leaf().SerialNumber.String()
	if newClientSerial == oldClientSerial || newManagerSerial == oldManagerSerial {
		t.Fatal("a holder still serves its first certificate")
	}
	fresh := dial(t, m.addr, ClientTLSConfig(creds.RootCA, client))
	if got := serverCertSerial(ctx, t, fresh); got != newManagerSerial {
		t.Errorf("the manager presents certificate %s, want the renewed %s", got, newManagerSerial)
	}
	if _, err := callProbe(ctx, fresh, probeClientAllowed); err != nil {
		t.Fatalf("call with the renewed certificate: %v", err)
	}
	if got := m.probe.lastPeerSerial(); got != newClientSerial {
		t.Errorf("the manager saw client certificate %s, want the renewed %s", got, newClientSerial)
	}
	saved, err := LoadCredentials(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, _ := ParseCertificatePEM(saved.KeyPair.CertificatePEM); leaf.SerialNumber.String() != newClientSerial {
		t.Error("the renewed certificate was not saved")
	}
}

// fakeRenewal is a Renew function that fails a number of times, then
// issues a certificate dated by the clock; it records when it was called.
type fakeRenewal struct {
	root     *RootCA
	clock    clockwork.Clock
	nodeID   string
	called   chan struct{} // one value per call, never blocks
	mu       sync.Mutex
	failures int
	calls    []time.Time
}

func (f *fakeRenewal) renew(context.Context) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clock.Now()
	f.calls = append(f.calls, now)
	select {
	case f.called <- struct{}{}:
	default:
	}
	if f.failures > 0 {
		f.failures--
		return nil, errors.New("CA unreachable")
	}
	kp, err := f.root.NewKeyPair(f.nodeID, RoleClient, now, now.Add(time.Hour))
	if err != nil {
		return nil, err
	}
	return kp.TLSCertificate()
}

func (f *fakeRenewal) callTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...)
}

// newFakeRenewal returns a holder with a certificate valid for an hour from
// the clock's now, and a renewal that fails failures times.
func newFakeRenewal(t *testing.T, clock clockwork.Clock, failures int) (*CertificateHolder, *fakeRenewal) {
	root := newTestRoot(t, "c1")
	now := clock.Now()
	kp, err := root.NewKeyPair("n1", RoleClient, now, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return newHolder(t, kp), &fakeRenewal{root: root, clock: clock, nodeID: "n1", failures: failures, called: make(chan struct{}, 1)}
}

// TestRenewerBackoff checks each wait of the Renewer to the nanosecond: the
// renewal point, then retries after 1 s, 2 s, and 3 s (the cap, not 4 s).
func TestRenewerBackoff(t *testing.T) {
	clock := clockwork.NewFakeClockAt(time.Now().Truncate(time.Second))
	ctx := testContext(t)
	holder, fake := newFakeRenewal(t, clock, 3)
	first := holder.Leaf()
	r, err := NewRenewer(RenewerConfig{
		Holder: holder, Renew: fake.renew, Clock: clock, Logger: testLogger(t),
		RenewAfter: 0.5, RenewBy: 0.5, MinRetryInterval: time.Second, MaxRetryInterval: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	startRenewer(t, r)

	// advance moves the clock by d and returns the number of renewal calls
	// made once the Renewer waits again. A timer that fires does so inside
	// Advance, so the count is exact.
	advance := func(d time.Duration) int {
		clock.Advance(d)
		if err := clock.BlockUntilContext(ctx, 1); err != nil {
			t.Fatal(err)
		}
		return len(fake.callTimes())
	}
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		wait      time.Duration
		wantCalls int
	}{
		{30*time.Minute - time.Nanosecond, 0},
		{time.Nanosecond, 1}, // half of the lifetime: first attempt, fails
		{time.Second - time.Nanosecond, 1},
		{time.Nanosecond, 2}, // fails
		{2*time.Second - time.Nanosecond, 2},
		{time.Nanosecond, 3}, // fails
		{3*time.Second - time.Nanosecond, 3},
		{time.Nanosecond, 4}, // succeeds
	}
	for i, s := range steps {
		if got := advance(s.wait); got != s.wantCalls {
			t.Fatalf("step %d: %d renewal calls, want %d", i, got, s.wantCalls)
		}
	}
	if holder.Leaf() == first {
		t.Fatal("the renewed certificate is not served")
	}
}

// TestRenewerRefusesCertificateDue gets the current, expired certificate
// back from the renewal: the Renewer must back off, not renew again at once.
func TestRenewerRefusesCertificateDue(t *testing.T) {
	clock := clockwork.NewFakeClock()
	ctx := testContext(t)
	holder, _ := newFakeRenewal(t, clock, 0)
	first := holder.Certificate()
	calls := make(chan struct{}, 10)
	r, err := NewRenewer(RenewerConfig{
		Holder: holder, Clock: clock, Logger: testLogger(t),
		Renew: func(context.Context) (*tls.Certificate, error) {
			calls <- struct{}{}
			return first, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	startRenewer(t, r)
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	// The Renewer now waits out its first retry interval.
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if n := len(calls); n != 1 {
		t.Fatalf("%d renewal calls before the retry interval passed, want 1", n)
	}
}

// TestRenewNow checks that RenewNow renews at once, without the clock.
func TestRenewNow(t *testing.T) {
	clock := clockwork.NewFakeClock()
	ctx := testContext(t)
	holder, fake := newFakeRenewal(t, clock, 0)
	first := holder.Leaf()
	r, err := NewRenewer(RenewerConfig{Holder: holder, Renew: fake.renew, Clock: clock, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	startRenewer(t, r)
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	r.RenewNow()
	// The Renewer stopped its timer before renewing, so the next waiter is
	// the timer for the new certificate, armed once it is served.
	<-fake.called
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if holder.Leaf() == first {
		t.Fatal("RenewNow did not replace the certificate")
	}
}

// TestRenewerStopsDuringBackoff cancels a Renewer that waits to retry.
func TestRenewerStopsDuringBackoff(t *testing.T) {
	clock := clockwork.NewFakeClock()
	ctx := testContext(t)
	holder, fake := newFakeRenewal(t, clock, 1000)
	r, err := NewRenewer(RenewerConfig{Holder: holder, Renew: fake.renew, Clock: clock, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour) // expired: renews at once, fails, backs off
	if err := clock.BlockUntilContext(ctx, 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if n := len(fake.callTimes()); n != 1 {
		t.Fatalf("%d renewal calls, want 1", n)
	}
}

func TestNewRenewerConfig(t *testing.T) {
	holder, fake := newFakeRenewal(t, clockwork.NewFakeClock(), 0)
	tests := []struct {
		name string
		cfg  RenewerConfig
	}{
		{"no holder", RenewerConfig{Renew: fake.renew}},
		{"no renew", RenewerConfig{Holder: holder}},
		{"window reversed", RenewerConfig{Holder: holder, Renew: fake.renew, RenewAfter: 0.7, RenewBy: 0.6}},
		{"renew at the end", RenewerConfig{Holder: holder, Renew: fake.renew, RenewAfter: 0.5, RenewBy: 1}},
		{"negative retry", RenewerConfig{Holder: holder, Renew: fake.renew, MinRetryInterval: -time.Second}},
		{"retry cap under the first", RenewerConfig{Holder: holder, Renew: fake.renew, MinRetryInterval: time.Minute, MaxRetryInterval: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewRenewer(tt.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("NewRenewer = %v, want ErrInvalidConfig", err)
			}
		})
	}
}
