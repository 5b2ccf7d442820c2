"""The Linux calls under segment.py and handover.py: the same calls, flags
and rules as the Go package's internal/shm (open_linux.go, lock_linux.go,
anon_linux.go, segment.go), so that a segment made on either side is the
same to both, and Go's List and Sweep judge Python's creators truly.

Errors are OSError with the key or the file's name as filename and the
operation in the message, as Go's *fs.PathError names both; the package's
own exceptions (errors.py) where Go wraps one of its Err values.
"""

import ctypes
import errno
import fcntl
import mmap
import os
import platform
import stat
import struct
import sys

from .errors import InvalidSize, NotSealed, NotSegment

# On Linux, shm_open(3) is open(2) under /dev/shm, a tmpfs: glibc builds the
# path and adds O_NOFOLLOW|O_CLOEXEC; so do we (os.open adds O_CLOEXEC).
SHM_DIR = "/dev/shm"

# The largest segment create makes and the largest mapping attach makes:
# 128 TiB, the user address space of x86-64 with 4-level paging (Go's
# shm.MaxSize).
MAX_SIZE = min(1 << 47, sys.maxsize)

# O_NOFOLLOW keeps a symlink planted in /dev/shm from redirecting an open
# (the key rules keep a name to one component); O_NONBLOCK keeps a FIFO
# planted under a key from blocking the open until a writer comes, which
# may be never; O_LARGEFILE (0 on 64-bit systems) as glibc's shm_open.
OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_LARGEFILE", 0)

# fcntl(2) commands and seals, with the kernel's values where an older
# Python's fcntl module lacks the name.
F_OFD_GETLK = getattr(fcntl, "F_OFD_GETLK", 36)
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
F_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", 38)
F_ADD_SEALS = getattr(fcntl, "F_ADD_SEALS", 1033)
F_GET_SEALS = getattr(fcntl, "F_GET_SEALS", 1034)
F_SEAL_SEAL = getattr(fcntl, "F_SEAL_SEAL", 0x1)
F_SEAL_SHRINK = getattr(fcntl, "F_SEAL_SHRINK", 0x2)
F_SEAL_GROW = getattr(fcntl, "F_SEAL_GROW", 0x4)
F_SEAL_WRITE = getattr(fcntl, "F_SEAL_WRITE", 0x8)
F_SEAL_FUTURE_WRITE = getattr(fcntl, "F_SEAL_FUTURE_WRITE", 0x10)
F_SEAL_EXEC = getattr(fcntl, "F_SEAL_EXEC", 0x20)

# The seals of create_anonymous's segments, as Go's CreateAnonymous: the
# size is fixed both ways, and no other seal can be added, so that no
# process handed the file can make it read-only under a writer either.
ANON_SEALS = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL

# The seals that stop hole punching (fallocate FALLOC_FL_PUNCH_HOLE),
# which on hugetlbfs gives a huge page back to the pool.
WRITE_SEALS = F_SEAL_WRITE | F_SEAL_FUTURE_WRITE

MFD_CLOEXEC = getattr(os, "MFD_CLOEXEC", 0x1)
MFD_ALLOW_SEALING = getattr(os, "MFD_ALLOW_SEALING", 0x2)
MFD_NOEXEC_SEAL = getattr(os, "MFD_NOEXEC_SEAL", 0x8)  # Linux 6.3

TMPFS_MAGIC = 0x01021994
HUGETLBFS_MAGIC = 0x958458F6

# What stat_file finds a file to be.
NOT_SEG, SHM_SEG, HUGE_SEG = 0, 1, 2

# struct flock: l_type, l_whence (shorts), l_start, l_len (off_t, 64-bit in
# every Python build), l_pid, padded as C pads it ("0q").
_FLOCK = "hhqqi0q"

# A single fallocate above this size is checked against the filesystem's
# free space (or, where it has no size, the machine's memory) first, as Go
# does: on a tmpfs as large as memory the reservation would otherwise run
# the machine out of memory before ENOSPC.
_BIG = 1 << 30


