package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

//go:embed assets
var assets embed.FS

// Source gives the dashboard what it shows. Frame is called once per
// interval, from one goroutine, and must return within it.
type Source interface {
	Frame(ctx context.Context) Frame
}

// Config configures a Dashboard.
type Config struct {
	// Source is sampled once per Interval. Required.
	Source Source
	// Interval is the time between two frames. Default 1s.
	Interval time.Duration
	// History is how many points the charts keep. Default 600 (ten
	// minutes at the default interval).
	History int
	// Logger receives the dashboard's logs. Default: discard.
	Logger *slog.Logger
}

// Dashboard samples its Source and serves the page and its event stream.
// Create it with New, run Run once, and serve Handler.
type Dashboard struct {
	cfg  Config
	done chan struct{}

	mu      sync.Mutex
	last    []byte // the last frame event, encoded
	points  []Point
	prev    *Counters
	prevAt  time.Time
	clients map[chan []byte]struct{}
}

// New returns a dashboard; nothing is sampled until Run.
func New(cfg Config) *Dashboard {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.History <= 0 {
		cfg.History = 600
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Dashboard{cfg: cfg, done: make(chan struct{}), clients: map[chan []byte]struct{}{}}
}

// Run samples the source once per interval until ctx ends; then the event
// streams end too.
func (d *Dashboard) Run(ctx context.Context) {
	defer close(d.done)
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		d.sample(ctx)
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// sample takes one frame, adds its point to the history, and sends it to
// every stream.
func (d *Dashboard) sample(ctx context.Context) {
	f := d.cfg.Source.Frame(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	var p *Point
	if d.prev != nil {
		pt := f.Counters.pointSince(*d.prev, f.At.Sub(d.prevAt), f.At)
		p = &pt
		d.points = append(d.points, pt)
		if len(d.points) > d.cfg.History {
			d.points = append(d.points[:0], d.points[len(d.points)-d.cfg.History:]...)
		}
	}
	d.prev, d.prevAt = &f.Counters, f.At
	ev, err := encodeEvent("frame", struct {
		Frame
		Point *Point `json:"point"`
	}{f, p})
	if err != nil {
		d.cfg.Logger.Error("dashboard: encoding a frame", "err", err)
		return
	}
	d.last = ev
	for c := range d.clients {
		select {
		case c <- ev:
		default: // a slow browser misses a frame, not the next one
		}
	}
}

func encodeEvent(name string, v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", name, data)
	return b.Bytes(), nil
}

// Handler serves the page at /, its assets, the event stream at /events
// and the last frame as JSON at /frame.json. Everything is read-only.
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.Handle("GET /", secured(files))
	mux.HandleFunc("GET /events", d.serveEvents)
	mux.HandleFunc("GET /frame.json", d.serveFrame)
	return mux
}

// secured keeps the page from being framed or loading anything from
// elsewhere.
func secured(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

func (d *Dashboard) serveFrame(w http.ResponseWriter, _ *http.Request) {
	d.mu.Lock()
	last := d.last
	d.mu.Unlock()
	if last == nil {
		http.Error(w, "no frame yet", http.StatusServiceUnavailable)
		return
	}
	_, data, _ := bytes.Cut(last, []byte("data: "))
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(bytes.TrimSpace(data))
}

// serveEvents streams the history once, then every frame, until the
// browser leaves or the dashboard stops.
func (d *Dashboard) serveEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming is not supported", http.StatusInternalServerError)
		return
	}
	c := make(chan []byte, 4)
	d.mu.Lock()
	history, err := encodeEvent("history", d.points)
	last := d.last
	d.clients[c] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.clients, c)
		d.mu.Unlock()
	}()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(history)
	if last != nil {
		_, _ = w.Write(last)
	}
	flusher.Flush()
	for {
		select {
		case ev := <-c:
			if _, err := w.Write(ev); err != nil {
				return
			}
			flusher.Flush()
		case <-r.Context().Done():
			return
		case <-d.done:
			return
		}
	}
}
