//go:build linux

package shmmap

// On Linux a key names a file in /dev/shm: a single file name there
// (NAME_MAX, 255 bytes) after the leading slash.
const maxKeyLen = 1 + 255
