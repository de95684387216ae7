package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/shoal-project/shoal/client"
)

// unreachable is a loopback address nothing listens on: a command that
// gets exit code 5 with it got past its own checks and tried to call.
func unreachable(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func TestExitCodesOfBadUsage(t *testing.T) {
	host := unreachable(t)
	spec := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(spec, []byte(`{"replicas": 3}`), 0o600); err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	// A manager refused for its flags exits before it writes anything.
	manager := func(flags ...string) []string {
		return append([]string{"manager", "--state-dir", filepath.Join(t.TempDir(), "m"), "--listen-addr", "127.0.0.1:0"}, flags...)
	}
	tests := []struct {
		name   string
		args   []string
		stdin  string
		want   int
		stderr string // a part of the one error line
	}{
		{"unknown command", []string{"frobnicate"}, "", exitUsage, `unknown command "frobnicate"`},
		{"unknown flag", []string{"ls", "service", "--bogus"}, "", exitUsage, "unknown flag: --bogus"},
		{"missing args", []string{"create", "service"}, "", exitUsage, "needs a KIND and a NAME"},
		{"too many args", []string{"get", "a", "b", "c"}, "", exitUsage, "needs a KIND and a NAME or ID"},
		{"bad json", []string{"create", "service", "web", "--spec", "{bad", "--host", host}, "", exitUsage, "not valid JSON"},
		{"bad json on stdin", []string{"create", "service", "web", "--spec", "-", "--host", host}, "[1,", exitUsage, "standard input is not valid JSON"},
		{"missing spec file", []string{"create", "service", "web", "--spec", "@/nonexistent/spec.json", "--host", host}, "", exitUsage, "reading the spec"},
		{"empty spec", []string{"create", "service", "web", "--spec", "-", "--host", host}, "  ", exitUsage, "is empty"},
		{"empty --spec", []string{"create", "service", "web", "--spec", "", "--host", host}, "", exitUsage, "the spec in --spec is empty"},
		{"empty --spec on update", []string{"update", "service", "web", "--spec", "", "--host", host}, "", exitUsage, "the spec in --spec is empty"},
		{"spec over 1 MiB", []string{"create", "service", "web", "--spec", "-", "--host", host}, `"` + strings.Repeat("x", 1<<20) + `"`, exitUsage, "an object holds at most 1 MiB"},
		{"bad label", []string{"create", "service", "web", "--label", "novalue", "--host", host}, "", exitUsage, `--label "novalue" is not key=value`},
		{"bad output", []string{"ls", "service", "-o", "xml", "--host", host}, "", exitUsage, `-o "xml"`},
		{"bad certificate role", []string{"cluster", "client-cert", "--role", "root", "--host", host}, "", exitUsage, `--role "root": choose ro, rw or admin`},
		{"revoke without an ID", []string{"cluster", "revoke-cert", "--host", host}, "", exitUsage, "needs a client ID"},
		{"bad consistency", []string{"get", "service", "web", "--consistency", "eventual", "--host", host}, "", exitUsage, "--consistency"},
		{"bad version", []string{"rm", "service", "web", "--if-version", "x"}, "", exitUsage, "--if-version"},
		{"nothing to update", []string{"update", "service", "web", "--host", host}, "", exitUsage, "nothing to update"},
		{"label set and removed", []string{"update", "service", "web", "--label", "a=1", "--remove-label", "a", "--host", host}, "", exitUsage, "both set and removed"},
		{"socket and host", []string{"ls", "service", "--host", host, "--socket", "/x.sock"}, "", exitUsage, "exclude each other"},
		{"bad timeout", []string{"ls", "service", "--host", host, "--timeout", "0s"}, "", exitUsage, "--timeout"},
		{"bad tick", []string{"manager", "--tick", "0s"}, "", exitUsage, "--tick"},
		{"election not above heartbeat", []string{"manager", "--election-tick", "1"}, "", exitUsage, "--election-tick 1"},
		{"force and join", []string{"manager", "--force-new-cluster", "--join", "a:1"}, "", exitUsage, "exclude each other"},
		{"bad log level", []string{"manager", "--log-level", "loud", "--state-dir", t.TempDir()}, "", exitUsage, "--log-level"},
		{"token without join", manager("--token", "SHLTKN-1-x"), "", exitUsage, "--token is for joining a cluster, and --join is not given"},
		{"join without token", manager("--join", "127.0.0.1:1"), "", exitUsage, "needs a join token"},
		{"force without state", manager("--force-new-cluster"), "", exitUsage, "holds no Raft state"},
		{"listen address taken", []string{"manager", "--state-dir", filepath.Join(t.TempDir(), "m"), "--listen-addr", taken.Addr().String()}, "",
			exitUsage, "--listen-addr " + taken.Addr().String() + " is in use by another process: choose another address"},
		{"metrics address taken", manager("--metrics-addr", taken.Addr().String()), "",
			exitUsage, "--metrics-addr " + taken.Addr().String() + " is in use by another process: choose another address"},
		{"http address taken", manager("--http-addr", taken.Addr().String()), "",
			exitUsage, "--http-addr " + taken.Addr().String() + " is in use by another process: choose another address"},
		{"http and metrics addresses differ", manager("--http-addr", "127.0.0.1:9100", "--metrics-addr", "127.0.0.1:9101"), "",
			exitUsage, "--http-addr 127.0.0.1:9100 and --metrics-addr 127.0.0.1:9101 name the same listener: give one"},
		{"pprof without http", manager("--pprof"), "", exitUsage, "--pprof serves the profiles on the HTTP listener: give --http-addr too"},
		{"doctor with an argument", []string{"doctor", "extra"}, "", exitUsage, "no argument"},
		{"doctor unreachable", []string{"doctor", "--socket", "/nonexistent/control.sock"}, "", exitUnavailable, "no control socket at /nonexistent/control.sock"},
		{"bad advertise address", manager("--advertise-addr", "10.0.0.1"), "", exitUsage, `--advertise-addr "10.0.0.1" is not host:port`},
		{"dev managers", []string{"dev", "--managers", "0"}, "", exitUsage, "--managers 0"},
		{"unreachable manager", []string{"ls", "service", "--host", host}, "", exitUnavailable, "cannot reach a manager at " + host},
		{"good spec file, unreachable", []string{"create", "service", "web", "--spec", "@" + spec, "--host", host}, "", exitUnavailable, "connection refused"},
		{"good stdin, unreachable", []string{"update", "service", "web", "--spec", "-", "--host", host}, `{"a": 1}`, exitUnavailable, "connection refused"},
		{"no socket", []string{"node", "ls", "--socket", "/nonexistent/control.sock"}, "", exitUnavailable, "no control socket at /nonexistent/control.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, tt.stdin, tt.args...)
			if code != tt.want {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.want, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q does not say %q", stderr, tt.stderr)
			}
			if lines := strings.Count(strings.TrimSpace(stderr), "\n") + 1; lines != 1 {
				t.Errorf("stderr has %d lines, want one: %q", lines, stderr)
			}
			if !strings.HasPrefix(stderr, "shoal: ") {
				t.Errorf("stderr %q does not start with 'shoal: '", stderr)
			}
		})
	}
}

