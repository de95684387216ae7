package ca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/jonboulle/clockwork"
)

// Defaults applied by NewRenewer to the RenewerConfig fields left at zero.
const (
	// DefaultRenewAfter and DefaultRenewBy bound the point of a
	// certificate's lifetime at which it is renewed: a random point between
	// half and four fifths (SwarmKit's range), so that nodes issued at the
	// same time do not all renew at once.
	DefaultRenewAfter = 0.5
	DefaultRenewBy    = 0.8
	// DefaultMinRetryInterval and DefaultMaxRetryInterval bound the wait
	// after a failed renewal, which doubles from the first to the second.
	DefaultMinRetryInterval = time.Second
	DefaultMaxRetryInterval = 5 * time.Minute
)

// RenewerConfig configures a Renewer. Zero values take the defaults named in
// each field's comment; NewRenewer validates the result.
type RenewerConfig struct {
	// Holder holds the certificate to renew and receives the new ones.
	// Required.
	Holder *CertificateHolder
	// Renew obtains a new certificate for the node; it should persist it
	// (SaveKeyPair) before returning it, so that a restart finds the
	// certificate in use. It is called from Run's goroutine with Run's
	// context, one call at a time. Required.
	Renew func(ctx context.Context) (*tls.Certificate, error)
	// Clock times the renewals. Default the real clock.
	Clock clockwork.Clock
	// Logger receives renewals and failures; nil discards them.
	Logger *slog.Logger
	// RenewAfter and RenewBy, fractions of a certificate's lifetime
	// (NotBefore to NotAfter), bound the random point at which it is
	// renewed. Defaults DefaultRenewAfter (0.5) and DefaultRenewBy (0.8);
	// 0 < RenewAfter <= RenewBy < 1. Equal values renew at that exact
	// point.
	RenewAfter, RenewBy float64
	// MinRetryInterval is the wait after the first failed renewal; it
	// doubles after each further failure up to MaxRetryInterval. Defaults
	// DefaultMinRetryInterval (1 s) and DefaultMaxRetryInterval (5 min).
	MinRetryInterval, MaxRetryInterval time.Duration
}

// Renewer renews a node's certificate before it expires, through
// RenewerConfig.Renew, and swaps the new one into the CertificateHolder:
// new TLS handshakes use it at once, without a restart.
type Renewer struct {
	cfg RenewerConfig
	now chan struct{}
}