def os_error(op, path, e):
    """The OSError e of op, re-made to name path (the key the caller knows,
    not /dev/shm/...); OSError picks the subclass (FileNotFoundError...)."""
    return OSError(e.errno, "%s: %s" % (op, e.strerror), path)


def shm_error(cls, op, path, msg):
    """An exception of the package's class cls, in the form of Go's
    *fs.PathError: "op path: msg", with filename path."""
    e = cls("%s %s: %s" % (op, path, msg))
    if isinstance(e, OSError):
        e.filename = path
    return e


def size_error(op, path, size, why):
    """InvalidSize for size, as Go's SizeError."""
    return shm_error(InvalidSize, op, path, "invalid size %d: %s" % (size, why))


# Opening, naming and removing.


def open_name(name, flags, mode=0):
    """Open segment name (canonical form, "/...") with OPEN_FLAGS."""
    return os.open(SHM_DIR + name, flags | OPEN_FLAGS, mode)


def unlink_name(name):
    """Remove segment name, as shm_unlink(3) does."""
    os.unlink(SHM_DIR + name)


# Set once an O_TMPFILE open fails for want of support, or /proc is missing
# to name one; create then makes its segments named from the start.
no_tmpfile = False


def open_tmpfile():
    """A new unnamed file in /dev/shm (O_TMPFILE), read-write, mode 0. The
    directory itself may be a symlink (/run/shm): no O_NOFOLLOW."""
    return os.open(SHM_DIR, os.O_TMPFILE | os.O_RDWR | (OPEN_FLAGS & ~os.O_NOFOLLOW), 0)


def open_new(name):
    """Open a new segment for create, mode 0 until InitSegment's fchmod.
    Normally the file has no name yet (named False) and link_name gives it
    one once it is locked, sized and mapped; where /dev/shm has no
    O_TMPFILE, it is made under name with O_EXCL (named True), and Sweep
    leaves it alone while its mode is 0."""
    global no_tmpfile
    if not no_tmpfile and hasattr(os, "O_TMPFILE"):
        try:
            return open_tmpfile(), False
        except OSError as e:
            # Kernels before 3.11 take O_TMPFILE for O_DIRECTORY: EISDIR.
            if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
            no_tmpfile = True
    return open_name(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0), True


class CannotLink(Exception):
    """An unnamed file cannot be named here (no /proc): create must make
    its segments named from the start. It never reaches the caller."""


def link_name(fd, name):
    """Give the unnamed file fd the name name: linkat(2) of
    /proc/self/fd/N with AT_SYMLINK_FOLLOW, as linkat(2) describes (os.link
    makes that call only when given a directory fd). FileExistsError if the
    name is taken."""
    global no_tmpfile
    d = os.open(SHM_DIR, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.link("/proc/self/fd/%d" % fd, name[1:], dst_dir_fd=d, follow_symlinks=True)
    except FileNotFoundError:
        if not os.path.isdir("/proc/self/fd"):
            no_tmpfile = True
            raise CannotLink() from None
        raise
    finally:
        os.close(d)


def is_segment(st):
    """Whether st, of a file under /dev/shm, is a segment: a regular file.
    Anyone may put a FIFO, socket or directory there under a name."""
    return stat.S_ISREG(st.st_mode)


def not_segment(name, e):
    """After the open of name failed with e: the mode of what stands under
    the name if it is not a segment (a symlink: ELOOP from O_NOFOLLOW; a
    socket: ENXIO; a directory opened for writing: EISDIR), else None."""
    if e.errno not in (errno.ELOOP, errno.ENXIO, errno.EISDIR):
        return None
    try:
        st = os.lstat(SHM_DIR + name)
    except OSError:
        return None
    return None if is_segment(st) else st.st_mode


def file_kind(mode):
    """The kind of file mode describes, for NotSegment's message."""
    for test, what in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISLNK, "a symbolic link"),
                       (stat.S_ISREG, "a regular file outside memory (on a disk, say)")):
        if test(mode):
            return what
    return "a file of type %#o" % stat.S_IFMT(mode)


