package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// countingSource writes 10 entries and serves 4 reads a frame, each
// frame a second after the one before.
type countingSource struct{ n atomic.Int64 }

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (s *countingSource) Frame(context.Context) Frame {
	n := s.n.Add(1)
	return Frame{At: start.Add(time.Duration(n) * time.Second), Self: Self{NodeID: "m1"},
		Doctor:  Doctor{Status: "healthy", Summary: "healthy: leader m1"},
		Members: []Member{{NodeID: "m1", Leader: true}}, Objects: map[string]int{"service": int(n)},
		Counters: Counters{Applied: uint64(10 * n), Reads: float64(4 * n), FsyncSeconds: float64(n) * 0.002, Fsyncs: float64(n)}}
}

// event reads one server-sent event.
func event(t *testing.T, r *bufio.Reader) (name, data string) {
	t.Helper()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v", err)
		}
		line = strings.TrimRight(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data = strings.TrimPrefix(line, "data: ")
		case line == "" && name != "":
			return name, data
		}
	}
}

func TestStreamSendsHistoryThenFrames(t *testing.T) {
	d := New(Config{Source: &countingSource{}, Interval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { defer close(ran); d.Run(ctx) }()
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	if name, _ := event(t, r); name != "history" {
		t.Fatalf("first event %q, want history", name)
	}
	var got struct {
		Frame
		Point *Point `json:"point"`
	}
	for got.Point == nil {
		name, data := event(t, r)
		if name != "frame" {
			t.Fatalf("event %q, want frame", name)
		}
		if err := json.Unmarshal([]byte(data), &got); err != nil {
			t.Fatal(err)
		}
	}
	if p := got.Point; p.Writes != 10 || p.Reads != 4 || p.FsyncMs != 2 || p.ApplyMs != 0 {
		t.Errorf("point %+v, want 10 writes/s, 4 reads/s, 2ms fsyncs", p)
	}
	if got.Self.NodeID != "m1" || got.Doctor.Status != "healthy" || len(got.Members) != 1 {
		t.Errorf("frame %+v", got.Frame)
	}

	// A browser that comes later gets the history so far.
	resp2, err := http.Get(srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	_, data := event(t, bufio.NewReader(resp2.Body))
	var history []Point
	if err := json.Unmarshal([]byte(data), &history); err != nil || len(history) == 0 {
		t.Errorf("history %s: %v", data, err)
	}

	// Once the dashboard stops, its streams end.
	cancel()
	<-ran
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Errorf("the stream did not end cleanly: %v", err)
	}
}

func TestPageAndFrame(t *testing.T) {
	d := New(Config{Source: &countingSource{}})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	tests := []struct {
		path, contains string
		code           int
	}{
		{"/frame.json", "no frame yet", http.StatusServiceUnavailable},
		{"/", "<title>shoal dashboard</title>", http.StatusOK},
		{"/style.css", ".doctor", http.StatusOK},
		{"/app.js", `new EventSource("events")`, http.StatusOK},
	}
	for _, tt := range tests {
		resp, err := http.Get(srv.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.code || !strings.Contains(string(body), tt.contains) {
			t.Errorf("GET %s: %d, want %d with %q", tt.path, resp.StatusCode, tt.code, tt.contains)
		}
		if tt.code == http.StatusOK && !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: no Content-Security-Policy", tt.path)
		}
	}
	if resp, err := http.Post(srv.URL+"/events", "text/plain", nil); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /events: %d, want 405: the dashboard is read-only", resp.StatusCode)
		}
	}
	d.sample(context.Background())
	resp, err := http.Get(srv.URL + "/frame.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var f Frame
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil || f.Objects["service"] != 1 {
		t.Errorf("frame %+v: %v", f, err)
	}
}
