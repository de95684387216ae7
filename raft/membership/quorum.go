package membership

// Quorum is the number of members whose votes a cluster of n members needs
// to elect a leader or commit an entry.
func Quorum(n int) int { return n/2 + 1 }

// FaultTolerance is the number of members a cluster of n members can lose
// and still make progress: (n-1)/2. An even n tolerates no more failures
// than n-1 does.
func FaultTolerance(n int) int {
	if n == 0 {
		return 0
	}
	return (n - 1) / 2
}

// CanRemove reports whether removing the member with Raft ID id leaves the
// others with a quorum of reachable members. reachable tells whether a
// member currently answers; the caller counts itself as reachable.
func CanRemove(members []Member, id uint64, reachable func(raftID uint64) bool) bool {
	remaining, up := 0, 0
	for _, m := range members {
		if m.RaftID == id {
			continue
		}
		remaining++
		if reachable(m.RaftID) {
			up++
		}
	}
	if remaining == 0 {
		return false // removing the last member leaves no cluster at all
	}
	return up >= Quorum(remaining)
}

// CanAdd reports whether adding one member, which counts as reachable since
// it is about to start, keeps a quorum of reachable members.
func CanAdd(members []Member, reachable func(raftID uint64) bool) bool {
	up := 1 // the new member
	for _, m := range members {
		if reachable(m.RaftID) {
			up++
		}
	}
	return up >= Quorum(len(members)+1)
}
