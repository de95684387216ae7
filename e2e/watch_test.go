package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// change is one change as its writer saw it acknowledged.
type change struct {
	typ     string
	name    string
	version uint64
}

// A watch on one manager sees every change made through the others, in
// version order, once each, and nothing it did not ask for.
func TestWatchSeesChangesMadeThroughOtherManagers(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	from := decode[clusterInfo](t, mustShoal(t, "cluster", "info", "-o", "json", "--socket", ms[2].socket())).StoreVersion

	watch, events, stderr := startWatch(t, "widget", "-o", "json", "--from-version", fmt.Sprint(from), "--socket", ms[2].socket())

	// Changes through managers 1 and 2 in turn, each acknowledged before
	// the next; a gadget among them that the watch must not show.
	var want []change
	via := func(i int) []string { return []string{"--host", ms[i%2].addr} }
	writeObj := func(i int, typ string, args ...string) {
		out := mustShoal(t, append(append(args, "-o", "json"), via(i)...)...)
		o := decode[object](t, out)
		want = append(want, change{typ, o.Name, o.Version})
	}
	deleted := regexp.MustCompile(`\(version (\d+)\)`)
	remove := func(i int, name string) {
		out := mustShoal(t, append([]string{"rm", "widget", name}, via(i)...)...)
		m := deleted.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("rm printed %q", out)
		}
		v, _ := strconv.ParseUint(m[1], 10, 64)
		want = append(want, change{"delete", name, v})
	}
	writeObj(0, "create", "create", "widget", "a", "--spec", `{"size": 1}`)
	writeObj(1, "create", "create", "widget", "b", "--label", "color=red")
	mustShoal(t, append([]string{"create", "gadget", "g"}, via(0)...)...)
	writeObj(0, "update", "update", "widget", "a", "--spec", `{"size": 2}`)
	writeObj(1, "update", "update", "widget", "b", "--label", "color=blue")
	remove(0, "a")
	writeObj(1, "create", "create", "widget", "c")
	writeObj(0, "update", "update", "widget", "c", "--label", "x=y", "--if-version", fmt.Sprint(want[len(want)-1].version))
	remove(1, "b")

	var got []change
	timeout := time.After(15 * time.Second)
	for len(got) < len(want) {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the watch ended after %v:\n%s", got, stderr.String())
			}
			if ev.Object.Kind != "widget" {
				t.Fatalf("the watch of widgets showed %+v", ev)
			}
			got = append(got, change{ev.Type, ev.Object.Name, ev.Version})
		case <-timeout:
			t.Fatalf("after 15s the watch showed %v, want %v", got, want)
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("the watch showed\n%v\nwant\n%v", got, want)
		}
	}

	// Ctrl-C ends the watch normally.
	if err := watch.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	waitErr := make(chan error, 1)
	go func() {
		for range events {
			t.Errorf("an event more than the changes made")
		}
		waitErr <- watch.Wait()
	}()
	select {
	case err := <-waitErr:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Fatalf("watch after SIGINT: %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch still runs 10s after SIGINT")
	}
}

// startWatch runs shoal watch with args and returns the process, its
// events as they come, and its stderr.
func startWatch(t *testing.T, args ...string) (*exec.Cmd, <-chan event, *lockedBuffer) {
	t.Helper()
	watch := exec.Command(shoalBin, append([]string{"watch"}, args...)...)
	watch.Env = append(cleanEnv(), withClientCert(args)...)
	stdout, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &lockedBuffer{}
	watch.Stderr = stderr
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan event, 100)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("watch printed %q: %v", sc.Text(), err)
				return
			}
			events <- ev
		}
	}()
	t.Cleanup(func() {
		_ = watch.Process.Kill()
		_ = watch.Wait()
	})
	return watch, events, stderr
}

// nextEvent waits for the next event of a watch.
func nextEvent(t *testing.T, events <-chan event, stderr *lockedBuffer) event {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatalf("the watch ended:\n%s", stderr.String())
		}
		return ev
	case <-time.After(15 * time.Second):
		t.Fatalf("no event in 15s:\n%s", stderr.String())
	}
	return event{}
}

// A watch given several managers goes on at the next one, from the last
// version it printed, when its manager stops.
func TestWatchResumesOnAnotherManager(t *testing.T) {
	t.Parallel()
	ms := startCluster(t, 3)
	from := decode[clusterInfo](t, mustShoal(t, "cluster", "info", "-o", "json", "--socket", ms[0].socket())).StoreVersion
	_, events, stderr := startWatch(t, "thing", "-o", "json", "--from-version", fmt.Sprint(from),
		"--host", ms[0].addr+","+ms[1].addr)
	mustShoal(t, "create", "thing", "x", "--socket", ms[2].socket())
	if ev := nextEvent(t, events, stderr); ev.Object.Name != "x" {
		t.Fatalf("first event %+v", ev)
	}
	if err := ms[0].terminate(); err != nil {
		t.Fatalf("stopping %s: %v", ms[0].name, err)
	}
	mustShoal(t, "create", "thing", "y", "--socket", ms[2].socket())
	if ev := nextEvent(t, events, stderr); ev.Object.Name != "y" || ev.Type != "create" {
		t.Fatalf("after the manager stopped, the watch showed %+v, want the creation of y\n%s", ev, stderr.String())
	}
	if !strings.Contains(stderr.String(), "resuming after version") {
		t.Errorf("the watch did not say it resumed:\n%s", stderr.String())
	}
}