def not_segment_error(op, path, mode):
    return shm_error(NotSegment, op, path, "not a shared memory segment: it is %s" % file_kind(mode))


# The creator's lock (Go: internal/shm/lock_linux.go). create takes a shared
# open file description lock (F_OFD_SETLK, F_RDLCK, the whole file) before
# the segment has a name and keeps its fd until close or unlink; the kernel
# drops the lock when the last reference to the open file description goes,
# at close or at the process' death, however it dies. Go's List asks with
# F_OFD_GETLK, and Sweep removes a segment only if it can take the lock
# exclusively.


def lock_creator(fd):
    """Take the creator's lock on fd. A sweeper can hold the file for a
    moment only where open_new had to name it first: then wait for it."""
    lk = struct.pack(_FLOCK, fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0)
    try:
        try:
            fcntl.fcntl(fd, F_OFD_SETLK, lk)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            fcntl.fcntl(fd, F_OFD_SETLKW, lk)
    except OSError as e:
        raise OSError(e.errno, "fcntl: " + e.strerror) from None


def creator_holds(fd):
    """Whether a process holds the creator's lock on fd, as Go's HoldsFD
    answers List: (held, ok); ok is False for a file that is not a segment
    or where the kernel does not say. A segment with mode 0 is being made:
    held."""
    try:
        st = os.fstat(fd)
    except OSError:
        return False, False
    if not is_segment(st):
        return False, False
    if st.st_mode & 0o777 == 0:
        return True, True
    return lock_held(fd)


def lock_held(fd):
    """Whether some process holds a lock on fd's file that a write lock of
    the whole file would conflict with, as F_OFD_GETLK tells: (held, ok);
    ok is False where the kernel does not say. (creator_holds, and a ring's
    question whether its creator lives.)"""
    lk = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    try:
        lk = fcntl.fcntl(fd, F_OFD_GETLK, lk)
    except OSError:
        return False, False
    return struct.unpack(_FLOCK, lk)[0] != fcntl.F_UNLCK, True


# Sizing.


def init_segment(fd, size):
    """Give a new segment mode 0600 (whatever the umask) and reserve size
    bytes with fallocate, so that a full /dev/shm is ENOSPC here and not a
    SIGBUS at first write. Where the filesystem has no fallocate, ftruncate
    alone sets the size. Returns nothing; raises OSError naming the
    operation in its message (the caller adds the path)."""
    os.fchmod(fd, 0o600)
    if size > _BIG:
        st = os.fstatvfs(fd)
        if st.f_blocks != 0 and size > st.f_bavail * st.f_frsize:
            raise OSError(errno.ENOSPC, "fallocate: " + os.strerror(errno.ENOSPC))
        if st.f_blocks == 0:
            total = _memory_and_swap()
            if total and size > total:
                raise OSError(errno.ENOMEM, "fallocate: %d bytes are more than this machine's "
                              "memory and swap (%d)" % (size, total))
    try:
        # In pieces of _BIG, as Go's InitSegment: tmpfs has given up (and
        # undone) a fallocate on any pending signal, and Python retries one
        # that EINTR ends, so one multi-GiB call under a periodic signal
        # could restart forever.
        off = 0
        while off < size:
            n = min(_BIG, size - off)
            os.posix_fallocate(fd, off, n)
            off += n
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.ENODEV, errno.ENOSYS):
            raise OSError(e.errno, "fallocate: " + e.strerror) from None
        try:
            os.ftruncate(fd, size)
        except OSError as e:
            raise OSError(e.errno, "ftruncate: " + e.strerror) from None


