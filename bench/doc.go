// Package bench is the load generator of `shoal bench` and of the
// side-by-side comparison with etcd (tools/benchcompare): it owns the
// client loop (concurrent callers over shared connections, for a total
// count of operations or a duration), the names and values it writes, the
// latency histogram and its percentiles, errors counted by gRPC code, the
// progress line, and the report, as text and as JSON.
//
// What it measures goes through a Target, a small interface of keys and
// values, so another program can drive another store through the same
// code; Shoal is the Target of a shoal cluster (through package client).
// The package depends on client and api only, never on the server's
// packages, and holds no assertion about how fast anything must be.
package bench
