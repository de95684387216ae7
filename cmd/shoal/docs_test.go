package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs/design.md names, under Defaults, the flags of shoal manager that
// set Raft's defaults; each must be one.
func TestDesignDocNamesRealManagerFlags(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "design.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "## Defaults")
	if start < 0 {
		t.Fatal("docs/design.md has no Defaults section")
	}
	section := doc[start+len("## Defaults"):]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	flags := regexp.MustCompile("`--([a-z-]+)`").FindAllStringSubmatch(section, -1)
	if len(flags) == 0 {
		t.Fatal("the Defaults section names no flag")
	}
	e, _, _ := testEnv(nil, "")
	cmd := newManagerCommand(&app{env: e})
	for _, f := range flags {
		if cmd.Flags().Lookup(f[1]) == nil {
			t.Errorf("docs/design.md names --%s, which shoal manager does not have", f[1])
		}
	}
}