def _memory_and_swap():
    """MemTotal + SwapTotal in bytes, from /proc/meminfo; 0 if unknown."""
    total = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("MemTotal", "SwapTotal"):
                    total += int(v.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0
    return total


# Mapping.


def map_fd(fd, size, writable, path):
    """mmap size bytes of fd, shared, read-write or read-only. The caller
    has checked size against fstat; mmap checks again, and a segment that a
    peer shrank meanwhile is InvalidSize rather than a mapping past its end
    (which would fault on first touch). The mmap object holds a duplicate
    of fd (close-on-exec) until it is closed or collected."""
    access = mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ
    try:
        return mmap.mmap(fd, size, access=access)
    except ValueError as e:  # "mmap length is greater than file size"
        raise size_error("mmap", path, size, "the segment is smaller now (%s)" % e) from None
    except OSError as e:
        if e.errno == errno.ENOMEM:
            raise OSError(errno.ENOMEM, "mmap: " + _explain_enomem(size), path) from None
        raise os_error("mmap", path, e) from None


def _explain_enomem(size):
    """What ran out when mmap says ENOMEM: the map count or address space."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
        with open("/proc/self/maps") as f:
            count = sum(1 for _ in f)
    except (OSError, ValueError):
        limit, count = 0, 0
    if limit > 0 and count + 2 >= limit:
        return ("this process has %d mappings, at the limit vm.max_map_count = %d "
                "(close segments, or raise the limit)" % (count, limit))
    return "no room for %d bytes in this process' address space" % size


# Anonymous segments: memfds (memfd_create(2), Linux 3.17), in the kernel's
# internal shmem mount, which no directory lists and whose size no mount
# limits, and which can be sealed.

_no_noexec_seal = False


def memfd_create():
    """A new, empty memfd named "shmmap", close-on-exec and sealable, with
    MFD_NOEXEC_SEAL where the kernel knows it (6.3), as Go makes it.
    Returns (fd, name, op) for the errors of later calls. Where there is no
    memfd_create (ENOSYS), an O_TMPFILE in /dev/shm instead: unnamed too,
    but counted against /dev/shm's size and not sealable."""
    global _no_noexec_seal
    flags = MFD_CLOEXEC | MFD_ALLOW_SEALING
    try:
        if not hasattr(os, "memfd_create"):
            raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
        if _no_noexec_seal:
            return os.memfd_create("shmmap", flags), "memfd:shmmap"
        try:
            return os.memfd_create("shmmap", flags | MFD_NOEXEC_SEAL), "memfd:shmmap"
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            _no_noexec_seal = True
            return os.memfd_create("shmmap", flags), "memfd:shmmap"
    except OSError as e:
        if e.errno != errno.ENOSYS or no_tmpfile:
            raise os_error("memfd_create", "memfd:shmmap", e) from None
        try:
            return open_tmpfile(), SHM_DIR + " (O_TMPFILE)"
        except OSError:
            raise os_error("memfd_create", "memfd:shmmap", e) from None


def seal(fd):
    """Seal fd with ANON_SEALS; report whether it could (a memfd can; the
    O_TMPFILE of memfd_create's fallback cannot: EPERM)."""
    try:
        fcntl.fcntl(fd, F_ADD_SEALS, ANON_SEALS)
        return True
    except OSError as e:
        if e.errno in (errno.EPERM, errno.EINVAL):
            return False
        raise OSError(e.errno, "fcntl: " + e.strerror) from None


def file_seals(fd):
    """The seals of fd (F_GET_SEALS); none for a file that cannot be
    sealed (EINVAL) or an O_PATH descriptor (EBADF)."""
    try:
        return fcntl.fcntl(fd, F_GET_SEALS)
    except OSError:
        return 0


def seal_names(seals):
    """Spell seals out: "F_SEAL_SHRINK|F_SEAL_GROW", or "no seals"."""
    names = []
    for bit, name in ((F_SEAL_SEAL, "F_SEAL_SEAL"), (F_SEAL_SHRINK, "F_SEAL_SHRINK"),
                      (F_SEAL_GROW, "F_SEAL_GROW"), (F_SEAL_WRITE, "F_SEAL_WRITE"),
                      (F_SEAL_FUTURE_WRITE, "F_SEAL_FUTURE_WRITE"), (F_SEAL_EXEC, "F_SEAL_EXEC")):
        if seals & bit:
            names.append(name)
            seals &= ~bit
    if seals:
        names.append("%#x" % seals)
    return "|".join(names) or "no seals"


def check_sealed(kind, seals, writable, path):
    """Raise NotSealed unless seals fix the size as require_sealed demands
    (Go's checkFileSealed): F_SEAL_SHRINK, for a writable mapping
    F_SEAL_GROW too, and on hugetlbfs a write seal, for there a hole
    punched into the file gives its huge page back to the pool and a later
    access to the hole can fault."""
    want = F_SEAL_SHRINK | (F_SEAL_GROW if writable else 0)
    if seals & want != want:
        raise shm_error(NotSealed, "fcntl", path, "segment not sealed against size changes: it has %s, "
                        "require_sealed wants %s" % (seal_names(seals), seal_names(want)))
    if kind == HUGE_SEG and not seals & WRITE_SEALS:
        raise shm_error(NotSealed, "fcntl", path, "segment not sealed against size changes: it is on "
                        "hugetlbfs and has %s, which do not stop a hole being punched into it; "
                        "require_sealed wants F_SEAL_WRITE or F_SEAL_FUTURE_WRITE there"
                        % seal_names(seals))


def file_sealed(kind, seals):
    """Whether a handed-over segment of kind with seals is sealed: against
    shrinking, and on hugetlbfs against hole punching too."""
    return bool(seals & F_SEAL_SHRINK) and (kind != HUGE_SEG or bool(seals & WRITE_SEALS))


# Files handed over: what is a segment.


def _load_fstatfs():
    """libc's fstatfs64 (or fstatfs), through ctypes: os has fstatvfs,
    whose result lacks the filesystem's type. The call releases the GIL."""
    libc = ctypes.CDLL(None, use_errno=True)
    fn = getattr(libc, "fstatfs64", None) or libc.fstatfs
    fn.argtypes = (ctypes.c_int, ctypes.c_void_p)
    fn.restype = ctypes.c_int
    return fn


_fstatfs = None
# struct statfs starts with f_type: a long (__fsword_t), but an unsigned int
# on s390x. 256 bytes hold the whole struct on every architecture.
_F_TYPE = ctypes.c_uint if platform.machine() == "s390x" else ctypes.c_long


def fs_type(fd):
    """The magic number of fd's filesystem (fstatfs(2) f_type)."""
    global _fstatfs
    if _fstatfs is None:
        _fstatfs = _load_fstatfs()
    buf = ctypes.create_string_buffer(256)
    while _fstatfs(fd, buf) != 0:
        e = ctypes.get_errno()
        if e != errno.EINTR:
            raise OSError(e, os.strerror(e))
    return _F_TYPE.from_buffer(buf).value & 0xFFFFFFFF


def stat_file(fd, op, path):
    """fstat fd, a file that a caller or a peer handed over, and return
    (kind, st) if it is a segment: a regular file in memory, on tmpfs
    (memfds, /dev/shm, O_TMPFILEs) or hugetlbfs. Anything else raises
    NotSegment naming path: a pipe, socket, directory, device, and a
    regular file on disk, whose mapping writes to the disk and faults at
    the access when a page cannot be read or written back. For a file on
    NFS or FUSE, fstat and fstatfs can wait on the server."""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_segment_error(op, path, st.st_mode)
        magic = fs_type(fd)
    except OSError as e:
        if isinstance(e, NotSegment):
            raise
        raise os_error("fstat", path, e) from None
    if magic == TMPFS_MAGIC:
        return SHM_SEG, st
    if magic == HUGETLBFS_MAGIC:
        return HUGE_SEG, st
    raise not_segment_error(op, path, st.st_mode)


def path_only(fd):
    """Whether fd was opened with O_PATH: it can be passed on (a peer can
    send one) but not read, written or mapped."""
    try:
        return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & getattr(os, "O_PATH", 0o10000000))
    except OSError:
        return False


def fd_name(fd):
    """The name of a handed-over fd: what /proc/self/fd says of it
    ("/memfd:NAME (deleted)" for a memfd), else "fd N"."""
    try:
        return os.readlink("/proc/self/fd/%d" % fd) or "fd %d" % fd
    except OSError:
        return "fd %d" % fd
