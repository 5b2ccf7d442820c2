//go:build race

package memcopy

// raceEnabled: under the race detector Copy is copy, whose accesses the
// detector sees; it does not see those of REP MOVSB.
const raceEnabled = true
