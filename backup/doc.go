// Package backup owns the backup file format: a point-in-time copy of a
// cluster's whole store, as `shoal snapshot save` writes it and `shoal
// snapshot inspect` and `restore` read it. It writes and reads files and
// streams, checks them whole, and encrypts them with a key file; it does
// not import raft or manager and does no network IO (the client streams
// the store's bytes in, the manager restores them).
//
// # Layout
//
//	"SHOALBAK" | uvarint length | api.BackupHeader (protobuf) |
//	body | SHA-256 of every byte before it (32 bytes)
//
// The header says where the copy comes from (cluster ID, manager, shoal
// version, time), the Raft index of the store's state, the objects per
// kind, the length of the body and whether it is encrypted. The body is
// the store's snapshot stream (package store: "SHOALSNP", records, a
// trailer with a CRC-32C), exactly as the manager wrote it, or, when
// encrypted, that stream in frames: each a uvarint of the sealed length
// times two plus one for the last frame, then the stream's next bytes (at
// most 1 MiB) sealed with AES-256-GCM. The frame's nonce is its number;
// its additional data are the SHA-256 of the magic and header, its number
// and whether it is the last, so frames cannot be reordered, dropped,
// moved to another file, or cut off after any of them. The key comes from
// HKDF-SHA256 over the key file's secret with a random salt kept in the
// header, which also keeps a check value derived the same way for another
// use, so that a wrong key is told from a damaged file.
//
// Every format ends with the SHA-256 of what precedes it. A reader checks
// it at the end, and reports the first problem it finds as ErrNotBackup,
// ErrUnknownFormat, ErrDamaged, ErrTruncated, ErrEncrypted (no key given)
// or ErrWrongKey, each wrapping ErrInvalid. Check reads a file whole and
// checks its objects as a follower checks a snapshot it receives.
package backup
