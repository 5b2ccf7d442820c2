//go:build darwin

package shmmap

// xnu keeps shm names verbatim, in a table of their own, up to PSHMNAMLEN
// (31) bytes: pshm_get_name in bsd/kern/posix_shm.c copies at most
// PSHMNAMLEN+1 bytes with the NUL (bsd/sys/posix_shm.h). Keys made by
// Create have 30. Names are not paths there: "x" and "/x" are two
// segments; normalize always gives the slashed form, as Python's
// SharedMemory does.
const maxKeyLen = 31
