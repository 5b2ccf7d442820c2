//go:build linux && !race

package shmmap

const raceEnabled = false
