//go:build linux && race

package shmmap

// raceEnabled: the race detector is on. Its runtime (ThreadSanitizer) maps
// memory of its own at moments the code under test does not choose.
const raceEnabled = true
