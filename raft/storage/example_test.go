package storage_test

import (
	"fmt"
	"os"
	"path/filepath"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-project/shoal/raft/storage"
)

func Example() {
	stateDir, err := os.MkdirTemp("", "shoal")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(stateDir)
	cfg := storage.Config{Dir: filepath.Join(stateDir, "raft")}

	// A new node.
	st, err := storage.Create(cfg, []byte("raft id 1"))
	if err != nil {
		panic(err)
	}
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 3; i++ {
		ents = append(ents, &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(1), Data: []byte("payload")})
	}
	hs := &raftpb.HardState{Term: proto.Uint64(1), Vote: proto.Uint64(1), Commit: proto.Uint64(3)}
	if err := st.Save(hs, ents); err != nil {
		panic(err)
	}
	snap := &raftpb.Snapshot{
		Data: []byte("state machine at 2"),
		Metadata: &raftpb.SnapshotMetadata{
			Index: proto.Uint64(2), Term: proto.Uint64(1),
			ConfState: &raftpb.ConfState{Voters: []uint64{1}},
		},
	}
	if err := st.SaveSnapshot(snap); err != nil {
		panic(err)
	}
	if err := st.Close(); err != nil {
		panic(err)
	}

	// The restart.
	fmt.Println("exists:", storage.Exists(cfg.Dir))
	st, loaded, err := storage.Open(cfg)
	if err != nil {
		panic(err)
	}
	defer st.Close()
	fmt.Printf("metadata %q, snapshot at %d, commit %d, %d entries after it\n",
		loaded.Metadata, loaded.Snapshot.GetMetadata().GetIndex(), loaded.HardState.GetCommit(), len(loaded.Entries))
	// Output:
	// exists: true
	// metadata "raft id 1", snapshot at 2, commit 3, 1 entries after it
}
