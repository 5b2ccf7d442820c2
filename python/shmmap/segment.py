"""Shared memory segments, by key or by file descriptor, shared with Go's
package shmmap (and anything else that uses POSIX shared memory).

    seg = shmmap.create(size)              # a new named segment; seg.key
    seg = shmmap.attach(key)               # another process: all of it
    a = seg.array("f8")                    # a NumPy view, no copy
    seg.close()                            # in each process, when done

    seg = shmmap.create_anonymous(size)    # no name: hand seg.fileno() over
    seg = shmmap.map_fd(fd, require_sealed=True)

Lifetimes. A Segment owns a file descriptor and a mapping. close() ends
the Segment: it closes the descriptor, removes the name if this Segment
created it, and unmaps the memory as soon as nothing in the process points
into it any more: at once if no view (a memoryview from .buf or a slice of
it, an array from .array) is alive, else when the last of them is released
or collected. So no view can ever point at unmapped memory: Python keeps
the mapping for as long as any view needs it, as it does for any buffer.
After close, .buf, .array and .fileno raise Closed; views taken before
stay valid. A Segment collected without close() warns (ResourceWarning)
and closes its descriptor, but leaves a creator's name, which is then
"gone" to Go's List and removed by Sweep, as a killed creator's would be.

Nothing here registers with multiprocessing's resource tracker, and
nothing removes a name at exit: a name goes when its creator closes or
unlinks it, or when unlink(key) is called.

Faults. Other processes may write the memory at any moment: synchronise
through other means. A process that may write a named segment's file can
also shrink it (ftruncate); an access past the new end then kills this
process with SIGBUS, which Python cannot catch. A descriptor from a
process that is not trusted is best mapped with require_sealed=True, which
refuses a segment that could shrink.

Linux only: create's liveness lock, memfds and seals are Linux's.
"""

import errno
import operator
import os
import threading
import warnings
import weakref

from . import _linux
from ._keys import new_key, normalize
from .errors import Closed, InvalidKey, InvalidSize, ShmmapError

__all__ = ["Segment", "create", "attach", "unlink", "create_anonymous", "map_fd", "MAX_SIZE"]

MAX_SIZE = _linux.MAX_SIZE

# create's retries on a key that already exists: with 128 random bits a
# single retry is already unheard of.
_MAX_CREATE_TRIES = 100


