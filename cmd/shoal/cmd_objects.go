package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/api"
	"github.com/shoal-project/shoal/client"
)

// exactArgs is cobra.ExactArgs with a message that names the arguments.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return fmt.Errorf("%s needs %s, got %d argument(s)", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}

// readFlags are the flags of the commands that read objects.
type readFlags struct {
	output      string
	consistency string
}

func (r *readFlags) add(cmd *cobra.Command) {
	addOutputFlag(cmd, &r.output, formatTable)
	cmd.Flags().StringVar(&r.consistency, "consistency", "linearizable",
		"linearizable (sees every acknowledged write) or serializable (this manager's copy: faster, may be stale)")
	_ = cmd.RegisterFlagCompletionFunc("consistency", cobra.FixedCompletions(
		[]string{"linearizable", "serializable"}, cobra.ShellCompDirectiveNoFileComp))
}

func (r *readFlags) parse() (format, client.ReadOption, error) {
	f, err := parseFormat(r.output)
	if err != nil {
		return "", nil, err
	}
	switch r.consistency {
	case "linearizable":
		return f, client.WithConsistency(client.Linearizable), nil
	case "serializable":
		return f, client.WithConsistency(client.Serializable), nil
	}
	return "", nil, usagef("--consistency %q: choose linearizable or serializable", r.consistency)
}

func newCreateCommand(a *app) *cobra.Command {
	var labels []string
	var spec, output string
	cmd := &cobra.Command{
		Use:   "create KIND NAME [--label k=v]... [--spec JSON|@FILE|-]",
		Short: "Create an object",
		Example: `  shoal create service web --label tier=front --spec '{"replicas": 3}'
  shoal create service api --spec @api.json
  echo '{"replicas": 1}' | shoal create service db --spec -`,
		Args: exactArgs(2, "a KIND and a NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			obj := &api.Object{Kind: args[0], Name: args[1]}
			var err error
			if obj.Labels, err = parseLabels("label", labels); err != nil {
				return err
			}
			if cmd.Flags().Changed("spec") {
				if obj.Spec, err = parseSpec(spec, a.stdin); err != nil {
					return err
				}
			}
			f, err := parseWriteFormat(output)
			if err != nil {
				return err
			}
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				created, err := c.Create(ctx, obj)
				if err != nil {
					return err
				}
				if f != "" {
					return writeObject(a.stdout, f, created)
				}
				_, err = fmt.Fprintf(a.stdout, "created %s/%s (id %s, version %d)\n", created.GetKind(), created.GetName(), created.GetId(), created.GetVersion())
				return err
			})
		},
	}
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "label key=value (repeatable)")
	cmd.Flags().StringVar(&spec, "spec", "", "the spec: JSON, @FILE to read a file, - to read standard input")
	cmd.Flags().StringVarP(&output, "output", "o", "", "print the created object as table, json or yaml")
	a.addConnFlags(cmd, false)
	return cmd
}

// parseWriteFormat reads the -o of a write command: empty prints one line.
func parseWriteFormat(s string) (format, error) {
	if s == "" {
		return "", nil
	}
	return parseFormat(s)
}

func newGetCommand(a *app) *cobra.Command {
	var rf readFlags
	cmd := &cobra.Command{
		Use:     "get KIND NAME|ID",
		Short:   "Show one object",
		Example: "  shoal get service web\n  shoal get service web -o json | jq .spec",
		Args:    exactArgs(2, "a KIND and a NAME or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, consistency, err := rf.parse()
			if err != nil {
				return err
			}
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				obj, err := c.Get(ctx, args[0], args[1], consistency)
				if err != nil {
					return err
				}
				return writeObject(a.stdout, f, obj)
			})
		},
	}
	rf.add(cmd)
	a.addConnFlags(cmd, false)
	return cmd
}

