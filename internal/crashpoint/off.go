//go:build !crashpoints

package crashpoint

// Hit does nothing: this binary was built without crash points.
func Hit(string) {}

// Enabled reports whether this binary has crash points.
const Enabled = false
