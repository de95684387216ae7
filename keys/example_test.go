package keys_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/shoal-project/shoal/keys"
)

func Example() {
	stateDir, err := os.MkdirTemp("", "shoal")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(stateDir)
	cfg := keys.Config{Dir: filepath.Join(stateDir, "keys")}

	// First start: a data key, then autolock.
	k, err := keys.Create(cfg)
	if err != nil {
		panic(err)
	}
	sealed, err := k.Seal([]byte("raft entry"), []byte("index 1"))
	if err != nil {
		panic(err)
	}
	unlockKey, err := k.EnableAutolock()
	if err != nil {
		panic(err)
	}
	typed := unlockKey.String() // shown to the user once
	unlockKey.Wipe()
	k.Close()

	// Restart: locked until the user gives the key.
	_, locked, err := keys.Open(cfg)
	fmt.Println("locked:", locked, err)
	_, err = keys.Unlock(cfg, keys.NewUnlockKey())
	fmt.Println("another key:", errors.Is(err, keys.ErrWrongUnlockKey), err)

	u, err := keys.ParseUnlockKey(typed)
	if err != nil {
		panic(err)
	}
	k, err = keys.Unlock(cfg, u)
	u.Wipe()
	if err != nil {
		panic(err)
	}
	defer k.Close()
	plain, err := k.Open(sealed, []byte("index 1"))
	fmt.Printf("%s %v\n", plain, err)
	// Output:
	// locked: true <nil>
	// another key: true keys: wrong unlock key
	// raft entry <nil>
}