class Segment:
    """One mapping of a shared memory segment, made by create, attach,
    create_anonymous or map_fd (do not call Segment() yourself).

    A process forked after the Segment was made shares its mapping; its
    close() closes its own descriptor and leaves the name, which only the
    creating process removes.

    Attributes (read-only): key, the key of a named segment with its
    leading slash (None for an anonymous segment or a descriptor mapped
    with map_fd); size, the bytes mapped; readonly; sealed, whether the
    segment is sealed against shrinking (F_SEAL_SHRINK, and on hugetlbfs
    a write seal too: then no access can fault because a peer shrank it;
    a named segment never is); name, the file's name for messages.

    The methods are safe to call from several threads. See the module's
    documentation for what close() does to views still alive.
    """

    def __init__(self, mm, fd, name, key, readonly, sealed, creator):
        self._lock = threading.Lock()
        self._mm = mm
        self._buf = memoryview(mm)
        self._fd = -2 if fd is None else fd  # -2: being handed over (create)
        self._creator = creator
        self._pid = os.getpid()  # a forked child is not the creator
        self.name = name
        self.key = key
        self.size = len(mm)
        self.readonly = readonly
        self.sealed = sealed

    def __repr__(self):
        what = "key=%r" % self.key if self.key else "name=%r" % self.name
        flags = (" readonly" if self.readonly else "") + (" closed" if self.closed else "")
        return "<shmmap.Segment %s size=%d%s>" % (what, self.size, flags)

    @property
    def closed(self):
        """True once close() has been called."""
        return self._fd < 0

    @property
    def buf(self):
        """The mapped memory as a memoryview of unsigned bytes (format "B"),
        read-only for a read-only mapping (a write raises TypeError). A new
        view each time, so that one caller's release() (or with-block)
        leaves every other view working; slices of it are views too. Valid
        until close(), and, once taken, for as long as it is alive (see the
        module's documentation). Raises Closed after close()."""
        with self._lock:
            self._check("buf")
            return self._buf[:]

    def array(self, dtype, shape=None, offset=0):
        """A NumPy ndarray of dtype over the mapped memory, without a copy:
        writes through it are seen through .buf and by other processes.
        shape is an int or a tuple (C order); None takes as many whole
        items as fit from offset to the end. offset is in bytes; an offset
        that is not a multiple of the dtype's alignment gives an array
        NumPy marks unaligned (flags.aligned False), which works but is
        slower. The array is read-only for a read-only mapping. It keeps
        the memory mapped for as long as it is alive, after close() too.

        Raises ImportError if NumPy is missing, InvalidSize if offset or
        the shape does not fit in the mapping, TypeError for a dtype that
        holds Python objects (a peer could write any pointer there), and
        Closed after close()."""
        with self._lock:
            self._check("array")
        try:
            import numpy as np
        except ImportError as e:
            raise ImportError("Segment.array needs NumPy (Debian: apt-get install python3-numpy; "
                              "or pip install numpy); Segment.buf works without it") from e
        dt = np.dtype(dtype)
        if dt.hasobject:
            raise TypeError("dtype %s holds Python objects, which cannot live in shared memory" % dt)
        offset = operator.index(offset)
        with self._lock:
            self._check("array")
            if not 0 <= offset <= self.size:
                raise _linux.shm_error(InvalidSize, "array", self._path(), "offset %d is outside the %d "
                                       "bytes mapped" % (offset, self.size))
            if shape is None:
                shape = ((self.size - offset) // dt.itemsize,) if dt.itemsize else (0,)
            elif isinstance(shape, int) or hasattr(shape, "__index__"):
                shape = (operator.index(shape),)
            else:
                shape = tuple(operator.index(n) for n in shape)
            count = 1
            for n in shape:
                if n < 0:
                    raise _linux.shm_error(InvalidSize, "array", self._path(), "shape %s has a negative "
                                           "dimension" % (shape,))
                count *= n
            if count * dt.itemsize > self.size - offset:
                raise _linux.shm_error(InvalidSize, "array", self._path(), "shape %s of %s is %d bytes; "
                                       "%d are mapped from offset %d" % (shape, dt, count * dt.itemsize,
                                                                          self.size - offset, offset))
            return np.ndarray(shape, dtype=dt, buffer=self._mm, offset=offset)

    def fileno(self):
        """The segment's file descriptor, to hand over: send_segment, or
        subprocess's pass_fds. It belongs to the Segment (close() closes
        it); it is close-on-exec. Raises Closed after close()."""
        with self._lock:
            self._check("fileno")
            return self._fd

    def unlink(self):
        """Remove the segment's name now, as unlink(key) does: no other
        process can attach it any more, and its memory is freed once every
        mapping and descriptor of it is gone. This Segment's memory stays
        mapped until close(). The creator in this process then removes
        nothing at its close. Raises FileNotFoundError if the name is gone
        already, InvalidKey for a segment without a key, Closed after
        close()."""
        with self._lock:
            self._check("unlink")
            if self.key is None:
                raise _linux.shm_error(InvalidKey, "shm_unlink", self.name, "the segment has no key")
            key = self.key
        unlink(key)

    def close(self):
        """Close the segment: remove its name if this Segment created it
        and it is still there, close the descriptor, and unmap the memory,
        at once or, if views of it are alive, when the last of them goes
        (see the module's documentation). Other processes' mappings stay
        valid. A second close does nothing. Raises OSError only if the name
        could not be removed (the rest is done all the same)."""
        with self._lock:
            if self._fd < 0:
                return
            fd, self._fd = self._fd, -1
            mm, self._mm = self._mm, None
            buf, self._buf = self._buf, None
            creator, self._creator = self._creator, False
        # The memory is unmapped by the mmap object when the last reference
        # to it goes: now, unless a view still holds one. mmap.close()
        # would unmap it under a NumPy array, which holds a reference but
        # no buffer export (ndarray releases the export at once).
        del mm, buf
        err = None
        if creator and os.getpid() == self._pid:
            _creators.drop(self.key, self)
            try:
                _linux.unlink_name(self.key)
            except FileNotFoundError:
                pass
            except OSError as e:
                err = _linux.os_error("shm_unlink", self.key, e)
        os.close(fd)
        if err is not None:
            raise err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self, _close=os.close, _warn=warnings.warn):
        # Collected without close(): release the descriptor (and, with the
        # mmap object, the mapping), but leave a creator's name, which
        # peers may still use; its lock goes with the last reference, and
        # Go's Sweep then removes it, as a dead creator's.
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            self._fd = -1
            _close(fd)  # first: a half-made Segment (an exception in
            # __init__) has no key for its repr
            _warn("unclosed <shmmap.Segment %s>" % getattr(self, "name", "?"),
                  ResourceWarning, source=self)

    def _check(self, what):
        if self._fd < 0:
            raise Closed("%s %s: the segment is closed" % (what, self._path()))

    def _path(self):
        return self.key or self.name

    def _disown(self):
        """Someone in this process removed the name: close must not remove
        a later segment of the same name."""
        with self._lock:
            self._creator = False


