// Package robustness checks shoal's promise under faults: no acknowledged
// write is ever lost and no read is ever stale, whatever fails.
//
// Each run starts managers as separate processes of a binary built with
// -tags crashpoints, joins them through a user-space proxy on every peer
// link (package proxy), and drives concurrent clients over mutual TLS,
// each pinned to a different manager, on a small key space: creates,
// linearizable reads, updates with and without an expected version, and
// deletes, with unique values, every operation recorded with its call and
// return times. Watchers follow every change and resume on another
// manager when theirs fails. Meanwhile faults chosen from the run's seed
// are injected: SIGKILL and restart, SIGSTOP/SIGCONT, blackholes (both
// ways or one way), dropped connections, delay with jitter, a follower cut
// off until it must catch up by snapshot, crash points around the WAL
// save, the snapshot saves and apply, and the faults of membership:
//
//   - member-replace: a member removed, wiped and joined again, which
//     joins as a learner and must be promoted once caught up;
//   - wipe-raft-state: a manager's raft/ deleted, its certificates kept,
//     and started again (as before, or with --join): it must not answer
//     calls nor acknowledge entries, under its old Raft ID or a new one,
//     and is recovered by node rm, an empty state directory and a new
//     join (wipedStateMustBeRefused makes a refusal to start required);
//   - join-crash-answered, join-crash-wal-created: a joiner killed at the
//     crash point after the leader answered its join, or after its WAL
//     exists; the learner it left must not count toward the quorum (with
//     as many voters paused as the cluster tolerates, a write commits);
//     the first, started again, must refuse and is removed, the second
//     must catch up and be promoted;
//   - concurrent-join: Join called at once through two managers for one
//     new node, with its certificate: one Raft ID for it, on every member;
//   - learner-catch-up: a joiner cut off by the proxy until the leader has
//     compacted its log past it (and maybe killed meanwhile), crashed while
//     it saves the snapshot it receives, or killed as soon as it joined: it
//     stays a learner while cut off, and is promoted once caught up;
//   - demote-follower, demote-leader: a voter demoted under traffic (the
//     leader hands over first), kept a learner a while, promoted back.
//
// The faults that join a manager of their own use a spare manager beside
// the run's, and remove it before they end. After each fault the cluster
// must be healthy again: every manager runs and is a reachable voter.
// When the test runs as root with iproute2, TestNamespacePartitions
// also puts each manager in a network namespace of its own and partitions
// them with blackhole routes and links set down (otherwise it says why it
// is skipped).
//
// After each run: a final write must succeed; every manager's store must
// hash the same; the history must be linearizable for the model in
// model.go (checked with porcupine, the HTML visualisation saved on
// failure); every acknowledged write must show in the watches; every
// watch must be ordered, without duplicates or gaps, across its
// resumptions.
//
// Profiles:
//
//	go test -race ./robustness/                     # the short profile (TestShortProfile), a few runs
//	go test ./robustness/ -run Long -count=1 -timeout 0 -args -runs 20 -seed 42
//	make robustness RUNS=20 SEED=42                 # the same
//
// Flags (after -args) or environment: -runs (SHOAL_ROBUSTNESS_RUNS) runs
// of the long profile, 0 skips it; -seed (SHOAL_ROBUSTNESS_SEED), default
// random and always logged; -run-duration (SHOAL_ROBUSTNESS_DURATION) of
// the traffic of each run; -faults (SHOAL_ROBUSTNESS_FAULTS), a
// comma-separated list of faults every run of the long profile injects
// in turn, instead of faults drawn from the seed; -out
// (SHOAL_ROBUSTNESS_OUT), where a failed run's history, visualisation and
// manager logs go (default under the temporary directory); -keep keeps
// them for passing runs too. A failing
// run logs the exact command that repeats it (the faults and their
// parameters come from the seed; the timing of the processes does not, so
// a repeat is close, not identical). -recheck DIR (TestRecheck) checks a
// saved run again, key by key, and prints where each failing key breaks.
package robustness
