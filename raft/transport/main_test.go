package transport

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops what it started; a goroutine left behind by a transport,
// a peer or a server fails the package.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