class _Creators:
    """The Segments that created a named segment in this process and still
    own its name, by key (weakly). Whichever call removes a name, unlink by
    key or Segment.unlink, tells the creator here, so that no close removes
    a later segment of the same name."""

    def __init__(self):
        self._lock = threading.Lock()
        self._segs = weakref.WeakValueDictionary()

    def add(self, seg):
        with self._lock:
            self._segs[seg.key] = seg

    def drop(self, key, seg):
        with self._lock:
            if self._segs.get(key) is seg:
                del self._segs[key]

    def name_removed(self, key):
        with self._lock:
            seg = self._segs.pop(key, None)
        if seg is not None:
            seg._disown()


_creators = _Creators()


def _create_size(size):
    size = operator.index(size)
    if not 0 < size <= MAX_SIZE:
        raise _linux.size_error("create", "(new segment)", size, "want 0 < size <= %d" % MAX_SIZE)
    return size


def _attach_size(size, path):
    size = operator.index(size)
    if not 0 <= size <= MAX_SIZE:
        raise _linux.size_error("mmap", path, size, "want 0 <= size <= %d" % MAX_SIZE)
    return size


def _fit(size, has, path):
    """The size to map of a segment of has bytes when size was asked for
    (0: all of it), checked as Go's mapSegment checks it: a mapping past
    the end would fault on first touch."""
    if has == 0:
        raise _linux.size_error("mmap", path, size, "the segment has 0 bytes")
    if size == 0 and has > MAX_SIZE:
        raise _linux.size_error("mmap", path, size, "the segment has %d bytes, more than a process can "
                                "map (%d); map a part of it" % (has, MAX_SIZE))
    if size > has:
        raise _linux.size_error("mmap", path, size, "the segment has %d bytes" % has)
    return size or has


def create(size):
    """Make a new named segment of exactly size bytes, zero-filled and
    mapped read-write, as Go's shmmap.Create and CreateNamed make one, and
    return its Segment; the key, seg.key, is for other processes to attach.

    The segment's mode is 0600 (owner only) whatever the umask; its key is
    "/shmmap_" and 22 base62 digits of 128 random bits. The Segment holds
    the creator's lock (an OFD read lock on the whole file) from before the
    name exists until close() or unlink(), so that Go's List reports it
    CreatorAlive, and Go's Sweep and the shmmap command never remove it,
    while this process holds it; CreatorGone, to be swept, once the process
    dies without closing it. The name appears only once the segment is
    complete (O_TMPFILE, then linkat). The memory is reserved with
    fallocate, so that a full /dev/shm is an OSError with errno ENOSPC here
    rather than a SIGBUS at first write.

    close() removes the name; so does unlink(), at once. Raises
    InvalidSize if size <= 0 or more than MAX_SIZE, TypeError for a size
    that is not an int, OSError (ENOSPC, ENOMEM, EMFILE...) from the
    system. On failure nothing is left behind: no name, fd or mapping.
    """

    def finish(key, fd, mm):
        seg = Segment(mm, None, key, key, False, False, True)
        _creators.add(seg)
        seg._fd = fd  # the Segment owns fd only from here on
        return seg

    return _create(_create_size(size), None, finish)


