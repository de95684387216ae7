package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

// testEnv is an env with buffers for the streams and a fixed environment.
func testEnv(vars map[string]string, stdin string) (env, *bytes.Buffer, *bytes.Buffer) {
	var out, errOut bytes.Buffer
	return env{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut,
		getenv: func(k string) string {
			if v, ok := vars[k]; ok || k != "XDG_CONFIG_HOME" {
				return v
			}
			return testConfigHome
		},
		euid:    1000,
		homeDir: func() (string, error) { return "/home/ada", nil },
		signals: func(ctx context.Context) (context.Context, context.CancelFunc) { return context.WithCancel(ctx) },
	}, &out, &errOut
}

func noHome() (string, error) { return "", errors.New("no home") }

// runCLI runs args and returns the exit code, stdout and stderr.
func runCLI(t *testing.T, vars map[string]string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	e, out, errOut := testEnv(vars, stdin)
	code := run(args, e)
	return code, out.String(), errOut.String()
}
