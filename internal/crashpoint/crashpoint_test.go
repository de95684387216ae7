package crashpoint_test

import (
	"testing"

	"github.com/shoal-project/shoal/internal/crashpoint"
)

// Without the build tag Hit must do nothing, whatever the environment says.
func TestHitWithoutTagDoesNothing(t *testing.T) {
	if crashpoint.Enabled {
		t.Skip("built with -tags crashpoints")
	}
	t.Setenv(crashpoint.EnvVar, crashpoint.WALSaveAfter)
	for _, name := range crashpoint.Names {
		crashpoint.Hit(name)
	}
}