def _create(size, init, finish):
    """create's mechanism, which makes shmmap.ring's rings too: a new
    segment of size bytes (checked), holding the creator's lock, sized and
    mapped; init(mm), unless None, fills it before it has a name, and
    finish(key, fd, mm) makes what is returned. On failure, init's and
    finish's included, nothing is left behind."""
    taken = 0
    while True:
        key = new_key()
        try:
            fd, named = _linux.open_new(key)
        except FileExistsError as e:
            # Named from the start (no O_TMPFILE), and someone has that
            # name: another fresh key, as Go's Create does.
            taken += 1
            if taken < _MAX_CREATE_TRIES:
                continue
            raise _linux.os_error("shm_open", key, e) from None
        except OSError as e:
            raise _linux.os_error("shm_open", key, e) from None
        mm = None
        tried = [key]  # every name _link may have given the file
        try:
            _linux.lock_creator(fd)
            _linux.init_segment(fd, size)
            mm = _linux.map_fd(fd, size, True, key)
            if init is not None:
                init(mm)
            if not named:
                key = _link(fd, key, tried)
            return finish(key, fd, mm)
        except BaseException as e:
            # Also an exception from a signal handler after the link: the
            # name may exist though _link did not return. Remove only a
            # name that is still this file.
            if mm is not None:
                try:
                    mm.close()
                except BufferError:
                    pass  # a half-made Segment's memoryview: it goes with it
            _unlink_own(fd, tried)
            os.close(fd)
            if isinstance(e, _linux.CannotLink):
                continue  # named from the start, this time
            raise _named(e, key) from None


