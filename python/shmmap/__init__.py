"""shmmap: POSIX shared memory segments, shared with Go's shmmap package.

(Skeleton: the segment, handover and ring modules fill this in.)
"""

from .errors import (  # noqa: F401
    BadMessage,
    Busy,
    Closed,
    Corrupt,
    InvalidKey,
    InvalidSize,
    NotSealed,
    NotSegment,
    PeerGone,
    ShmmapError,
    TooLarge,
    VersionError,
)
