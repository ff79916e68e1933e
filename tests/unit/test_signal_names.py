"""Signal names in failure messages, checked against procps's kill(1) and real signals."""

import os
import re
import signal
import subprocess
import sys
import unittest

from seestack_systemd.receiver.receive import Receiver
from seestack_systemd.heartbeat import how_it_ended

from .support import HookTestCase

# signal(7): SIGPOLL is SIGIO's other name; kill -L prints POLL, Python's signal.Signals IO.
ALIASES = {"POLL": "IO"}


def kill_table() -> dict:
    """{number: name} as procps's ``kill -L`` lists the standard signals."""
    out = subprocess.run([KILL, "-L"], capture_output=True, text=True, check=True).stdout
    return {int(number): ALIASES.get(name, name) for number, name in re.findall(r"(\d+) ([A-Z0-9]+)", out)}


KILL = "/bin/kill"  # procps's kill(1); minbase containers may lack it


class SignalNames(unittest.TestCase):
    @unittest.skipUnless(os.access(KILL, os.X_OK), f"{KILL} (kill -L, the oracle) is not installed")
    def test_every_standard_signal_named(self):
        """each of kill -L's 31 signals is named as kill names it; a number that is no signal stays a number"""
        table = kill_table()
        self.assertEqual(sorted(table), list(range(1, 32)))
        for number, name in table.items():
            with self.subTest(number=number):
                # Python names SIGSTKFLT (unused on Linux) from 3.11 on; before, it stays a number.
                said = f"SIG{name}" if hasattr(signal, f"SIG{name}") else f"signal {number}"
                self.assertEqual(how_it_ended("killed", str(number)), f"killed by {said}")
        self.assertEqual([n for n, name in table.items() if not hasattr(signal, f"SIG{name}")],
                         [] if sys.version_info >= (3, 11) else [16])
        self.assertEqual(how_it_ended("killed", "99"), "killed by signal 99")
        self.assertEqual(how_it_ended("dumped", "SEGV"), "dumped core after SIGSEGV")


class RealSignals(HookTestCase):
    def test_run_killed_by_sigpwr(self):
        """a command killed by SIGPWR, SIGIO or SIGVTALRM (once missing from a hand table) is reported by name"""
        receiver = Receiver().start()
        self.addCleanup(receiver.stop)
        for name in ("PWR", "IO", "VTALRM"):
            done = self.hook("run", "job", "--", "sh", "-c", f"kill -{name} $$",
                             env={"SEESTACK_ENDPOINT": receiver.url})
            self.assertEqual(done.returncode, 128 + getattr(signal, f"SIG{name}"))
        messages = [request.json()["message"] for request in receiver.wait_for(3)]
        self.assertEqual([m.split(", ")[0].splitlines()[0] for m in messages],
                         [f"killed by SIG{name}" for name in ("PWR", "IO", "VTALRM")])


if __name__ == "__main__":
    unittest.main()
