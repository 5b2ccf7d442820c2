"""The examples of README.md's sections on segments, handover and rings, run as
the README gives them, each printing what the README says it prints."""

import os
import re
import subprocess
import sys
import unittest

import shmmap

from ._segtest import SegTestCase

try:
    import numpy
except ImportError:
    numpy = None

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(os.path.dirname(HERE), "README.md")
SECTIONS = ("Segments by key", "Handing segments over", "Rings")


def examples():
    """(section, code, printed) for each python block of SECTIONS, with the
    plain block after it, which holds what it prints."""
    with open(README) as f:
        text = f.read()
    found = []
    for section in SECTIONS:
        m = re.search(r"^## %s\n(.*?)(?=^## )" % re.escape(section), text, re.S | re.M)
        if m is None:
            raise AssertionError("README.md has no section %r" % section)
        for code, printed in re.findall(r"```python\n(.*?)```\n.*?```\n(.*?)```\n", m.group(1), re.S):
            found.append((section, code, printed))
    return found


def native():
    """Whether the ring's C extension is importable here."""
    try:
        import shmmap._native  # noqa: F401
    except ImportError:
        return False
    return True


class TestReadme(SegTestCase):

    def test_examples(self):
        if numpy is None:
            self.skipTest("the examples use NumPy (Debian: python3-numpy)")
        found = examples()
        self.assertEqual(len(found), len(SECTIONS))
        root = os.path.dirname(os.path.dirname(os.path.abspath(shmmap.__file__)))
        env = dict(os.environ, PYTHONPATH=root, PYTHONDONTWRITEBYTECODE="1")
        for section, code, printed in found:
            if section == "Rings" and not native():
                # Run from the source tree without the extension built.
                if os.environ.get("SHMMAP_REQUIRE_INTEROP"):
                    self.fail("shmmap._native is not built: cd python && python3 setup.py build_ext --inplace")
                continue
            out = subprocess.run([sys.executable, "-X", "dev", "-c", code], env=env,
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual((out.returncode, out.stderr), (0, ""), section)
            self.assertEqual(out.stdout, printed, section)


if __name__ == "__main__":
    unittest.main()
