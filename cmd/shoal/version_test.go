package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	code, out, errOut := runCLI(t, nil, "", "version")
	if code != exitOK {
		t.Fatalf("version: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"shoal ", "commit: ", "go: " + runtime.Version()} {
		if !strings.Contains(out, want) {
			t.Errorf("version prints %q, without %q", out, want)
		}
	}

	code, out, errOut = runCLI(t, nil, "", "version", "-o", "json")
	if code != exitOK {
		t.Fatalf("version -o json: exit %d: %s", code, errOut)
	}
	var got struct {
		Version   string `json:"version"`
		GoVersion string `json:"go_version"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("version -o json: %v\n%s", err, out)
	}
	if got.Version == "" || got.GoVersion != runtime.Version() {
		t.Errorf("version -o json = %+v, want a version and Go %s", got, runtime.Version())
	}

	if code, _, errOut = runCLI(t, nil, "", "version", "extra"); code != exitUsage {
		t.Errorf("version extra: exit %d, want %d: %s", code, exitUsage, errOut)
	}
}
