package membership

import (
	"testing"
	"testing/quick"
)

func members(ids ...uint64) []Member {
	out := make([]Member, len(ids))
	for i, id := range ids {
		out[i] = Member{RaftID: id}
	}
	return out
}

func TestQuorumAndFaultTolerance(t *testing.T) {
	tests := []struct{ n, quorum, tolerance int }{
		{1, 1, 0}, {2, 2, 0}, {3, 2, 1}, {4, 3, 1}, {5, 3, 2}, {6, 4, 2}, {7, 4, 3},
	}
	for _, tt := range tests {
		if got := Quorum(tt.n); got != tt.quorum {
			t.Errorf("Quorum(%d) = %d, want %d", tt.n, got, tt.quorum)
		}
		if got := FaultTolerance(tt.n); got != tt.tolerance {
			t.Errorf("FaultTolerance(%d) = %d, want %d", tt.n, got, tt.tolerance)
		}
	}
}

func TestCanRemove(t *testing.T) {
	tests := []struct {
		name    string
		members []Member
		remove  uint64
		down    []uint64
		want    bool
	}{
		{"healthy three, remove one", members(1, 2, 3), 3, nil, true},
		{"three, remove the down one", members(1, 2, 3), 3, []uint64{3}, true},
		{"three, one down, remove a healthy one", members(1, 2, 3), 2, []uint64{3}, false},
		{"five, two down, remove a down one", members(1, 2, 3, 4, 5), 5, []uint64{4, 5}, true},
		{"five, two down, remove a healthy one", members(1, 2, 3, 4, 5), 3, []uint64{4, 5}, false},
		{"two, remove the other", members(1, 2), 2, nil, true},
		{"last member", members(1), 1, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			down := map[uint64]bool{}
			for _, id := range tt.down {
				down[id] = true
			}
			got := CanRemove(tt.members, tt.remove, func(id uint64) bool { return !down[id] })
			if got != tt.want {
				t.Fatalf("CanRemove = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCanRemoveMatchesCounting checks CanRemove against the plain
// definition on random clusters: the removal is allowed when the reachable
// survivors are a strict majority of the survivors.
func TestCanRemoveMatchesCounting(t *testing.T) {
	f := func(n uint8, downMask uint16, removeIdx uint8) bool {
		size := int(n%7) + 1
		ms := make([]Member, size)
		for i := range ms {
			ms[i] = Member{RaftID: uint64(i + 1)}
		}
		remove := uint64(int(removeIdx)%size + 1)
		reachable := func(id uint64) bool { return downMask&(1<<(id-1)) == 0 }
		survivors, up := 0, 0
		for _, m := range ms {
			if m.RaftID != remove {
				survivors++
				if reachable(m.RaftID) {
					up++
				}
			}
		}
		want := survivors > 0 && 2*up > survivors
		return CanRemove(ms, remove, reachable) == want
	}
	if err := quick.Check(f, nil); err != nil {
		t.Fatal(err)
	}
}

// withLearners returns voters 1.. plus the given learners.
func withLearners(voters []Member, learners ...uint64) []Member {
	out := append([]Member(nil), voters...)
	for _, id := range learners {
		out = append(out, Member{RaftID: id, Learner: true})
	}
	return out
}

func TestQuorumChecksCountOnlyVoters(t *testing.T) {
	tests := []struct {
		name    string
		check   func([]Member, uint64, func(uint64) bool) bool
		members []Member
		id      uint64
		down    []uint64
		want    bool
	}{
		{"promote into three healthy", CanPromote, withLearners(members(1, 2, 3), 4), 4, nil, true},
		{"promote into three, one down", CanPromote, withLearners(members(1, 2, 3), 4), 4, []uint64{3}, true},
		{"promote into three, two down", CanPromote, withLearners(members(1, 2, 3), 4), 4, []uint64{2, 3}, false},
		{"promote an unreachable learner", CanPromote, withLearners(members(1, 2, 3), 4), 4, []uint64{4}, false},
		{"promote with other learners down", CanPromote, withLearners(members(1, 2, 3), 4, 5, 6), 4, []uint64{5, 6}, true},
		{"promote the fourth into four voters, one down", CanPromote, withLearners(members(1, 2, 3, 4), 5), 5, []uint64{4}, true},
		{"demote one of three", CanDemote, members(1, 2, 3), 3, nil, true},
		{"demote one of three, another down", CanDemote, members(1, 2, 3), 3, []uint64{2}, false},
		{"demote the last voter", CanDemote, withLearners(members(1), 2), 1, nil, false},
		{"demote, learners do not help", CanDemote, withLearners(members(1, 2, 3), 4, 5), 3, []uint64{2}, false},
		{"remove a learner, voters down", CanRemove, withLearners(members(1, 2, 3), 4), 4, []uint64{2, 3}, true},
		{"remove a voter, learners up", CanRemove, withLearners(members(1, 2, 3), 4, 5), 3, []uint64{2}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			down := map[uint64]bool{}
			for _, id := range tt.down {
				down[id] = true
			}
			if got := tt.check(tt.members, tt.id, func(id uint64) bool { return !down[id] }); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}
