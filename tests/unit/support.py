"""Shared test scaffolding: temp dirs, a real loopback receiver, the CLI as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import unittest
from typing import Dict, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API_KEY = "sk-test-0123456789abcdef-SECRET"
INVOCATION = "0123456789abcdef0123456789abcdef"


# start/finish run as root read no SEESTACK_* (the unit's environment is not root's). The
# suites that drive the hooks through that environment run them as a non-root user's hook
# would (a user unit's): cli.root_hook answers False. tests/unit/across/test_trust.py runs the real one.
_USER_HOOK = ("from seestack_systemd.cli import main as cli; cli.root_hook = lambda command: False;"
              " cli.entry()")


def hook_argv(args: Sequence[str], root_hook: bool = False) -> list:
    """The command line of ``python3 -m seestack_systemd ARGS``; start/finish as a user
    unit's hook unless ``root_hook`` (or when not root anyway)."""
    if root_hook or not args or args[0] not in ("start", "finish") or os.geteuid() != 0:
        return [sys.executable, "-m", "seestack_systemd", *args]
    return [sys.executable, "-c", _USER_HOOK, *args]


class HookTestCase(unittest.TestCase):
    """A temp state/data dir and an environment that points the agent at them."""

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = self.tmp.name
        self.state_dir = os.path.join(self.dir, "state")
        self.data_dir = os.path.join(self.dir, "data")
        self.env: Dict[str, str] = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "SEESTACK_CONFIG": "/dev/null",
            "SEESTACK_STATE_DIR": self.state_dir,
            "SEESTACK_DATA_DIR": self.data_dir,
            "SEESTACK_API_KEY": API_KEY,
            "SEESTACK_DEADLINE": "3",
            "SEESTACK_TIMEOUT": "1",
        }

    def hook(self, *args: str, env: Optional[Dict[str, str]] = None, timeout: float = 30,
             input: Optional[str] = None, root_hook: bool = False) -> subprocess.CompletedProcess:
        """Run ``python3 -m seestack_systemd ARGS`` as a real process (see hook_argv)."""
        full_env = dict(self.env)
        full_env.update(env or {})
        return subprocess.run(hook_argv(args, root_hook), cwd=ROOT, env=full_env,
                              capture_output=True, text=True, timeout=timeout, input=input)

    def assertNoKey(self, *texts: str) -> None:
        for text in texts:
            self.assertNotIn(API_KEY, text)
            self.assertNotIn(API_KEY[-12:], text)


def spool_files(data_dir: str) -> Sequence[str]:
    path = os.path.join(data_dir, "spool")
    return sorted(n for n in os.listdir(path) if not n.startswith(".")) if os.path.isdir(path) else []
