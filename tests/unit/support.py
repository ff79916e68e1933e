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
             input: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run ``python3 -m seestack_systemd ARGS`` as a real process."""
        full_env = dict(self.env)
        full_env.update(env or {})
        return subprocess.run([sys.executable, "-m", "seestack_systemd", *args], cwd=ROOT, env=full_env,
                              capture_output=True, text=True, timeout=timeout, input=input)

    def assertNoKey(self, *texts: str) -> None:
        for text in texts:
            self.assertNotIn(API_KEY, text)
            self.assertNotIn(API_KEY[-12:], text)


def spool_files(data_dir: str) -> Sequence[str]:
    path = os.path.join(data_dir, "spool")
    return sorted(n for n in os.listdir(path) if not n.startswith(".")) if os.path.isdir(path) else []
