// Package shm is the mechanism under package shmmap and package ring: the
// system calls and the one policy for which are raw (sys_linux.go), opening,
// naming and reserving a segment, the creator's lock and the questions
// about it (lock_linux.go), anonymous segments and their seals, and the
// checks of a file that a caller or a peer hands over. It keeps no state
// of its own but what the system tells it once (which calls the kernel
// lacks); what a process holds is package shmmap's business.
//
// Errors are *fs.PathError naming what the caller named, wrapping the
// sentinels here, which package shmmap exports as its own. The variables
// Fallocate and MemfdCreate, and the No* flags, are seams for the tests of
// package shmmap, which make a call fail or a kernel feature go missing.
package shm
