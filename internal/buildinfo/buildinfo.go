// Package buildinfo says which build of shoal is running: the module
// version, the VCS commit and the Go version, as the Go toolchain recorded
// them in the binary (runtime/debug.ReadBuildInfo). It has no state and
// imports nothing of shoal's.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Info describes one build.
type Info struct {
	// Version is the module version ("v1.2.3"), or "(devel)" for a build
	// from a work tree.
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from, empty when the
	// toolchain recorded none (go run, a build outside a repository).
	Commit string `json:"commit,omitempty"`
	// CommitTime is the time of that revision, RFC 3339.
	CommitTime string `json:"commit_time,omitempty"`
	// Modified reports a work tree with uncommitted changes.
	Modified bool `json:"modified,omitempty"`
	// GoVersion is the Go release that built the binary.
	GoVersion string `json:"go_version"`
}

// Read returns the running binary's Info.
func Read() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(unknown)", GoVersion: runtime.Version()}
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	info := Info{Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if info.Version == "" {
		info.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Commit = s.Value
		case "vcs.time":
			info.CommitTime = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// ShortCommit is the commit's first 12 characters, with "-dirty" for a
// modified work tree; empty without a commit.
func (i Info) ShortCommit() string {
	c := i.Commit
	if len(c) > 12 {
		c = c[:12]
	}
	if c != "" && i.Modified {
		c += "-dirty"
	}
	return c
}
