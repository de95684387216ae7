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
// voters with a quorum of reachable ones. Only voters count: removing a
// learner changes no quorum. reachable tells whether a member currently
// answers; the caller counts itself as reachable.
func CanRemove(members []Member, id uint64, reachable func(raftID uint64) bool) bool {
	for _, m := range members {
		if m.RaftID == id && m.Learner {
			return true
		}
	}
	return votersLeftReachable(members, id, reachable)
}

// CanDemote reports whether making the voter id a learner leaves the other
// voters with a quorum of reachable ones.
func CanDemote(members []Member, id uint64, reachable func(raftID uint64) bool) bool {
	return votersLeftReachable(members, id, reachable)
}

func votersLeftReachable(members []Member, id uint64, reachable func(raftID uint64) bool) bool {
	remaining, up := 0, 0
	for _, m := range members {
		if m.RaftID == id || m.Learner {
			continue
		}
		remaining++
		if reachable(m.RaftID) {
			up++
		}
	}
	if remaining == 0 {
		return false // no voter would be left
	}
	return up >= Quorum(remaining)
}

// CanPromote reports whether making the learner id a voter keeps a quorum
// of reachable voters: the learner must answer itself, and the larger
// quorum must be reachable.
func CanPromote(members []Member, id uint64, reachable func(raftID uint64) bool) bool {
	voters, up := 0, 0
	for _, m := range members {
		if m.Learner && m.RaftID != id {
			continue
		}
		voters++
		if reachable(m.RaftID) {
			up++
		} else if m.RaftID == id {
			return false
		}
	}
	return up >= Quorum(voters)
}