def _unlink_own(fd, names):
    """Remove whichever of names is the file fd (create's failure path)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return
    for name in names:
        try:
            now = os.lstat(_linux.SHM_DIR + name)
            if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
                _linux.unlink_name(name)
        except OSError:
            pass


def _named(e, path):
    """e, an exception of a call on the new segment path, as it is raised
    to the caller: an OSError from the low level, whose message names the
    operation, gets path as its filename."""
    if isinstance(e, OSError) and not isinstance(e, ShmmapError) and e.filename is None and e.errno:
        return OSError(e.errno, e.strerror, path)
    return e


def _link(fd, key, tried):
    """Give the new unnamed file fd a name: key, or another fresh key if
    that one is taken. Returns the key it got."""
    for _ in range(_MAX_CREATE_TRIES):
        try:
            _linux.link_name(fd, key)
            return key
        except FileExistsError:
            key = new_key()
            tried.append(key)
        except _linux.CannotLink:
            raise
        except OSError as e:
            raise _linux.os_error("linkat", key, e) from None
    raise OSError(errno.EEXIST, "linkat: %d fresh keys were all taken" % _MAX_CREATE_TRIES, key)


def attach(key, size=0, readonly=False):
    """Map the existing segment key and return its Segment: its first size
    bytes, or all of it for size 0; read-write, or read-only (a write
    through .buf then raises TypeError, through an array ValueError).

    key is any POSIX shared memory name, with or without its leading slash:
    "/psm_ab12" and "psm_ab12" are the same segment, whichever program
    made it. The Segment holds a descriptor of the segment until close(),
    which leaves the name in place; nothing registers it with
    multiprocessing's resource tracker.

    Raises InvalidKey for a malformed key (checked before any system call:
    no key reaches a file outside /dev/shm), FileNotFoundError if there is
    no such segment, PermissionError if it may not be opened, NotSegment if
    something else stands under the name (a FIFO, socket, directory or
    symlink: the open never blocks on it), InvalidSize if size is negative
    or larger than the segment (checked with fstat before mapping: a
    mapping past the end would fault on first touch).
    """
    name = normalize(key)
    size = _attach_size(size, key)
    fd, st = _open(key, name, os.O_RDONLY if readonly else os.O_RDWR)
    try:
        mm = _linux.map_fd(fd, _fit(size, st.st_size, key), not readonly, key)
    except BaseException:
        os.close(fd)
        raise
    return Segment(mm, fd, name, name, readonly, False, False)


def _open(key, name, flags):
    """attach's open, which shmmap.ring's opens use too: segment name
    (canonical form; key as the caller gave it, for errors) opened with
    flags, and checked to be a segment. Returns (fd, its fstat). Raises
    NotSegment for anything else under the name, OSError from the system."""
    try:
        fd = _linux.open_name(name, flags)
    except OSError as e:
        mode = _linux.not_segment(name, e)
        if mode is not None:
            raise _linux.not_segment_error("shm_open", key, mode) from None
        raise _linux.os_error("shm_open", key, e) from None
    try:
        try:
            st = os.fstat(fd)
        except OSError as e:
            raise _linux.os_error("fstat", key, e) from None
        if not _linux.is_segment(st):
            raise _linux.not_segment_error("shm_open", key, st.st_mode)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def unlink(key):
    """Remove the name of segment key now, so that no other process can
    attach it, and its memory is freed once every mapping is gone.
    Mappings, this process' included, stay valid until their close. If this
    process created the segment, its Segment then removes nothing at
    close. Raises InvalidKey for a malformed key, FileNotFoundError if there
    is no such name."""
    name = normalize(key)
    try:
        _linux.unlink_name(name)
    except OSError as e:
        raise _linux.os_error("shm_unlink", key, e) from None
    finally:
        # Gone now, by this call or another process': a creator's close in
        # this process must not remove a later segment of the same name.
        _creators.name_removed(name)


def create_anonymous(size, require_sealed=False):
    """Make a new anonymous segment of exactly size bytes, zero-filled and
    mapped read-write, as Go's CreateAnonymous makes one, and return its
    Segment. It has no key and no name that anything could be left under:
    other processes map it by descriptor (send_segment, or subprocess's
    pass_fds with seg.fileno()), and its memory is freed once the last
    descriptor and mapping of it, in any process, are gone.

    It is a memfd named "shmmap" (close-on-exec; MFD_NOEXEC_SEAL where the
    kernel has it), its memory reserved with fallocate, then sealed with
    F_SEAL_SHRINK, F_SEAL_GROW and F_SEAL_SEAL: no process it is handed to
    can change its size, so seg.sealed is True and Go's MapFile with
    RequireSealed accepts it. Where memfd_create does not exist, it is an
    unnamed file in /dev/shm (O_TMPFILE) instead, which cannot be sealed;
    with require_sealed that is NotSealed instead.

    Raises InvalidSize if size <= 0 or more than MAX_SIZE; OSError (ENOSPC,
    ENOMEM for more than memory and swap) from the system. On failure
    nothing is left behind.
    """
    size = _create_size(size)
    fd, name = _linux.memfd_create()
    try:
        _linux.init_segment(fd, size)
        sealed = _linux.seal(fd)
        if require_sealed:
            _linux.check_sealed(_linux.SHM_SEG, _linux.file_seals(fd), True, name)
        mm = _linux.map_fd(fd, size, True, name)
    except BaseException as e:
        os.close(fd)
        raise _named(e, name) from None
    return Segment(mm, fd, name, None, False, sealed, False)


def map_fd(fd, size=0, readonly=False, require_sealed=False):
    """Map the segment that fd (an int, or an object with fileno()) is a
    descriptor of, and return its Segment: its first size bytes, or all of
    it for size 0; read-write, or read-only. fd is typically one received
    with receive_segment, or inherited. It stays the caller's: the Segment
    makes a duplicate of its own (close-on-exec), which close() closes, so
    close yours as soon as you no longer need to hand it on.

    fd must be a segment: a regular file in memory (a memfd, a file in
    /dev/shm or another tmpfs, or hugetlbfs). Anything else, a pipe,
    socket, directory, device, or a regular file on disk, is NotSegment.
    An O_PATH descriptor, a descriptor opened read-only mapped read-write,
    and a segment sealed against writing mapped read-write are
    PermissionError. A size that is negative or larger than the segment is
    InvalidSize (checked with fstat before mapping), and so is size 0 of
    an empty segment.

    seg.sealed tells whether the segment is sealed against shrinking. With
    require_sealed, one that is not is refused with NotSealed before
    anything is mapped: F_SEAL_SHRINK is required, for a read-write mapping
    F_SEAL_GROW too, and on hugetlbfs F_SEAL_WRITE or F_SEAL_FUTURE_WRITE
    as well (Go's RequireSealed rule). The seals are read before the size,
    and a seal is never removed, so a size that passes is one the segment
    keeps. A named segment's file can never be sealed.
    """
    if not isinstance(fd, int):
        fd = fd.fileno()
    fd = operator.index(fd)
    path = _linux.fd_name(fd)
    size = _attach_size(size, path)
    seals = _linux.file_seals(fd)  # before the size: see above
    kind, st = _linux.stat_file(fd, "mmap", path)
    if _linux.path_only(fd):
        raise PermissionError(13, "mmap: the file is open with O_PATH, for neither reading nor writing", path)
    if require_sealed:
        _linux.check_sealed(kind, seals, not readonly, path)
    n = _fit(size, st.st_size, path)
    try:
        own = os.dup(fd)  # non-inheritable, as every fd os makes
    except OSError as e:
        raise _linux.os_error("dup", path, e) from None
    try:
        mm = _linux.map_fd(own, n, not readonly, path)
    except BaseException:
        os.close(own)
        raise
    return Segment(mm, own, path, None, readonly, _linux.file_sealed(kind, seals), False)
