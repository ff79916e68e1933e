"""The package's shape, as the README's Development table states it: one module (cli.py)
that reads the process environment, prints and exits; and an import budget for the two
command lines a drop-in runs around every job."""

import io
import os
import re
import subprocess
import sys
import tempfile
import tokenize
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "seestack_systemd")
# Modules that `start --unit U -- SLUG` and `finish --unit U -- SLUG` import beyond what
# `python3 -IS` itself has loaded, measured with Python 3.11: an import on that path is paid
# by every run of every monitored job. Other versions differ by a few (3.9's re and locale
# are 4 more modules). The subpackages' __init__ modules count: finish has 4 of them.
IMPORT_BUDGET = {"start": 27, "finish": 132}
SLACK = 4
# Where each process-wide effect may happen: cli.py is the command's boundary; api.py is the
# library's (a library call has no argv, so it reads the process environment itself);
# __main__.py only hands cli.main's code to sys.exit.
# The patterns match the code's tokens joined by spaces: comments and strings are left out.
ALLOWED = {
    r"\bos \. environ\b": {"cli/main.py", "jobs/api.py"},
    r"(?<!\. )\bprint \(": {"cli/main.py"},
    r"\bsys \. exit \(|\braise SystemExit\b": {"cli/main.py", "__main__.py"},
}


def _code(text):
    """The module's tokens but its comments and strings, joined by spaces."""
    # FSTRING_MIDDLE: an f-string's text on Python 3.12+, where f-strings are tokenized.
    skip = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return " ".join(t.string for t in tokens if t.type not in skip and t.string.strip())


def _modules():
    """Every module's path under the package, e.g. cli/main.py."""
    return sorted(os.path.relpath(os.path.join(top, name), PACKAGE) for top, _, names in os.walk(PACKAGE)
                  for name in names if name.endswith(".py"))


class Structure(unittest.TestCase):
    def test_hook_import_budget(self):
        """the drop-in's own command lines (start/finish --unit, as systemd runs them) stay within their import budget"""
        with tempfile.TemporaryDirectory() as tmp:
            env = {"PATH": "/usr/bin:/bin", "SEESTACK_CONFIG": "/dev/null", "SEESTACK_STATE_DIR": tmp + "/state",
                   "SEESTACK_DATA_DIR": tmp + "/data", "SEESTACK_API_KEY": "sk-budget-0123456789",
                   "SEESTACK_ENDPOINT": "http://127.0.0.1:9", "SEESTACK_DEADLINE": "0.2",
                   "INVOCATION_ID": "0123456789abcdef0123456789abcdef", "SERVICE_RESULT": "success",
                   "EXIT_CODE": "exited", "EXIT_STATUS": "0"}
            base = set(subprocess.run([sys.executable, "-IS", "-c", "import sys; print(' '.join(sys.modules))"],
                                      capture_output=True, text=True, check=True).stdout.split())
            # As a user unit's hook, so that SEESTACK_* is honoured even when the suite runs as root.
            code = (f"import sys, atexit; sys.path.insert(0, {ROOT!r});"
                    "atexit.register(lambda: print(' '.join(sorted(sys.modules))));"
                    "from seestack_systemd.cli import main as cli; cli.root_hook = lambda command: False;"
                    "sys.exit(cli.main(sys.argv[1:]))")
            for command, budget in IMPORT_BUDGET.items():
                done = subprocess.run([sys.executable, "-IS", "-c", code, command, "--unit", "job.service", "--",
                                       "job"], env=env, capture_output=True, text=True, timeout=30)
                self.assertEqual(done.returncode, 0, done.stderr)
                added = sorted(set(done.stdout.split()) - base)
                self.assertIn(f"seestack_systemd.{'state' if command == 'start' else 'delivery.report'}", added)
                self.assertNotIn("typing", added, f"{command} --unit imports typing")
                self.assertLessEqual(len(added), budget + SLACK, f"{command} imports {len(added)} modules, budget"
                                     f" {budget}: {' '.join(added)}")

    def test_only_the_boundaries_touch_the_process(self):
        """os.environ, print() and sys.exit() appear only in cli.py (and the library's own entry, api.py)"""
        found = {}
        for name in _modules():
            with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
                text = _code(f.read())
            for pattern, allowed in ALLOWED.items():
                if name not in allowed and re.search(pattern, text):
                    found.setdefault(name, []).append(pattern)
        self.assertEqual(found, {}, "pass the environment in, return lines or raise a typed error instead")


if __name__ == "__main__":
    unittest.main()
