// Command etcd is etcd's server, built from the module version this
// module requires, for the side-by-side comparison.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
