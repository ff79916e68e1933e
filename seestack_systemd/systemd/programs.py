"""The helper programs the agent runs (systemctl, journalctl): by absolute path, with an
environment of our own.

A root hook inherits the unit's environment, which the unit's unprivileged user may
write (``EnvironmentFile=``). Nothing of it reaches a helper: not its ``PATH`` (a planted
``systemctl`` would run as root), nor ``LD_PRELOAD``, ``SYSTEMD_*`` or anything else.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence  # not typing: finish around every job would import it

# Where Debian installs systemd's tools; searched in this order, whatever $PATH says.
PROGRAM_DIRS = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")
# The PATH a helper itself sees (systemctl runs a few programs of its own).
FIXED_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# What a user manager's systemctl/journalctl need to find that manager; taken from the
# caller's environment only for --user, where that environment is the user's own.
SESSION_VARIABLES = ("XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS", "HOME", "USER", "LOGNAME")


def locate(name: str) -> str:
    """The absolute path of ``name`` in PROGRAM_DIRS, or FileNotFoundError naming them."""
    for directory in PROGRAM_DIRS:
        path = os.path.join(directory, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise FileNotFoundError(2, f"{name} not found in {', '.join(PROGRAM_DIRS)}", name)


def environment(session: Mapping[str, str] | None = None) -> dict:
    """The environment a helper runs with: a fixed PATH, the C locale, no pager, and for
    a user manager the session variables from ``session``."""
    env = {"PATH": FIXED_PATH, "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
    for name in SESSION_VARIABLES:
        value = session.get(name) if session is not None else None
        if value:
            env[name] = value
    return env


def run(name: str, args: Sequence[str], timeout: float, text: bool = False,
        session: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run helper ``name`` with ``args``, output captured, stdin closed. Raises
    FileNotFoundError when the program is missing, subprocess errors on timeout."""
    # UTF-8 whatever locale the unit's environment names: it is systemd's output encoding.
    argv = [locate(name), *args]
    if text:
        return subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              env=environment(session), encoding="utf-8", errors="replace")
    return subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                          env=environment(session))
