"""Keys: the rules of Go's key.go, so that both sides agree on what a key
names and on which keys are Create's (the ones Sweep may remove).

A key made by create is "/shmmap_" followed by 22 base62 digits of 128
random bits: unguessable, and unique without any coordination between
processes. Keys are checked before any system call, so that no key reaches
a file outside the shm namespace.
"""

import os

from .errors import InvalidKey

PREFIX = "/shmmap_"
RAND_DIGITS = 22  # 62**22 > 2**128
KEY_LEN = len(PREFIX) + RAND_DIGITS

# On Linux a key names one file in /dev/shm: NAME_MAX (255) bytes after the
# leading slash.
MAX_KEY_LEN = 1 + 255

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_key():
    """Return a fresh key of Go's Create form, from os.urandom."""
    n = int.from_bytes(os.urandom(16), "little")
    digits = []
    for _ in range(RAND_DIGITS):
        n, d = divmod(n, 62)
        digits.append(BASE62[d])
    return PREFIX + "".join(reversed(digits))


def is_create_key(name):
    """Report whether name (canonical form) has the form of create's keys."""
    return (len(name) == KEY_LEN and name.startswith(PREFIX)
            and all(c in BASE62 for c in name[len(PREFIX):]))


def normalize(key):
    """Check that key is a valid POSIX shared memory name and return it in
    its canonical form, with exactly one leading slash.

    The rules are Go's normalize: one path component, not "." or "..", no
    NUL, at most MAX_KEY_LEN bytes (UTF-8, as os encodes it) with the
    slash. "/psm_ab12" and "psm_ab12" are the same key. Raises InvalidKey,
    or TypeError for a key that is not a str.
    """
    if not isinstance(key, str):
        raise TypeError("a key is a str, not %s" % type(key).__name__)
    name = key[1:] if key.startswith("/") else key
    if name in ("", ".", ".."):
        raise InvalidKey("%r is not a name" % key)
    if "/" in name or "\0" in name:
        raise InvalidKey("%r has a slash or NUL after its first byte" % key)
    try:
        n = len(os.fsencode(name)) + 1
    except UnicodeError:
        raise InvalidKey("%r cannot be a file name" % key) from None
    if n > MAX_KEY_LEN:
        raise InvalidKey("%r is %d bytes with its leading slash, more than %d"
                         % (key, n, MAX_KEY_LEN))
    return "/" + name