// NewRenewer checks cfg, fills its defaults and returns a Renewer. It fails
// with ErrInvalidConfig naming the bad field.
func NewRenewer(cfg RenewerConfig) (*Renewer, error) {
	if cfg.Holder == nil || cfg.Renew == nil {
		return nil, fmt.Errorf("%w: RenewerConfig.Holder and Renew are required", ErrInvalidConfig)
	}
	if cfg.Clock == nil {
		cfg.Clock = clockwork.NewRealClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.RenewAfter == 0 {
		cfg.RenewAfter = DefaultRenewAfter
	}
	if cfg.RenewBy == 0 {
		cfg.RenewBy = DefaultRenewBy
	}
	if cfg.MinRetryInterval == 0 {
		cfg.MinRetryInterval = DefaultMinRetryInterval
	}
	if cfg.MaxRetryInterval == 0 {
		cfg.MaxRetryInterval = DefaultMaxRetryInterval
	}
	if !(0 < cfg.RenewAfter && cfg.RenewAfter <= cfg.RenewBy && cfg.RenewBy < 1) {
		return nil, fmt.Errorf("%w: RenewerConfig.RenewAfter %g and RenewBy %g must satisfy 0 < RenewAfter <= RenewBy < 1",
			ErrInvalidConfig, cfg.RenewAfter, cfg.RenewBy)
	}
	if cfg.MinRetryInterval < 0 || cfg.MaxRetryInterval < cfg.MinRetryInterval {
		return nil, fmt.Errorf("%w: RenewerConfig.MinRetryInterval %s and MaxRetryInterval %s must satisfy 0 <= min <= max",
			ErrInvalidConfig, cfg.MinRetryInterval, cfg.MaxRetryInterval)
	}
	return &Renewer{cfg: cfg, now: make(chan struct{}, 1)}, nil
}

// Run renews the certificate, over and over, until ctx is done; then it
// returns nil. A failed renewal is logged and retried with backoff until it
// succeeds; the old certificate keeps being served meanwhile. A certificate
// that expires before it could be renewed cannot authenticate a renewal
// either: the node then has to join again, which Renew may do.
//
// Call Run once, on a goroutine of its own.
func (r *Renewer) Run(ctx context.Context) error {
	for {
		leaf := r.cfg.Holder.Leaf()
		wait := r.renewalPoint(leaf).Sub(r.cfg.Clock.Now())
		r.cfg.Logger.Debug("certificate renewal scheduled", "node_id", r.cfg.Holder.Identity().NodeID,
			"in", max(wait, 0), "not_after", leaf.NotAfter)
		if !r.sleep(ctx, wait, true) {
			return nil
		}
		if !r.renew(ctx) {
			return nil
		}
	}
}

// RenewNow asks Run to renew at once instead of waiting for the scheduled
// point, for instance after the node's role changed. It does not wait;
// requests made while a renewal is under way coalesce into one more.
func (r *Renewer) RenewNow() {
	select {
	case r.now <- struct{}{}:
	default:
	}
}

// renew calls Renew until it succeeds; it reports false when ctx ended
// first.
func (r *Renewer) renew(ctx context.Context) bool {
	// This renewal answers every RenewNow made so far.
	select {
	case <-r.now:
	default:
	}
	retry := r.cfg.MinRetryInterval
	for {
		err := r.renewOnce(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		leaf := r.cfg.Holder.Leaf()
		level := slog.LevelWarn
		if !r.cfg.Clock.Now().Before(leaf.NotAfter) {
			level = slog.LevelError
		}
		r.cfg.Logger.Log(ctx, level, "certificate renewal failed", "node_id", r.cfg.Holder.Identity().NodeID,
			"retry_in", retry, "not_after", leaf.NotAfter, "err", err)
		// A RenewNow request does not cut a backoff short: it would let a
		// burst of requests hammer a failing CA.
		if !r.sleep(ctx, retry, false) {
			return false
		}
		retry = min(2*retry, r.cfg.MaxRetryInterval)
	}
}

func (r *Renewer) renewOnce(ctx context.Context) error {
	cert, err := r.cfg.Renew(ctx)
	if err != nil {
		return err
	}
	// A certificate already due for renewal would be renewed again at once:
	// treat it as a failure, so that the CA is not asked in a tight loop
	// (it happens when the root CA itself is about to expire).
	if cert != nil && cert.Leaf != nil && !r.cfg.Clock.Now().Before(lifetimePoint(cert.Leaf, r.cfg.RenewAfter)) {
		return fmt.Errorf("ca: the new certificate, valid until %s, is already due for renewal", cert.Leaf.NotAfter)
	}
	if err := r.cfg.Holder.Set(cert); err != nil {
		return err
	}
	r.cfg.Logger.Info("certificate renewed", "node_id", r.cfg.Holder.Identity().NodeID, "not_after", cert.Leaf.NotAfter)
	return nil
}

// renewalPoint draws the instant at which leaf is to be renewed.
func (r *Renewer) renewalPoint(leaf *x509.Certificate) time.Time {
	return lifetimePoint(leaf, r.cfg.RenewAfter+(r.cfg.RenewBy-r.cfg.RenewAfter)*rand.Float64())
}

// lifetimePoint returns the instant when the fraction frac of leaf's
// lifetime has passed.
func lifetimePoint(leaf *x509.Certificate, frac float64) time.Time {
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(time.Duration(frac * float64(lifetime)))
}

// sleep waits d on the clock. It reports false when ctx ended first, and
// returns early when interruptible and RenewNow was called.
func (r *Renewer) sleep(ctx context.Context, d time.Duration, interruptible bool) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := r.cfg.Clock.NewTimer(d)
	defer t.Stop()
	now := r.now
	if !interruptible {
		now = nil
	}
	select {
	case <-ctx.Done():
		return false
	case <-t.Chan():
		return true
	case <-now:
		return true
	}
}
