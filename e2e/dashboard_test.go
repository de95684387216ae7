package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshot, when set, is where the dashboard test saves its screenshot;
// so is SHOAL_DASHBOARD_SCREENSHOT, which make dashboard-screenshot sets to
// docs/dashboard.png. Without either, nothing is written.
var screenshot = flag.String("dashboard-screenshot", "", "save the dashboard test's screenshot to this PNG file")

// findChromium returns Debian's chromium, or "" when it is not installed.
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser opens a headless Chromium for the test; it skips the test when
// none is installed.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := findChromium()
	if path == "" {
		t.Skip("chromium is not installed (Debian: apt-get install chromium); .ci/run installs it")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1280, 1000),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium %s: %v", path, err)
	}
	return ctx
}

// pageValue evaluates a JavaScript expression in the page.
func pageValue[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(cctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

const (
	jsLeader  = `document.getElementById("leader").textContent`
	jsMembers = `Array.from(document.querySelectorAll("#members tbody tr")).map(r => r.dataset.nodeId + " " + r.dataset.role)`
	jsDoctor  = `document.getElementById("doctor").dataset.status + ": " + document.getElementById("doctor").textContent`
	jsCount   = `(document.querySelector('#objects tr[data-kind="%s"] td.count') || {textContent: "0"}).textContent`
)

// The dashboard of a 3-manager cluster, in a real browser: the three
// members and the leader, a new leader within 5s of the old one's death,
// and the counts of objects as they are written.
func TestDashboardInBrowser(t *testing.T) {
	ctx := browser(t)
	base := shortTempDir(t)
	var ms []*managerProc
	httpAddrs := map[*managerProc]string{}
	for i := range 3 {
		name := fmt.Sprintf("m%d", i+1)
		addr := freeAddr(t)
		extra := []string{"--http-addr", addr, "--snapshot-interval", "8"}
		if i > 0 {
			extra = append(extra, "--join", ms[i-1].addr)
		}
		m := startManager(t, name, filepath.Join(base, name), "127.0.0.1:0", extra...)
		ms = append(ms, m)
		httpAddrs[m] = addr
	}
	leader := leaderOf(t, ms)
	var viewer *managerProc // a follower serves the page: it outlives the leader
	for _, m := range ms {
		if m != leader {
			viewer = m
			break
		}
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate("http://"+httpAddrs[viewer]+"/")); err != nil {
		t.Fatalf("opening the dashboard: %v", err)
	}

	poll := func(timeout time.Duration, what, expr string, cond func(string) bool) string {
		t.Helper()
		var got string
		waitFor(t, timeout, what, func() (bool, string) {
			got = fmt.Sprint(pageValue[any](t, ctx, expr))
			return cond(got), got
		})
		return got
	}
	poll(15*time.Second, "the three members, the leader marked", jsMembers, func(s string) bool {
		return strings.Contains(s, leader.nodeID+" leader") && strings.Count(s, " follower") == 2
	})
	poll(15*time.Second, "the leader on the top line", jsLeader, func(s string) bool { return s == leader.nodeID })
	poll(15*time.Second, "the doctor's line to say healthy", jsDoctor, func(s string) bool { return strings.HasPrefix(s, "healthy: ") })
	if self := pageValue[string](t, ctx, `document.getElementById("self").textContent`); self != viewer.nodeID {
		t.Errorf("the page says it is served by %q, want %s", self, viewer.nodeID)
	}

	leader.kill()
	killed := time.Now()
	newLeader := poll(5*time.Second, "a new leader shown within 5s", jsLeader, func(s string) bool {
		return s != leader.nodeID && s != "none" && s != ""
	})
	t.Logf("the page showed the new leader %s %v after the kill", newLeader, time.Since(killed).Round(time.Millisecond))
	poll(15*time.Second, "the doctor's line to name the dead leader", jsDoctor, func(s string) bool {
		return strings.HasPrefix(s, "degraded: ") && strings.Contains(s, leader.nodeID)
	})

	before := poll(5*time.Second, "a count of services", fmt.Sprintf(jsCount, "service"), func(string) bool { return true })
	for i := range 5 {
		mustShoal(t, "create", "service", fmt.Sprintf("web-%d", i), "--socket", viewer.socket())
	}
	poll(10*time.Second, "five services counted", fmt.Sprintf(jsCount, "service"), func(s string) bool { return s == "5" })
	if before != "0" {
		t.Errorf("services before any was written: %s", before)
	}
	mustShoal(t, "rm", "service", "web-0", "--socket", viewer.socket())
	poll(10*time.Second, "the deletion counted", fmt.Sprintf(jsCount, "service"), func(s string) bool { return s == "4" })
	poll(10*time.Second, "a snapshot listed", `Array.from(document.querySelectorAll("#snapshots tbody td")).map(td => td.textContent).join(" ")`,
		func(s string) bool { return strings.Contains(s, " B") || strings.Contains(s, "KiB") })

	leader.restart()
	poll(20*time.Second, "the doctor's line to say healthy again", jsDoctor, func(s string) bool { return strings.HasPrefix(s, "healthy: ") })
	poll(20*time.Second, "no problem or warning listed", `document.querySelectorAll("#problems li").length`,
		func(s string) bool { return s == "0" })
	if strings.Contains(pageValue[string](t, ctx, `document.body.innerText`), "SHLTKN") {
		t.Error("the page shows a join token")
	}
	saveScreenshot(t, ctx)
}

func saveScreenshot(t *testing.T, ctx context.Context) {
	t.Helper()
	path := *screenshot
	if path == "" {
		path = os.Getenv("SHOAL_DASHBOARD_SCREENSHOT")
	}
	if path == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved the screenshot to %s", path)
}
