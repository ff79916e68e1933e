"""journal_streams against real state files in the layout journald writes (seen in
booted Debian 11, 12 and 13: /run/systemd/journal/streams/MAJ:MIN files)."""

from __future__ import annotations

import os
import shutil
import tempfile
import unittest

from seestack_systemd.systemd import journal_streams

STATE = ("# This is private data. Do not parse\nPRIORITY=30\nLEVEL_PREFIX=1\nFORWARD_TO_SYSLOG=0\n"
         "FORWARD_TO_KMSG=0\nFORWARD_TO_CONSOLE=0\nSTREAM_ID=03b5dd9a42d54a9298aed6744a5aa913\n"
         "IDENTIFIER=sh\nUNIT={unit}\n")


class Streams(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.now = 0.0

    def stream(self, name: str, unit: str) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(STATE.format(unit=unit))
        return path

    def clock(self) -> float:
        return self.now

    def test_counts_the_units_streams_only(self):
        """streams of backup.service are counted; backup.service.bak's and another unit's are not"""
        self.stream("9:1", "backup.service")
        self.stream("9:2", "backup.service")
        self.stream("9:3", "backup.service.bak")
        self.stream("9:4", "web.service")
        self.assertEqual(journal_streams.open_streams("backup.service", self.dir), 2)
        self.assertEqual(journal_streams.open_streams("none.service", self.dir), 0)
        self.assertIsNone(journal_streams.open_streams("backup.service", os.path.join(self.dir, "missing")))

    def test_waits_until_the_streams_close(self):
        """wait_closed polls until journald has removed the unit's stream files, without sleeping for real"""
        paths = [self.stream("9:1", "backup.service"), self.stream("9:2", "backup.service")]

        def sleep(seconds: float) -> None:  # journald ends one stream per poll
            self.now += seconds
            os.unlink(paths.pop())

        self.assertTrue(journal_streams.wait_closed("backup.service", 0.5, self.dir, self.clock, sleep))
        self.assertEqual(paths, [])

    def test_gives_up_at_the_timeout(self):
        """a stream held open (a process left in the unit) ends the wait at the timeout, saying so"""
        self.stream("9:1", "backup.service")

        def sleep(seconds: float) -> None:
            self.now += seconds

        self.assertFalse(journal_streams.wait_closed("backup.service", 0.5, self.dir, self.clock, sleep))
        self.assertGreaterEqual(self.now, 0.5)
        self.assertLess(self.now, 0.6)

    def test_unknown_without_the_directory(self):
        """outside systemd (no streams directory) the wait says it cannot tell, at once"""
        self.assertFalse(journal_streams.wait_closed("backup.service", 0.5, os.path.join(self.dir, "x"),
                                                    self.clock, lambda s: self.fail("slept")))


if __name__ == "__main__":
    unittest.main()
