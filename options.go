package shmmap

import "github.com/shmmap-go/shmmap/internal/shm"

// An Option changes how Create, Read, ReadWrite, CreateAnonymous, MapFileReadOnly
// and MapFile map a segment: Populate prefaults it, RequireSealed
// refuses a segment whose size a peer could change. A nil Option is
// ignored.
type Option func(*options)

// options are what the Options ask of the mechanism.
type options = shm.Options

// Populate prefaults the mapping: on Linux, mmap with MAP_POPULATE fills the
// page tables for the whole segment in one call, instead of one page fault
// per page at first touch. Use it when the process will touch most of a
// large segment soon (filling it, or reading all of it); it costs time for
// pages never touched, and for a segment that Create reserves it makes the
// whole size resident at once. On a virtual machine, where a page fault
// costs several microseconds, it can make the first pass over a large
// segment several times faster: see BENCHMARKS.md. On macOS it has no
// effect (mmap(2) there has no MAP_POPULATE).
//
// Populate adds no error: prefaulting is best effort, and pages it could not
// fill are faulted in at first touch as without it.
func Populate() Option { return func(o *options) { o.Flags |= shm.MapPopulate } }

// RequireSealed refuses a segment whose size another process could change
// under the mapping: the call fails, mapping nothing, with an error
// wrapping ErrNotSealed. With it, no access to the mapping can fault
// because a peer shrank the segment, which would kill this process with
// SIGBUS. It is for the receiver of a file from a process it does not
// trust: a sender that keeps an unsealed memfd can truncate it at any
// moment, before or after the receiver maps it.
//
// On Linux it asks for the memfd seals (fcntl(2), "File Sealing"):
// F_SEAL_SHRINK, and for a writable mapping F_SEAL_GROW as well. Growing
// cannot make a mapping fault; a writer is asked for a size fixed both
// ways so that what it maps stays all of the segment, as CreateAnonymous
// seals it. CreateAnonymous's segments have both, unless memfd_create did
// not exist (then CreateAnonymous with RequireSealed fails). A file that
// is not a memfd, in /dev/shm or any other tmpfs, can never be sealed (the
// kernel gives it F_SEAL_SEAL when it is made): so Create, Read and
// ReadWrite of a key, and MapFileReadOnly of such a file, fail with it there.
// The seals are read before the size, and a seal is never removed, so a
// size that passes the check is one the segment keeps.
//
// The seals cover size changes only: a peer that may write the file can
// still punch a hole into it (fallocate FALLOC_FL_PUNCH_HOLE). On tmpfs
// the hole is refilled with zero pages at the next access, which faults
// only when memory cannot be had (see Mapping.Sealed). On hugetlbfs the
// punch gives the huge page back to the pool, and the next access faults
// with SIGBUS if the sender has taken it meanwhile; so a file on hugetlbfs
// must also carry F_SEAL_WRITE or F_SEAL_FUTURE_WRITE, which stop the
// punch, or it is ErrNotSealed, with a message that says so. Either seal
// forbids a new writable shared mapping, so MapFile of such a file is
// fs.ErrPermission: on hugetlbfs only MapFileReadOnly can meet
// RequireSealed. (F_SEAL_FUTURE_WRITE leaves the sender's own writable
// mappings working, but stops the punch all the same, so a read-only
// receiver can take it.)
//
// On macOS every segment meets it, although Sealed is false there: xnu
// sets a shm object's size once (pshm_truncate in bsd/kern/posix_shm.c
// refuses a second ftruncate with EINVAL) and maps no byte past it
// (pshm_mmap), so no segment can change size under a mapping.
func RequireSealed() Option { return func(o *options) { o.Sealed = true } }

// parseOptions returns what opts ask for.
func parseOptions(opts []Option) options {
	if len(opts) == 0 {
		return options{} // without the allocation that opt(o) makes o escape to
	}
	o := new(options)
	for _, opt := range opts {
		if opt != nil {
			opt(o)
		}
	}
	return *o
}
