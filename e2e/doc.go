// Package e2e tests the shoal binary as its users run it: TestMain builds
// it once, each test starts managers as separate processes on loopback,
// with short Raft ticks, and drives them with the built CLI. Tests wait on
// conditions polled through the CLI, never on fixed sleeps.
package e2e
