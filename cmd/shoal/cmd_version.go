package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/internal/buildinfo"
)

func newVersionCommand(a *app) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the version, commit and Go version of this shoal binary",
		Long: `Show which build of shoal this is: its module version ("(devel)" for a build
from a work tree), the commit it was built from (with "-dirty" when the work
tree had uncommitted changes) and the Go version that built it, as the Go
toolchain recorded them in the binary. A manager logs the same at start.`,
		Args: exactArgs(0, "no argument"),
		RunE: func(*cobra.Command, []string) error {
			f, err := parseFormat(output)
			if err != nil {
				return err
			}
			info := buildinfo.Read()
			if f != formatTable {
				return writeStructured(a.stdout, f, info)
			}
			commit := info.ShortCommit()
			if commit == "" {
				commit = "unknown"
			}
			_, err = fmt.Fprintf(a.stdout, "shoal %s\ncommit: %s\ngo: %s\n", info.Version, commit, info.GoVersion)
			return err
		},
	}
	addOutputFlag(cmd, &output, formatTable)
	return cmd
}
