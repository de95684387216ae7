package ca

import (
	"testing"

	"go.uber.org/goleak"
)

// Every test stops the servers, connections and renewers it started; a
// goroutine left behind fails the package.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
