package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keptCluster lays out dir as a cluster of n managers kept by shoal dev.
func keptCluster(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	addrs := make([]string, n)
	for i := range n {
		addrs[i] = fmt.Sprintf(`"127.0.0.1:%d"`, 40000+i)
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("manager-%d", i+1), "raft"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	state := `{"addrs": [` + strings.Join(addrs, ",") + `]}`
	if err := os.WriteFile(filepath.Join(dir, devStateFile), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPlanDevRestartsAKeptClusterWithItsOwnSize(t *testing.T) {
	five := keptCluster(t, 5)
	tests := []struct {
		name        string
		dir         string
		df          devFlags
		wantRestart bool
		wantN       int
		wantErr     string
	}{
		{"empty directory: a new cluster", t.TempDir(), devFlags{managers: 3}, false, 0, ""},
		{"kept cluster, no --managers", five, devFlags{managers: 3}, true, 5, ""},
		{"kept cluster, the same --managers", five, devFlags{managers: 5, managersSet: true}, true, 5, ""},
		{"kept cluster, another --managers", five, devFlags{managers: 3, managersSet: true}, false, 0, "holds a kept cluster of 5 managers, not 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, restart, err := planDev(tt.dir, tt.df)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || exitCode(err) != exitUsage {
					t.Fatalf("planDev: %v (exit %d), want a usage error with %q", err, exitCode(err), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if restart != tt.wantRestart || len(st.Addrs) != tt.wantN {
				t.Errorf("planDev: restart %v with %d managers, want %v with %d", restart, len(st.Addrs), tt.wantRestart, tt.wantN)
			}
		})
	}
}
