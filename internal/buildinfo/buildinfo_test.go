package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	tests := []struct {
		name      string
		bi        debug.BuildInfo
		want      Info
		wantShort string
	}{
		{
			name: "release",
			bi: debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.time", Value: "2026-11-01T10:00:00Z"},
				{Key: "vcs.modified", Value: "false"}}},
			want:      Info{Version: "v1.2.3", Commit: "0123456789abcdef0123", CommitTime: "2026-11-01T10:00:00Z", GoVersion: "go1.26.8"},
			wantShort: "0123456789ab",
		},
		{
			name: "modified work tree",
			bi: debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
				{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}},
			want:      Info{Version: "(devel)", Commit: "abc", Modified: true, GoVersion: "go1.26.8"},
			wantShort: "abc-dirty",
		},
		{
			name:      "no VCS, no version",
			bi:        debug.BuildInfo{GoVersion: "go1.26.8"},
			want:      Info{Version: "(devel)", GoVersion: "go1.26.8"},
			wantShort: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromBuildInfo(&tt.bi)
			if got != tt.want {
				t.Errorf("fromBuildInfo = %+v, want %+v", got, tt.want)
			}
			if s := got.ShortCommit(); s != tt.wantShort {
				t.Errorf("ShortCommit = %q, want %q", s, tt.wantShort)
			}
		})
	}
}

func TestReadNamesTheRunningGo(t *testing.T) {
	if got := Read().GoVersion; got != runtime.Version() {
		t.Errorf("Read().GoVersion = %q, want %q", got, runtime.Version())
	}
}
