//go:build race

package main

// raceEnabled: the test binary runs under the race detector, so binaries it
// builds do too (and reuse its build cache).
const raceEnabled = true
