package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/client"
)

func newWatchCommand(a *app) *cobra.Command {
	var labels []string
	var prefix, output string
	var fromVersion uint64
	cmd := &cobra.Command{
		Use:   "watch [KIND] [--prefix P] [--label k=v]... [--from-version N]",
		Short: "Print changes to objects as they happen, until Ctrl-C",
		Long: `Print each change (create, update, delete) to the matching objects, in
version order, until Ctrl-C. Without KIND, every kind is watched.

--from-version N replays the changes after version N first (the version
'shoal ls -o json' prints), so a list followed by a watch misses nothing.
When the manager stops, the watch resumes on the next --host address (or
the same manager) from the last version printed, within --timeout.

With -o json, each change is one line of JSON: {"type", "version", "object"}.`,
		Example: "  shoal watch service\n  shoal watch --from-version 42 -o json",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return fmt.Errorf("%s takes at most one KIND, got %d arguments", cmd.CommandPath(), len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFormat(output)
			if err != nil {
				return err
			}
			sel := client.Selector{NamePrefix: prefix}
			if len(args) == 1 {
				sel.Kind = args[0]
			}
			if sel.Labels, err = parseLabels("label", labels); err != nil {
				return err
			}
			ctx, stop := a.signals(cmd.Context())
			defer stop()
			c, _, done, err := a.connect(ctx)
			if err != nil {
				return err
			}
			defer done()
			err = a.watch(ctx, c, sel, fromVersion, f)
			if ctx.Err() != nil {
				return nil // Ctrl-C: the normal end
			}
			return err
		},
	}
	addOutputFlag(cmd, &output, formatTable)
	cmd.Flags().StringArrayVarP(&labels, "label", "l", nil, "watch objects with label key=value (repeatable; all must match)")
	cmd.Flags().StringVar(&prefix, "prefix", "", "watch objects whose name starts with this")
	cmd.Flags().Uint64Var(&fromVersion, "from-version", 0, "replay the changes after this version first (0: from now)")
	a.addConnFlags(cmd, false)
	return cmd
}

// watch prints events until ctx ends or the watch fails for good. A watch
// ended by the manager (shutdown, lost connection) is started again from
// the last version printed, until --timeout passes without success.
func (a *app) watch(ctx context.Context, c *client.Client, sel client.Selector, from uint64, f format) error {
	w, err := c.Watch(ctx, sel, from)
	if err != nil {
		return err
	}
	last := w.StartVersion()
	fmt.Fprintf(a.stderr, "watching %s after version %d; Ctrl-C stops\n", describeSelector(sel), last)
	for {
		for ev, err := range w.Events() {
			if err != nil {
				w.Close()
				if !client.IsUnavailable(err) || ctx.Err() != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "shoal: the watch was interrupted (%s); resuming after version %d\n", errorMessage(err), last)
				break
			}
			if err := writeEvent(a.stdout, f, ev); err != nil {
				return err
			}
			last = ev.GetVersion()
		}
		if w, err = a.resumeWatch(ctx, c, sel, last); err != nil {
			return err
		}
	}
}

// resumeWatch starts the watch again after version last, retrying while
// the cluster is unavailable, for up to --timeout.
func (a *app) resumeWatch(ctx context.Context, c *client.Client, sel client.Selector, last uint64) (*client.Watcher, error) {
	deadline := time.Now().Add(a.conn.timeout)
	backoff := 50 * time.Millisecond
	for {
		w, err := c.Watch(ctx, sel, last)
		if err == nil || !client.IsUnavailable(err) || time.Now().After(deadline) {
			return w, err
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		backoff = min(2*backoff, time.Second)
	}
}

func describeSelector(sel client.Selector) string {
	s := "every kind"
	if sel.Kind != "" {
		s = sel.Kind
	}
	if sel.NamePrefix != "" {
		s += fmt.Sprintf(" named %s*", sel.NamePrefix)
	}
	if len(sel.Labels) > 0 {
		s += " with labels " + labelString(sel.Labels)
	}
	return s
}
