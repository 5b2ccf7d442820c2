"""shmmap: POSIX shared memory segments, shared with Go's shmmap package,
in place and without a copy.

Segments by key (create, attach, unlink) and anonymous ones handed over
by descriptor (create_anonymous, map_fd, send_segment, receive_segment):
see the segment and handover modules, and README.md beside this package.
The ring of messages is the submodule shmmap.ring, which importing shmmap
does not load.

Linux only. Nothing here registers with multiprocessing's resource
tracker, and nothing removes a segment at exit that the program did not
ask to remove.
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
from .handover import receive_segment, send_segment  # noqa: F401
from .segment import (  # noqa: F401
    MAX_SIZE,
    Segment,
    attach,
    create,
    create_anonymous,
    map_fd,
    unlink,
)
