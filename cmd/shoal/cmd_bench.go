package main

import (
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/shoal-project/shoal/bench"
	"github.com/shoal-project/shoal/client"
)

// benchFlags are the flags of every bench command.
type benchFlags struct {
	clients     int
	conns       int
	total       int
	duration    time.Duration
	valSize     int
	keySpace    int
	kind        string
	prefix      string
	skipFill    bool
	output      string
	consistency string
	txnOps      int
	watchers    int
}

const benchLong = `Measure the cluster like etcd's benchmark tool: --clients callers, each with
one request in flight, share --conns gRPC connections (spread over the
--host addresses, connection i starting at the i-th), for --total operations
or for --duration. While it runs, a progress bar is drawn on standard error
(a line every 10 s when standard error is not a terminal); at the end it
prints the throughput, the latency percentiles (p50, p90, p99, p99.9, max),
a histogram and the errors by gRPC code, or all of it as JSON with -o json.

Objects are of kind --kind (bench), their specs are --val-size bytes (a JSON
string). Names are --prefix (bench-) and a number below --key-space; with
--key-space 0, every write creates a new name (the prefix, a random tag of
the run and a sequence number), so the store grows by one object per put.
With a key space, the names that do not exist yet are first created (not
measured; --skip-fill skips it), and then every put updates one drawn at
random: creates, then updates. Every update writes a value no other put of
the run wrote (its sequence number in front), because an update to the
value an object holds already writes nothing.

Failed operations are counted, never retried; --timeout bounds each one.
Ctrl-C stops the run and prints what was measured so far.`

func newBenchCommand(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench put|get|txn|watch [flags]",
		Short: "Measure throughput and latency of puts, gets, transactions and watches",
		Long:  benchLong,
		Example: `  shoal bench put --clients 64 --conns 8 --duration 30s
  shoal bench put --clients 256 --conns 16 --key-space 10000 --total 100000
  shoal bench get --clients 64 --conns 8 --consistency serializable -o json
  shoal bench txn --txn-ops 8 --clients 16 --conns 4
  shoal bench watch --watchers 32 --clients 8 --conns 4`,
	}
	put := a.benchSubcommand(bench.OpPut, 0, "Create objects, or update them in a key space",
		"Each put creates a new object (--key-space 0, the default), or updates one drawn from the\nkey space once its names exist.")
	get := a.benchSubcommand(bench.OpGet, 1000, "Read objects drawn from a key space",
		"Each get reads one object drawn from the key space (default 1000 names), as linearizable\nreads unless --consistency serializable.")
	txn := a.benchSubcommand(bench.OpTxn, 0, "Write several objects in one transaction",
		"Each transaction creates --txn-ops new objects (--key-space 0), or updates as many distinct\nones drawn from the key space; the counts are of transactions.")
	watch := a.benchSubcommand(bench.OpWatch, 0, "Measure how fast watchers receive the changes of puts",
		"Opens --watchers watches of the names written, spread over the connections, then puts as\n'bench put' does; it reports the puts, and the changes every watcher received with the time\neach took from the start of its put.")
	cmd.AddCommand(put, get, txn, watch)
	return cmd
}

func (a *app) benchSubcommand(op bench.Op, defaultKeySpace int, short, long string) *cobra.Command {
	var bf benchFlags
	cmd := &cobra.Command{
		Use:   string(op) + " [flags]",
		Short: short,
		Long:  long + "\n\n" + benchLong,
		Args:  exactArgs(0, "no argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runBench(cmd, op, bf)
		},
	}
	fs := cmd.Flags()
	fs.IntVar(&bf.clients, "clients", 1, "concurrent callers, one request in flight each")
	fs.IntVar(&bf.conns, "conns", 1, "gRPC connections the callers share")
	fs.IntVar(&bf.total, "total", 10000, "operations to make (unless --duration)")
	fs.DurationVar(&bf.duration, "duration", 0, "run for this long instead of --total operations")
	fs.IntVar(&bf.valSize, "val-size", 256, "bytes of each spec written (a JSON string)")
	fs.IntVar(&bf.keySpace, "key-space", defaultKeySpace, "names drawn from: bench-0 ... bench-(N-1); 0: a new name for every write")
	fs.StringVar(&bf.kind, "kind", "bench", "kind of the objects")
	fs.StringVar(&bf.prefix, "prefix", "bench-", "prefix of the names")
	fs.BoolVar(&bf.skipFill, "skip-fill", false, "do not create the names of the key space first (an earlier run did)")
	addOutputFlag(cmd, &bf.output, formatTable)
	switch op {
	case bench.OpGet:
		fs.StringVar(&bf.consistency, "consistency", "linearizable", "linearizable (sees every acknowledged write) or serializable (the called manager's copy)")
		_ = cmd.RegisterFlagCompletionFunc("consistency", cobra.FixedCompletions(
			[]string{"linearizable", "serializable"}, cobra.ShellCompDirectiveNoFileComp))
	case bench.OpTxn:
		fs.IntVar(&bf.txnOps, "txn-ops", 4, "objects written by each transaction")
	case bench.OpWatch:
		fs.IntVar(&bf.watchers, "watchers", 16, "watches open during the puts")
	}
	a.addConnFlags(cmd, false)
	return cmd
}

func (a *app) runBench(cmd *cobra.Command, op bench.Op, bf benchFlags) error {
	f, err := parseFormat(bf.output)
	if err != nil {
		return err
	}
	total := bf.total
	if cmd.Flags().Changed("duration") {
		if cmd.Flags().Changed("total") {
			return usagef("--total and --duration exclude each other; give one")
		}
		total = 0
	}
	consistency := client.Linearizable
	switch bf.consistency {
	case "", "linearizable":
	case "serializable":
		consistency = client.Serializable
	default:
		return usagef("--consistency %q: choose linearizable or serializable", bf.consistency)
	}
	if a.conn.timeout <= 0 {
		return usagef("--timeout %v must be positive", a.conn.timeout)
	}
	cc, err := a.clientConfig()
	if err != nil {
		return err
	}
	cc.DialTimeout = a.conn.timeout
	cfg := bench.Config{
		Op: op, Clients: bf.clients, Conns: bf.conns, Total: total, Duration: bf.duration,
		ValSize: bf.valSize, KeySpace: bf.keySpace, Prefix: bf.prefix, TxnOps: bf.txnOps, Watchers: bf.watchers,
		SkipFill: bf.skipFill, OpTimeout: a.conn.timeout, Consistency: bf.consistency,
		Target:   "shoal at " + describeClientTarget(cc),
		Progress: bench.Progress{W: a.stderr, Terminal: isTerminal(a.stderr)},
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	ctx, stop := a.signals(cmd.Context())
	defer stop()
	res, err := bench.Run(ctx, cfg, bench.Shoal(bench.ShoalConfig{Client: cc, Kind: bf.kind, Consistency: consistency}))
	if err != nil {
		return err
	}
	if f == formatTable {
		return bench.WriteText(a.stdout, res)
	}
	return writeStructured(a.stdout, f, res)
}

// describeClientTarget names what a client configuration reaches.
func describeClientTarget(cc client.Config) string {
	if cc.SocketPath != "" {
		return cc.SocketPath
	}
	return strings.Join(cc.Addrs, ",")
}

// isTerminal tells whether w is a terminal, for drawing a progress bar.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
