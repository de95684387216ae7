//go:build crashpoints

package crashpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Enabled reports whether this binary has crash points.
const Enabled = true

var (
	armed string // the point named by EnvVar, "" when none
	after int64  // crash on this hit of armed
	hits  atomic.Int64
)

func init() {
	spec := os.Getenv(EnvVar)
	if spec == "" {
		return
	}
	name, count, hasCount := strings.Cut(spec, ":")
	n := int64(1)
	if hasCount {
		var err error
		if n, err = strconv.ParseInt(count, 10, 64); err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "crashpoint: %s=%q: the count after ':' must be a positive integer\n", EnvVar, spec)
			os.Exit(2)
		}
	}
	known := false
	for _, p := range Names {
		known = known || p == name
	}
	if !known {
		fmt.Fprintf(os.Stderr, "crashpoint: %s=%q: unknown point; known: %s\n", EnvVar, spec, strings.Join(Names, ", "))
		os.Exit(2)
	}
	armed, after = name, n
}

// Hit kills the process with SIGKILL if name is the armed point and this is
// the hit it was armed for.
func Hit(name string) {
	if armed == "" || name != armed {
		return
	}
	if hits.Add(1) != after {
		return
	}
	fmt.Fprintf(os.Stderr, "crashpoint: %s reached (hit %d): killing this process\n", name, after)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught; wait for it to land
}
