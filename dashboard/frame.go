package dashboard

import "time"

// Frame is what the page shows at one moment, as the serving manager sees
// it. It holds no secret: no token, key or object spec.
type Frame struct {
	At   time.Time `json:"at"`
	Self Self      `json:"self"`
	// Doctor is the diagnosis of the cluster, shown on the top line.
	Doctor  Doctor   `json:"doctor"`
	Members []Member `json:"members"`
	// Leaders are the last changes of leader this manager saw, oldest
	// first; a Leader of "" is a time without one.
	Leaders      []LeaderChange `json:"leaders"`
	Objects      map[string]int `json:"objects"`
	StoreVersion uint64         `json:"store_version"`
	Snapshots    []Snapshot     `json:"snapshots"`
	// Counters are cumulative; the dashboard turns them into the rates of
	// the charts.
	Counters Counters `json:"-"`
}

// Self names the manager that serves the page.
type Self struct {
	NodeID string `json:"node_id"`
	RaftID string `json:"raft_id"`
	Addr   string `json:"addr"`
}

// Doctor is a diagnosis in short.
type Doctor struct {
	Status   string   `json:"status"` // healthy, degraded, unavailable
	Summary  string   `json:"summary"`
	Problems []string `json:"problems"`
	Warnings []string `json:"warnings"`
	Recovery string   `json:"recovery"`
}

// Member is one member: what the serving manager knows of it, and what it
// said of itself when last asked.
type Member struct {
	NodeID    string `json:"node_id"`
	RaftID    string `json:"raft_id"`
	Addr      string `json:"addr"`
	Suffrage  string `json:"suffrage"` // voter, learner
	Leader    bool   `json:"leader"`
	Self      bool   `json:"self"`
	Reachable bool   `json:"reachable"`
	// LastContactMs is how long ago the serving manager heard from it, in
	// milliseconds; -1 never.
	LastContactMs int64  `json:"last_contact_ms"`
	State         string `json:"state"`
	Term          uint64 `json:"term"`
	Commit        uint64 `json:"commit"`
	Applied       uint64 `json:"applied"`
	// Lag is how many entries it is behind the leader's commit index.
	Lag uint64 `json:"lag"`
	// Error says why it could not be asked for its own view.
	Error string `json:"error,omitempty"`
}

// LeaderChange is the start of a leader's time, or of a time without one.
type LeaderChange struct {
	At     time.Time `json:"at"`
	Leader string    `json:"leader"` // node ID; "" for none
	Term   uint64    `json:"term"`
}

// Snapshot is one snapshot the serving manager took.
type Snapshot struct {
	At         time.Time `json:"at"`
	Bytes      int64     `json:"bytes"`
	DurationMs float64   `json:"duration_ms"`
}

// Counters are cumulative counts, sampled with each frame.
type Counters struct {
	// Applied is the applied index: each write is one entry.
	Applied uint64
	// Reads are the reads this manager served.
	Reads float64
	// ProposalFailures are its proposals that failed.
	ProposalFailures float64
	// FsyncSeconds and Fsyncs sum the WAL's fsyncs; ApplySeconds and
	// Applies the applies of entries to the store.
	FsyncSeconds, Fsyncs  float64
	ApplySeconds, Applies float64
}

// Point is one point of the charts: rates per second and mean latencies
// over the interval before At.
type Point struct {
	At       time.Time `json:"at"`
	Writes   float64   `json:"writes"`
	Reads    float64   `json:"reads"`
	Failures float64   `json:"failures"`
	FsyncMs  float64   `json:"fsync_ms"`
	ApplyMs  float64   `json:"apply_ms"`
}

// pointSince is the point of the interval from prev to c.
func (c Counters) pointSince(prev Counters, elapsed time.Duration, at time.Time) Point {
	secs := elapsed.Seconds()
	if secs <= 0 {
		secs = 1
	}
	rate := func(now, before float64) float64 { return max(now-before, 0) / secs }
	mean := func(sum, prevSum, n, prevN float64) float64 {
		if n <= prevN {
			return 0
		}
		return (sum - prevSum) / (n - prevN) * 1000
	}
	return Point{At: at,
		Writes:   rate(float64(c.Applied), float64(prev.Applied)),
		Reads:    rate(c.Reads, prev.Reads),
		Failures: rate(c.ProposalFailures, prev.ProposalFailures),
		FsyncMs:  mean(c.FsyncSeconds, prev.FsyncSeconds, c.Fsyncs, prev.Fsyncs),
		ApplyMs:  mean(c.ApplySeconds, prev.ApplySeconds, c.Applies, prev.Applies),
	}
}
