"""What the segment and handover tests share: a TestCase that checks, after
every other cleanup of a test, that it left no fd, no mapping of shared
memory and no name of its own in /dev/shm; and the files that path escapes
are aimed at."""

import gc
import os
import stat
import tempfile
import time
import unittest

SHM = "/dev/shm"


def held():
    """What this process holds of shared memory: (fd count, fds on /dev/shm
    files and memfds, mapping lines of them), as /proc shows it."""
    fds = []
    count = 0
    d = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        names = os.listdir(d)
    finally:
        os.close(d)
    for n in names:
        try:
            target = os.readlink("/proc/self/fd/" + n)
        except OSError:
            continue  # the fd listdir itself used, closed by now
        count += 1
        if target.startswith(SHM + "/") or target.startswith("/memfd:"):
            fds.append("%s -> %s" % (n, target))
    with open("/proc/self/maps") as f:
        maps = sorted(line.strip() for line in f if " %s/" % SHM in line or " /memfd:" in line)
    return count, sorted(fds), maps


def mapping_of(address):
    """The line of /proc/self/maps whose range holds address, or None."""
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= address < hi:
                return line.strip()
    return None


def exists(key):
    try:
        os.lstat(SHM + "/" + key.lstrip("/"))
        return True
    except FileNotFoundError:
        return False


class SegTestCase(unittest.TestCase):
    """A TestCase whose every test is checked for leaks. Record the keys a
    test makes with self.made(key): each must be gone at the end."""

    def setUp(self):
        gc.collect()
        before = held()
        self._keys = []
        self.addCleanup(self._check_leaks, before)

    def made(self, key):
        self._keys.append(key)
        return key

    def _check_leaks(self, before):
        gc.collect()
        after = held()
        self.assertEqual(after[0], before[0], "fd count before and after the test")
        self.assertEqual(after[1], before[1], "fds on shared memory before and after the test")
        self.assertEqual(after[2], before[2], "mappings of shared memory before and after the test")
        for key in self._keys:
            if exists(key):
                os.unlink(SHM + "/" + key.lstrip("/"))
                self.fail("segment %s left in /dev/shm" % key)

    def own_name(self, what):
        """A name of the test's own in /dev/shm (not of create's form, so
        that no Sweep takes it), removed in cleanup."""
        name = "/shmmap_pytest_%s_%d_%d" % (what, os.getpid(), time.monotonic_ns())
        self.addCleanup(_remove, SHM + name)
        return name

    def temp_dir(self):
        d = tempfile.mkdtemp(prefix="shmmap_pytest_")
        self.addCleanup(_rmtree, d)
        return d


def _remove(path):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        os.rmdir(path)
    else:
        os.unlink(path)


def _rmtree(d):
    for root, dirs, files in os.walk(d, topdown=False):
        for f in files:
            os.unlink(os.path.join(root, f))
        for sub in dirs:
            _remove(os.path.join(root, sub))
    os.rmdir(d)


VICTIM = b"a file of the test's own, aimed at by path escapes: it must stay as it is\n"


class Victims:
    """Files of a test's own that its path escapes aim at, so that a
    regression in key validation, with the tests running as root, harms
    nothing but them: one in a temporary directory and one in /dev/shm
    reached through "..". keys are the escapes."""

    def __init__(self, case):
        self.paths = []
        self.stats = []
        shm = os.path.realpath(SHM)
        victim = os.path.join(case.temp_dir(), "victim")
        self._plant(victim)
        to = os.path.realpath(victim)
        rel = os.path.relpath(to, shm)
        name = case.own_name("victim")[1:]
        self._plant(os.path.join(SHM, name))
        self.keys = [
            rel,
            "/" + rel,
            "/../../../../../../../.." + to,  # more ".." than there are directories
            "/../" + os.path.basename(shm) + "/" + name,
            "../../../../../../../.." + shm + "/" + name,
            "/" + name + "/",
        ]

    def _plant(self, path):
        with open(path, "xb") as f:
            f.write(VICTIM)
        os.chmod(path, 0o600)
        self.paths.append(path)
        self.stats.append(os.lstat(path))

    def check_intact(self, case):
        for path, before in zip(self.paths, self.stats):
            now = os.lstat(path)
            case.assertEqual((now.st_ino, now.st_size, now.st_mtime_ns, now.st_mode),
                             (before.st_ino, before.st_size, before.st_mtime_ns, before.st_mode),
                             "the path escapes' target %s changed" % path)
            with open(path, "rb") as f:
                case.assertEqual(f.read(), VICTIM, path)