func TestHelpDocumentsExitCodes(t *testing.T) {
	code, out, _ := runCLI(t, nil, "", "--help")
	if code != exitOK {
		t.Fatalf("exit code %d", code)
	}
	for _, want := range []string{"Exit codes:", "2  bad usage", "3  not found", "4  conflict", "5  unavailable"} {
		if !strings.Contains(out, want) {
			t.Errorf("help does not say %q", want)
		}
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		code, out, stderr := runCLI(t, nil, "", "completion", shell)
		if code != exitOK || len(out) < 100 {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, code, len(out), stderr)
		}
	}
}

func TestExitCodeMapping(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{errors.New("disk full"), exitError},
		{usagef("bad"), exitUsage},
		{fmt.Errorf("wrapped: %w", usagef("bad")), exitUsage},
		{status.Error(codes.InvalidArgument, "bad kind"), exitUsage},
		{status.Error(codes.NotFound, "no such object"), exitNotFound},
		{status.Error(codes.AlreadyExists, "taken"), exitConflict},
		{status.Error(codes.Aborted, "version conflict"), exitConflict},
		{status.Error(codes.FailedPrecondition, "quorum"), exitConflict},
		{status.Error(codes.OutOfRange, "compacted"), exitConflict},
		{status.Error(codes.Unavailable, "no leader"), exitUnavailable},
		{status.Error(codes.DeadlineExceeded, "slow"), exitUnavailable},
		{context.DeadlineExceeded, exitUnavailable},
		{status.Error(codes.Internal, "bug"), exitError},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

func TestErrorMessageIsOneLineWithAHint(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{status.Error(codes.NotFound, "store: object not found: service/web"), "store: object not found: service/web"},
		{status.Error(codes.Unavailable, "raft: no leader"), "raft: no leader; is a majority of the managers up? see 'shoal node ls'"},
		{status.Error(codes.Aborted, "store: version conflict:\n want 3"), "store: version conflict: want 3; get the object again and retry with its current version"},
		{status.Error(codes.OutOfRange, "compacted"), "compacted; list the objects again and watch from the version the list gives"},
		{context.DeadlineExceeded, "timed out; raise --timeout, or see whether the cluster has a leader with 'shoal cluster info'"},
		{errors.New("two\nlines"), "two lines"},
	}
	for _, tt := range tests {
		if got := errorMessage(tt.err); got != tt.want {
			t.Errorf("errorMessage(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestClientConfigResolution(t *testing.T) {
	tests := []struct {
		name         string
		socket, host string
		vars         map[string]string
		euid         int
		home         func() (string, error)
		want         client.Config
		usage        bool
	}{
		{name: "default as root", euid: 0, want: client.Config{SocketPath: "/var/lib/shoal/control.sock"}},
		{name: "default as a user", euid: 1000, want: client.Config{SocketPath: "/home/ada/.local/state/shoal/control.sock"}},
		{name: "XDG_STATE_HOME", euid: 1000, vars: map[string]string{"XDG_STATE_HOME": "/xdg"}, want: client.Config{SocketPath: "/xdg/shoal/control.sock"}},
		{name: "relative XDG_STATE_HOME is ignored", euid: 1000, vars: map[string]string{"XDG_STATE_HOME": "xdg"}, want: client.Config{SocketPath: "/home/ada/.local/state/shoal/control.sock"}},
		{name: "no home", euid: 1000, home: noHome, want: client.Config{SocketPath: filepath.Join(os.TempDir(), "shoal", "control.sock")}},
		{name: "socket flag", socket: "/s.sock", want: client.Config{SocketPath: "/s.sock"}},
		{name: "host flag list", host: "a:1, b:2,", want: client.Config{Addrs: []string{"a:1", "b:2"}}},
		{name: "SHOAL_SOCKET", vars: map[string]string{"SHOAL_SOCKET": "/e.sock"}, want: client.Config{SocketPath: "/e.sock"}},
		{name: "SHOAL_HOST", vars: map[string]string{"SHOAL_HOST": "h:1"}, want: client.Config{Addrs: []string{"h:1"}}},
		{name: "flag beats env", host: "f:1", vars: map[string]string{"SHOAL_SOCKET": "/e.sock"}, want: client.Config{Addrs: []string{"f:1"}}},
		{name: "both flags", socket: "/s", host: "h:1", usage: true},
		{name: "both env", vars: map[string]string{"SHOAL_SOCKET": "/e.sock", "SHOAL_HOST": "h:1"}, usage: true},
		{name: "host of commas", host: ",,", usage: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _, _ := testEnv(tt.vars, "")
			e.euid = tt.euid
			if tt.home != nil {
				e.homeDir = tt.home
			}
			a := &app{env: e, conn: connFlags{socket: tt.socket, host: tt.host}}
			got, err := a.clientConfig()
			if tt.usage {
				if exitCode(err) != exitUsage {
					t.Fatalf("got %v, %v; want a usage error", got, err)
				}
				return
			}
			if (err == nil && len(got.Addrs) > 0) != (got.TLS != nil) {
				t.Fatalf("TLS %v for addresses %v: remote use needs a client certificate, the socket none", got.TLS, got.Addrs)
			}
			got.TLS = nil
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseSpec(t *testing.T) {
	file := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(file, []byte("{\n  \"replicas\": 3\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte("{\n  \"replicas\": 3,\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, value, stdin string
		want               string
		err                string
	}{
		{name: "inline", value: `{"replicas": 3}`, want: `{"replicas":3}`},
		{name: "inline scalar", value: `42`, want: `42`},
		{name: "file", value: "@" + file, want: `{"replicas":3}`},
		{name: "stdin", value: "-", stdin: `[1, 2]`, want: `[1,2]`},
		{name: "bad inline", value: `{"a":}`, err: "the spec in --spec is not valid JSON: invalid character '}' looking for beginning of value (line 1, column 6)"},
		{name: "bad file", value: "@" + bad, err: "is not valid JSON: invalid character '}' looking for beginning of object key string (line 3, column 1)"},
		{name: "truncated", value: `{"a": [1`, err: "unexpected end of JSON input"},
		{name: "two values", value: `{} {}`, err: "not valid JSON"},
		{name: "empty stdin", value: "-", stdin: "\n", err: "the spec in standard input is empty"},
		{name: "missing file", value: "@/nonexistent.json", err: "no such file"},
		{name: "no file name", value: "@", err: "needs a file name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSpec(tt.value, strings.NewReader(tt.stdin))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || exitCode(err) != exitUsage {
					t.Fatalf("got %q, %v; want a usage error saying %q", got, err, tt.err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseLabels(t *testing.T) {
	tests := []struct {
		in   []string
		want map[string]string
		bad  bool
	}{
		{in: nil, want: nil},
		{in: []string{"a=1", "b=x=y", "c="}, want: map[string]string{"a": "1", "b": "x=y", "c": ""}},
		{in: []string{"a=1", "a=1"}, want: map[string]string{"a": "1"}},
		{in: []string{"a=1", "a=2"}, bad: true},
		{in: []string{"=1"}, bad: true},
		{in: []string{"a"}, bad: true},
	}
	for _, tt := range tests {
		got, err := parseLabels("label", tt.in)
		if tt.bad {
			if exitCode(err) != exitUsage {
				t.Errorf("parseLabels(%q) = %v, %v; want a usage error", tt.in, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseLabels(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}
