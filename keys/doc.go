// Package keys owns a manager's Raft data encryption keys (DEKs) and their
// file, STATE_DIR/keys/raft.dek: creating the first key, rotating to a new
// one, dropping old ones once no data on disk needs them, and autolock,
// which wraps the file with an unlock key (the key-encryption key, KEK)
// that the user keeps, so a restarted manager cannot read its data until
// it is given that key.
//
// A *Keys is the storage.Cipher of package raft/storage: it seals the data
// of every WAL entry and snapshot with the current DEK before it reaches
// the disk, and opens what was sealed with any DEK it still holds. It is
// also a storage.KeyRetirer, through which storage says when older DEKs
// may go.
//
// It must not import raft, store or manager, and touches nothing outside
// its directory. It does not decide when to rotate or whether to autolock:
// the manager does, from the cluster's settings. DEKs are per manager and
// never leave it; an unlock key may be shared by every manager of a
// cluster (the manager replicates it; see SetUnlockKey).
//
// # Formats
//
// Sealed data: format byte 1, the DEK's 4-byte ID, a 16-byte salt, then
// AES-256-GCM (12-byte random nonce, ciphertext, 16-byte tag) under a
// per-message key HKDF-Expand-SHA256(DEK, label || salt). See seal.go for
// why a key per message. The caller's additional data (storage binds an entry's index,
// term and type, a snapshot's index and term) is authenticated with it.
//
// Key file: see file.go. A checksum over the whole file tells a damaged
// file (ErrCorrupt) from a wrong unlock key (ErrWrongUnlockKey).
//
// Unlock key: SHLKEY-1-<256 random bits as 50 lowercase base-36 digits>.
//
// # Rotation
//
// RotateDEK writes a new DEK to the file and makes it current. Older DEKs
// stay, for reading, until storage calls RetireBefore: it does so once a
// snapshot sealed after the rotation, at an index no older entry is above,
// is durable and every older WAL segment and snapshot file it could read
// is gone. A restart in between keeps the older keys (they are in the
// file) and storage retires them after the next such snapshot.
//
// # Key material in memory
//
// Close, rotation and retirement zero the DEKs they drop, and Wipe zeroes
// an UnlockKey. Copies the runtime made (garbage-collected buffers, the
// big.Int that parses an unlock key, strings) cannot be reached to be
// zeroed; the aim is to keep keys out of memory dumps taken later, not to
// guarantee it.
//
// # Usage
//
// A manager's first start, before the Raft storage is created:
//
//	k, err := keys.Create(keys.Config{Dir: filepath.Join(stateDir, "keys"), Logger: logger})
//	if autolock {
//		u, err := k.EnableAutolock()
//		fmt.Println("unlock key:", u) // shown once; never logged
//		u.Wipe()
//	}
//	raftCfg.Cipher = k // then raft.NewNode(raftCfg, ...)
//
// A restart:
//
//	k, locked, err := keys.Open(cfg)
//	if locked {
//		// Wait for `shoal unlock`; then, with the key the user typed:
//		u, err := keys.ParseUnlockKey(typed) // ErrMalformedUnlockKey
//		k, err = keys.Unlock(cfg, u)         // ErrWrongUnlockKey
//		u.Wipe()
//	}
//	raftCfg.Cipher = k
//	// ... run the node; after it stopped:
//	k.Close()
package keys
