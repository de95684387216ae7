// Command shoal runs a shoal manager (shoal manager), a local development
// cluster (shoal dev), and operates a cluster through its Control API (the
// other commands). See docs/cli.md.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], newEnv()))
}
