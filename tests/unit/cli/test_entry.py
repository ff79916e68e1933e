"""The installed command's entry: a hook leaves with os._exit once its work is done (no
interpreter teardown), its exit status and every line it wrote intact; other commands exit
as usual. Real processes."""

import os
import subprocess
import sys

from ..support import ROOT, HookTestCase

# An atexit handler stands for the interpreter's teardown: it runs on a normal exit only.
CODE = ("import atexit, sys; atexit.register(lambda: sys.stdout.write('teardown\\n'));"
        "from seestack_systemd.cli import main as cli; cli.root_hook = lambda command: False; cli.entry()")


class Entry(HookTestCase):
    def entry(self, *args: str) -> subprocess.CompletedProcess:
        env = dict(self.env, SERVICE_RESULT="failed")
        return subprocess.run([sys.executable, "-c", CODE, *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=30)

    def test_hooks_skip_the_teardown(self):
        """start and finish exit at once with their status (--strict: 78 for no endpoint), their lines flushed"""
        self.env.pop("SEESTACK_ENDPOINT", None)
        started = self.entry("start", "job")
        self.assertEqual((started.returncode, started.stdout), (0, ""), started.stderr)
        self.assertEqual(len(os.listdir(os.path.join(self.state_dir, "job"))), 1, "the start record is written")
        finished = self.entry("finish", "--strict", "job")
        self.assertEqual((finished.returncode, finished.stdout), (78, ""))
        self.assertRegex(finished.stderr, r"finish: job: no endpoint configured")

    def test_other_commands_exit_as_usual(self):
        """any other command's exit runs the teardown"""
        done = self.entry("check")
        self.assertIn("teardown", done.stdout)
