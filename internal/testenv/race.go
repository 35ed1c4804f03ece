//go:build race

package testenv

// Race is whether the race detector is on. It changes allocation counts (sync.Pool drops
// items at random under it), so tests that count allocations skip that check.
const Race = true
