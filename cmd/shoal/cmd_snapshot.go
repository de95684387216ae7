package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-project/shoal/backup"
	"github.com/shoal-project/shoal/bench"
	"github.com/shoal-project/shoal/client"
	"github.com/shoal-project/shoal/manager"
)

func newSnapshotCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot",
		Short: "Back up the whole store to a file, inspect a backup, restore one",
		Long: `Back up the whole store to a file, inspect a backup, restore one.

A backup is a point-in-time copy of every object, the cluster object
included, which holds the cluster's root CA key and its join token: keep it
as a secret, or encrypt it with --key-file. 'restore' prepares a state
directory from which 'shoal manager' founds a one-manager cluster holding
every object of the backup, on any host and address; the other managers
then join it with the join token.`,
	}
	cmd.AddCommand(newSnapshotSaveCommand(a), newSnapshotInspectCommand(a), newSnapshotRestoreCommand(a))
	return cmd
}

func newSnapshotSaveCommand(a *app) *cobra.Command {
	var keyFile, consistency string
	var force bool
	cmd := &cobra.Command{
		Use:   "save FILE",
		Short: "Save a backup of the whole store to FILE",
		Long: `Save a point-in-time copy of the whole store to FILE, through any manager: it
first confirms with the leader that its store holds every write acknowledged
before the command started (a linearizable read), then copies it.
--consistency serializable takes the called manager's copy as it is, without
the leader: for the survivor of a cluster that lost its quorum (it may lack
the last writes).

The file is written beside FILE, checked whole, synced, and only then named
FILE (mode 0600): FILE is never half written. An existing FILE is kept unless
--force. With --key-file the objects are encrypted (AES-256-GCM, with a key
derived from the key file's secret); the same key file is needed to inspect
the objects and to restore. The command prints the objects, the size, the
Raft index and the SHA-256 of the file (as sha256sum prints it).

Taking a backup needs an admin certificate or a manager's control socket: it
holds the cluster's root CA key and join token. --timeout bounds the start
(connecting, the read); the copy itself takes as long as it needs (Ctrl-C
stops it, and writes nothing).`,
		Example: `  shoal snapshot save /backups/shoal-$(date +%F).backup --socket /var/lib/shoal/control.sock
  shoal snapshot save cluster.backup --host m1:2377 --key-file backup.key`,
		Args: exactArgs(1, "a FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := args[0]
			read, err := parseConsistency(consistency)
			if err != nil {
				return err
			}
			key, err := loadKey(keyFile)
			if err != nil {
				return err
			}
			if err := backup.CheckTarget(path, force); err != nil {
				return usageError{err}
			}
			ctx, stop := a.signals(cmd.Context())
			defer stop()
			c, _, done, err := a.connect(ctx)
			if err != nil {
				return err
			}
			defer done()
			b, err := c.SaveBackup(ctx, a.conn.timeout, client.WithConsistency(read))
			if err != nil {
				return err
			}
			defer b.Close()
			h := b.Header()
			if read == client.Serializable {
				a.warn([]string{fmt.Sprintf("--consistency serializable: this is manager %s's own copy, at Raft index %d, as it was; it may lack writes the cluster acknowledged", h.GetNodeId(), h.GetRaftIndex())})
			}
			var progress bench.Progress // a bar on a terminal, nothing in scripts
			if isTerminal(a.stderr) {
				progress = bench.Progress{W: a.stderr, Terminal: true}
			}
			stopProgress := progress.Start(func(elapsed time.Duration, _ bool) string {
				got, total := b.Received(), h.GetBodyBytes()
				return bench.Bar("receiving", float64(got)/float64(max(total, 1)),
					fmt.Sprintf("%s of %s, %s", byteCount(got), byteCount(int64(total)), elapsed.Round(100*time.Millisecond)))
			})
			info, err := backup.Save(path, force, h, b, key)
			stopProgress()
			switch {
			case err != nil && ctx.Err() != nil:
				return fmt.Errorf("interrupted: nothing was written to %s", path)
			case errors.Is(err, backup.ErrExists):
				return usageError{err}
			case err != nil:
				return err
			}
			encrypted := ""
			if key != nil {
				encrypted = ", encrypted"
			}
			fmt.Fprintf(a.stdout, "saved %s: %s at Raft index %d, %d bytes%s\n", path, objectsLine(info), h.GetRaftIndex(),
				info.Size, encrypted)
			fmt.Fprintf(a.stdout, "sha256 %s\n", info.SHA256)
			if key == nil {
				a.warn([]string{"the backup holds the cluster's root CA key and join token in clear: keep it as a secret (or encrypt it with --key-file)"})
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "encrypt the objects with the secret in this file (at least 16 bytes; make one: head -c 32 /dev/urandom | base64 > FILE)")
	cmd.Flags().StringVar(&consistency, "consistency", "linearizable",
		"linearizable (every acknowledged write is in it) or serializable (the called manager's copy, without a leader)")
	_ = cmd.RegisterFlagCompletionFunc("consistency", cobra.FixedCompletions(
		[]string{"linearizable", "serializable"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.Flags().BoolVar(&force, "force", false, "replace FILE if it exists")
	a.addConnFlags(cmd, false)
	return cmd
}

func newSnapshotInspectCommand(a *app) *cobra.Command {
	var keyFile, output string
	cmd := &cobra.Command{
		Use:   "inspect FILE",
		Short: "Describe a backup and check it whole",
		Long: `Describe a backup: its format, the cluster and manager it was taken from,
when, by which shoal version, the Raft index, the objects per kind, the
size, the SHA-256 and whether it is encrypted. It checks the file whole: the
checksum always, and every object when they can be read (not encrypted, or
with --key-file). Exit code 0 when it is sound, 2 with the reason when it is
not (damaged, truncated, not a backup, a wrong key).`,
		Args: exactArgs(1, "a FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFormat(output)
			if err != nil {
				return err
			}
			key, err := loadKey(keyFile)
			if err != nil {
				return err
			}
			info, err := backup.CheckFile(args[0], key)
			if err != nil {
				return backupError(args[0], err)
			}
			return writeBackupInfo(a.stdout, f, args[0], info)
		},
	}
	cmd.Flags().StringVar(&keyFile, "key-file", "", "the key file an encrypted backup was saved with, to check its objects too")
	addOutputFlag(cmd, &output, formatTable)
	return cmd
}

func newSnapshotRestoreCommand(a *app) *cobra.Command {
	var keyFile, stateDir string
	cmd := &cobra.Command{
		Use:   "restore FILE --state-dir DIR",
		Short: "Prepare a state directory to found a cluster from a backup",
		Long: `Prepare the state directory DIR (new, or empty) so that 'shoal manager
--state-dir DIR' founds a one-manager cluster holding every object of the
backup FILE, on any host and address.

The backup is checked whole first: its SHA-256, the decryption
(--key-file), and every object as a manager checks a snapshot it receives. A
damaged or truncated backup is refused and nothing is written. Then DIR
receives the backup, decrypted, as DIR/restore.backup (mode 0600), and
nothing else. The manager's first start on DIR founds the cluster from it:
it keeps the cluster's ID, root CA, client certificates, revocations and
join token, gets a new node ID, and gives new writes versions above every
restored object's. restore.backup is removed once the cluster holds its
state. The other managers then join with the join token; rotate it once
they have ('shoal cluster join-token manager --rotate').`,
		Example: `  shoal snapshot restore /backups/shoal-2025-06-01.backup --state-dir /var/lib/shoal
  shoal manager --state-dir /var/lib/shoal --listen-addr 0.0.0.0:2377`,
		Args: exactArgs(1, "a FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if stateDir == "" {
				return usagef("--state-dir is required: the new or empty directory a manager will found the cluster from")
			}
			key, err := loadKey(keyFile)
			if err != nil {
				return err
			}
			info, err := manager.PrepareRestore(stateDir, args[0], key)
			if errors.Is(err, manager.ErrBadConfig) {
				return usageError{err}
			}
			if err != nil {
				return backupError(args[0], err)
			}
			dir, err := filepath.Abs(stateDir)
			if err != nil {
				dir = stateDir
			}
			h := info.Header
			fmt.Fprintf(a.stdout, "restored %s into %s: %s of cluster %s at Raft index %d, taken by %s at %s\n",
				args[0], dir, objectsLine(info), h.GetClusterId(), h.GetRaftIndex(), h.GetNodeId(),
				h.GetCreatedAt().AsTime().UTC().Format(time.RFC3339))
			fmt.Fprintf(a.stdout, "start the manager that founds the cluster from it, on any address:\n  shoal manager --state-dir %s --listen-addr ADDR\n", dir)
			fmt.Fprintln(a.stdout, "then join the other managers to it with the join token ('shoal cluster join-token manager'), and rotate the token (--rotate)")
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "the new or empty state directory to prepare (required)")
	cmd.Flags().StringVar(&keyFile, "key-file", "", "the key file an encrypted backup was saved with")
	return cmd
}

// parseConsistency parses a --consistency flag.
func parseConsistency(s string) (client.Consistency, error) {
	switch s {
	case "linearizable":
		return client.Linearizable, nil
	case "serializable":
		return client.Serializable, nil
	}
	return 0, usagef("--consistency %q: choose linearizable or serializable", s)
}

// loadKey reads --key-file, if given.
func loadKey(path string) (*backup.Key, error) {
	if path == "" {
		return nil, nil
	}
	k, err := backup.LoadKeyFile(path)
	if err != nil {
		return nil, usageError{err}
	}
	return k, nil
}

// backupError is the error of a backup file that cannot be used: bad
// input (missing, or not a sound backup), unless reading it failed.
func backupError(path string, err error) error {
	err = fmt.Errorf("backup %s: %w", path, err)
	if errors.Is(err, backup.ErrInvalid) || errors.Is(err, fs.ErrNotExist) {
		return usageError{err}
	}
	return err
}

// byteCount is n bytes for people: 812 bytes, 3.4 MiB.
func byteCount(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	value, prefix := float64(n)/unit, 0
	for value >= unit && prefix < 3 {
		value /= unit
		prefix++
	}
	return fmt.Sprintf("%.1f %ciB", value, "KMGT"[prefix])
}

// objectsLine counts a backup's objects: "303 objects (1 cluster, ...)".
func objectsLine(info *backup.Info) string {
	n := info.Objects()
	return fmt.Sprintf("%d %s (%s)", n, plural(int(n), "object", "objects"), backup.CountsString(info.Header.GetObjects()))
}
