package client

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// tempSocketDir returns a short directory for a unix socket: t.TempDir()
// can exceed the 107-byte limit on socket paths.
func tempSocketDir(t *testing.T) (string, error) {
	dir, err := os.MkdirTemp("", "shoal-client-")
	if err != nil {
		return "", err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir, nil
}
