//go:build !race

package shmmap

const raceEnabled = false
