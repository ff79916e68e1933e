"""Annotations resolve at run time, and typing stays off the hooks' path."""

import subprocess
import sys
import typing
import unittest

from seestack_systemd.jobs import api
from seestack_systemd.delivery import report
from seestack_systemd.delivery import spool
from seestack_systemd.receiver.receive import Receiver

from ..support import ROOT, HookTestCase

# Postponed annotations that use X | Y only evaluate on 3.10+.
NEW_UNIONS = sys.version_info >= (3, 10)


class Annotations(unittest.TestCase):
    def test_hints_resolve(self):
        """typing.get_type_hints resolves the delivery and library signatures (it raised NameError)"""
        self.assertIn("log", typing.get_type_hints(report.deliver))
        self.assertIn("send_one", typing.get_type_hints(spool.flush))
        if NEW_UNIONS:
            self.assertIn("return", typing.get_type_hints(report.last_heartbeat))
            self.assertIn("exc", typing.get_type_hints(api.monitor.__exit__))


class HookImports(HookTestCase):
    def test_finish_imports_no_typing(self):
        """a finish that delivers a heartbeat imports no typing module (its import is milliseconds)"""
        receiver = Receiver().start()
        self.addCleanup(receiver.stop)
        self.assertEqual(self.hook("start", "job").returncode, 0)
        # As a user unit's hook (root_hook False), so that SEESTACK_* is honoured even as root.
        code = ("import sys, atexit; atexit.register(lambda: print(' '.join(sorted(sys.modules))));"
                "from seestack_systemd.cli import main as cli; cli.root_hook = lambda command: False;"
                "sys.exit(cli.main(['finish', 'job']))")
        env = dict(self.env, SEESTACK_ENDPOINT=receiver.url, SERVICE_RESULT="success", EXIT_CODE="exited",
                   EXIT_STATUS="0")
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(receiver.wait_for(1)[0].status, 202)
        modules = done.stdout.split()
        self.assertIn("seestack_systemd.delivery.report", modules)
        self.assertNotIn("typing", modules)


if __name__ == "__main__":
    unittest.main()
