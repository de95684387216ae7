package robustness

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	flagRuns     = flag.Int("runs", envInt("SHOAL_ROBUSTNESS_RUNS", 0), "runs of the long profile (TestLongProfile); 0 skips it")
	flagSeed     = flag.Int64("seed", int64(envInt("SHOAL_ROBUSTNESS_SEED", 0)), "seed of the runs; 0 picks one at random (always logged)")
	flagDuration = flag.Duration("run-duration", envDuration("SHOAL_ROBUSTNESS_DURATION", 0), "traffic time of each run (default: 18s short, 30s long)")
	flagOut      = flag.String("out", os.Getenv("SHOAL_ROBUSTNESS_OUT"), "directory for the artifacts of failed runs (default: under the temporary directory)")
	flagKeep     = flag.Bool("keep", false, "keep the artifacts of passing runs too")
	flagFaults   = flag.String("faults", os.Getenv("SHOAL_ROBUSTNESS_FAULTS"), "comma-separated faults every run of the long profile injects, instead of ones drawn from the seed")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	binary.cleanup()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// builtBinary is the shoal binary under test, built with -tags
// crashpoints on first use.
type builtBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

var binary builtBinary

func shoalBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		binary.dir, binary.err = os.MkdirTemp("", "shoal-robustness-bin-")
		if binary.err != nil {
			return
		}
		binary.path = filepath.Join(binary.dir, "shoal")
		build := exec.Command("go", "build", "-tags", "crashpoints", "-o", binary.path, "./cmd/shoal")
		build.Dir = ".."
		if out, err := build.CombinedOutput(); err != nil {
			binary.err = fmt.Errorf("building shoal -tags crashpoints: %v\n%s", err, out)
		}
	})
	if binary.err != nil {
		t.Fatal(binary.err)
	}
	return binary.path
}

func (b *builtBinary) cleanup() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}
