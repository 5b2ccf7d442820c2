"""The exceptions of package shmmap, one per error value of the Go package.

Each is a subclass of ShmmapError and of the builtin exception a Python
caller would catch for that kind of failure, so that ``except ValueError``
and ``except shmmap.InvalidKey`` both work. OS failures that have no class
here (a missing segment, a full /dev/shm) are the builtin OSError
subclasses (FileNotFoundError, PermissionError, OSError with errno ENOSPC).
"""


class ShmmapError(Exception):
    """The base class of every exception this package defines."""

    def __str__(self):
        # OSError's own str() shows "[Errno None] None: 'path'" once a
        # filename is set on an error made from a message alone.
        if isinstance(self, OSError) and self.strerror is None and self.args:
            return str(self.args[0])
        return super().__str__()


# Segments (Go: package shmmap's Err values).


class InvalidKey(ShmmapError, ValueError):
    """The key is not a valid POSIX shared memory name (ErrInvalidKey)."""


class InvalidSize(ShmmapError, ValueError):
    """A size out of range, or larger than the segment (ErrInvalidSize)."""


class NotSegment(ShmmapError, OSError):
    """The key or descriptor names a file that is not a shared memory
    segment: a FIFO, directory, socket, device or a regular file on disk
    (ErrNotSegment)."""


class NotSealed(ShmmapError, OSError):
    """Seals were required and the segment lacks them: another process
    could change its size under the mapping (ErrNotSealed)."""


class BadMessage(ShmmapError, OSError):
    """A handover message did not carry exactly one descriptor; every
    descriptor that came with it has been closed (ErrBadMessage)."""


# Rings (Go: package ring's Err values).


class TooLarge(InvalidSize):
    """A message longer than the ring's max_message, or a capacity above
    1 GiB (ErrTooLarge)."""


class PeerGone(ShmmapError, ConnectionError):
    """The other end's process has died, or (to a producer) the consumer
    has closed its end (ErrPeerGone)."""


class Closed(ShmmapError, ValueError):
    """Use of an end after its close (ErrClosed)."""


class Corrupt(ShmmapError):
    """Not a ring, or one whose header, positions or records a peer has
    damaged (ErrCorrupt)."""


class VersionError(ShmmapError):
    """A ring of another layout version (ErrVersion)."""


class Busy(ShmmapError):
    """The end asked for is the creator's, or another process has opened
    the ring already (ErrBusy)."""
