package storage

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// writeRounds saves rounds of perRound entries, each followed by a snapshot
// at its last index, and returns the snapshots.
func writeRounds(t *testing.T, s *Storage, rounds, perRound int) []*raftpb.Snapshot {
	t.Helper()
	var snaps []*raftpb.Snapshot
	next := uint64(1)
	for r := 0; r < rounds; r++ {
		last := next + uint64(perRound) - 1
		for i := next; i <= last; i++ {
			mustSave(t, s, hardState(1, 1, i), entries(i, i, 1, 200))
		}
		snap := snapshot(last, 1, payload(last, 1000))
		mustSaveSnapshot(t, s, snap)
		snaps = append(snaps, snap)
		next = last + 1
	}
	return snaps
}

func TestSaveSnapshotRemovesWhatNoKeptSnapshotNeeds(t *testing.T) {
	const (
		rounds   = 8
		perRound = 30 // about one 8 KiB segment
	)
	for _, keep := range []int{0, 1, 2} {
		t.Run("keep "+strconv.Itoa(keep), func(t *testing.T) {
			smallSegments(t, 8<<10)
			cfg := testConfig(t, t.TempDir())
			cfg.KeepOldSnapshots = keep
			s := mustCreate(t, cfg, nil)
			snaps := writeRounds(t, s, rounds, perRound)
			mustClose(t, s)

			files := snapshotNames(t, cfg.Dir)
			if len(files) != keep+1 {
				t.Fatalf("%d snapshot files, want %d: %v", len(files), keep+1, files)
			}
			for i, f := range files {
				want := snaps[len(snaps)-keep-1+i].GetMetadata().GetIndex()
				if f.index != want {
					t.Errorf("snapshot file %d is at index %d, want %d", i, f.index, want)
				}
			}

			oldest := files[0].index
			segs := segmentNames(t, cfg.Dir)
			t.Logf("oldest kept snapshot %d, segments %v", oldest, segs)
			if segs[0].seq == 0 {
				t.Errorf("the first segment is still there")
			}
			if segs[0].index >= oldest {
				t.Errorf("first segment starts at %d: reading from snapshot %d needs the segment before", segs[0].index, oldest)
			}
			if len(segs) > 1 && segs[1].index < oldest {
				t.Errorf("segment %s is kept, but only entries below %d are in it", segs[0].name, oldest)
			}

			s, loaded := mustOpen(t, cfg)
			defer mustClose(t, s)
			checkLoaded(t, loaded, nil, snaps[len(snaps)-1], hardState(1, 1, rounds*perRound), nil)
		})
	}
}

// KeepOldSnapshots is a way back when the newest snapshot file is damaged:
// the older one must still load, with the WAL segments after it.
func TestOpenFallsBackToAnOlderKeptSnapshot(t *testing.T) {
	smallSegments(t, 8<<10)
	cfg := testConfig(t, t.TempDir())
	cfg.KeepOldSnapshots = 1
	s := mustCreate(t, cfg, nil)
	snaps := writeRounds(t, s, 6, 30)
	mustSave(t, s, hardState(1, 1, 185), entries(181, 185, 1, 200))
	mustClose(t, s)

	newest := filepath.Join(cfg.Dir, snapDirName, snapFileName(1, 180))
	b, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0x10
	if err := os.WriteFile(newest, b, 0o600); err != nil {
		t.Fatal(err)
	}

	s, loaded := mustOpen(t, cfg)
	defer mustClose(t, s)
	checkLoaded(t, loaded, nil, snaps[4], hardState(1, 1, 185), entries(151, 185, 1, 200))
}

// A snapshot from the leader arrives ahead of the commit index that the
// same Ready saves. Until that commit index is on disk a restart ignores the
// new snapshot, so the older one must survive until then.
func TestSnapshotAheadOfCommitKeepsOlderFilesUntilCommitted(t *testing.T) {
	smallSegments(t, 8<<10)
	cfg := testConfig(t, t.TempDir())
	s := mustCreate(t, cfg, nil)
	defer mustClose(t, s)
	snaps := writeRounds(t, s, 3, 30)
	old := snaps[2]
	segsBefore := segmentNames(t, cfg.Dir)

	leaders := snapshot(500, 3, []byte("from the leader"))
	mustSaveSnapshot(t, s, leaders)
	if n := len(snapshotNames(t, cfg.Dir)); n != 2 {
		t.Fatalf("%d snapshot files, want the old and the new", n)
	}
	if segs := segmentNames(t, cfg.Dir); segs[0] != segsBefore[0] {
		t.Fatalf("segment %s removed before the new snapshot was committed", segsBefore[0].name)
	}

	// A crash now: the restart uses the old snapshot.
	crashed := t.TempDir()
	copyDir(t, cfg.Dir, crashed)
	cs, loaded := mustOpen(t, testConfig(t, crashed))
	checkLoaded(t, loaded, nil, old, hardState(1, 1, 90), nil)
	mustClose(t, cs)

	// The Ready's hard state commits the new snapshot: now the old goes.
	mustSave(t, s, hardState(3, 0, 500), nil)
	files := snapshotNames(t, cfg.Dir)
	if len(files) != 1 || files[0].index != 500 {
		t.Fatalf("snapshot files %v, want only index 500", files)
	}

	crashed = t.TempDir()
	copyDir(t, cfg.Dir, crashed)
	cs, loaded = mustOpen(t, testConfig(t, crashed))
	checkLoaded(t, loaded, nil, leaders, hardState(3, 0, 500), nil)
	mustClose(t, cs)
}

// Once the WAL's first segments are gone, the snapshot file is the only
// copy of the state before it: without it Open must fail, not start empty.
func TestOpenWithoutTheSnapshotFileTheWALNeedsFails(t *testing.T) {
	smallSegments(t, 8<<10)
	cfg := testConfig(t, t.TempDir())
	s := mustCreate(t, cfg, nil)
	writeRounds(t, s, 3, 30)
	mustClose(t, s)
	for _, f := range snapshotNames(t, cfg.Dir) {
		if err := os.Remove(filepath.Join(cfg.Dir, snapDirName, f.name)); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := Open(cfg)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	t.Logf("Open: %v", err)
}