func newListCommand(a *app) *cobra.Command {
	var rf readFlags
	var labels []string
	var prefix string
	cmd := &cobra.Command{
		Use:     "ls KIND [--label k=v]... [--prefix P]",
		Aliases: []string{"list"},
		Short:   "List the objects of a kind",
		Example: "  shoal ls service\n  shoal ls service --label tier=front -o json",
		Args:    exactArgs(1, "a KIND"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, consistency, err := rf.parse()
			if err != nil {
				return err
			}
			sel := client.Selector{Kind: args[0], NamePrefix: prefix}
			if sel.Labels, err = parseLabels("label", labels); err != nil {
				return err
			}
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				// Printed as it arrives: a list of any length is held one
				// page at a time (except for -o yaml).
				lw := &listWriter{w: a.stdout, f: f}
				if err := c.ListPages(ctx, sel, lw.page, consistency); err != nil {
					return err
				}
				return lw.end()
			})
		},
	}
	rf.add(cmd)
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "keep objects with label key=value (repeatable; all must match)")
	cmd.Flags().StringVar(&prefix, "prefix", "", "keep objects whose name starts with this")
	a.addConnFlags(cmd, false)
	return cmd
}

func newUpdateCommand(a *app) *cobra.Command {
	var labels, removeLabels []string
	var spec, output string
	var ifVersion uint64
	cmd := &cobra.Command{
		Use:   "update KIND NAME|ID [--spec ...] [--label k=v]... [--remove-label k]... [--if-version N]",
		Short: "Change an object's spec or labels, all at once",
		Example: `  shoal update service web --spec '{"replicas": 5}'
  shoal update service web --label canary=true --remove-label tier --if-version 12`,
		Args: exactArgs(2, "a KIND and a NAME or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			u := client.Update{RemoveLabels: removeLabels, ExpectedVersion: ifVersion}
			var err error
			if u.SetLabels, err = parseLabels("label", labels); err != nil {
				return err
			}
			for _, k := range removeLabels {
				if _, both := u.SetLabels[k]; both {
					return usagef("label %q is both set and removed; choose one", k)
				}
			}
			if cmd.Flags().Changed("spec") {
				if u.Spec, err = parseSpec(spec, a.stdin); err != nil {
					return err
				}
			}
			if u.Spec == nil && len(u.SetLabels) == 0 && len(u.RemoveLabels) == 0 {
				return usagef("nothing to update: give --spec, --label or --remove-label")
			}
			f, err := parseWriteFormat(output)
			if err != nil {
				return err
			}
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				updated, err := c.Update(ctx, args[0], args[1], u)
				if err != nil {
					return err
				}
				if f != "" {
					return writeObject(a.stdout, f, updated)
				}
				_, err = fmt.Fprintf(a.stdout, "updated %s/%s (version %d)\n", updated.GetKind(), updated.GetName(), updated.GetVersion())
				return err
			})
		},
	}
	cmd.Flags().StringVar(&spec, "spec", "", "replace the spec: JSON, @FILE to read a file, - to read standard input")
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "set label key=value (repeatable)")
	cmd.Flags().StringArrayVar(&removeLabels, "remove-label", nil, "remove label key (repeatable)")
	cmd.Flags().Uint64Var(&ifVersion, "if-version", 0, "change it only if its version is N (exit code 4 otherwise)")
	cmd.Flags().StringVarP(&output, "output", "o", "", "print the updated object as table, json or yaml")
	a.addConnFlags(cmd, false)
	return cmd
}

func newRemoveCommand(a *app) *cobra.Command {
	var ifVersion uint64
	cmd := &cobra.Command{
		Use:     "rm KIND NAME|ID [--if-version N]",
		Aliases: []string{"delete"},
		Short:   "Delete an object",
		Example: "  shoal rm service web\n  shoal rm service web --if-version 12",
		Args:    exactArgs(2, "a KIND and a NAME or ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withClient(cmd.Context(), func(ctx context.Context, c *client.Client) error {
				version, err := c.Delete(ctx, args[0], args[1], ifVersion)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "deleted %s/%s (version %d)\n", args[0], args[1], version)
				return err
			})
		},
	}
	cmd.Flags().Uint64Var(&ifVersion, "if-version", 0, "delete it only if its version is N (exit code 4 otherwise)")
	a.addConnFlags(cmd, false)
	return cmd
}
