"""The helper programs the agent runs (systemctl, journalctl, systemd-analyze): by absolute
path, with an environment of our own; and the one reader of ``systemctl show``.

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


def environment(session: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a helper runs with: a fixed PATH, the C locale, no pager, and for
    a user manager the session variables from ``session``."""
    env = {"PATH": FIXED_PATH, "LANG": "C.UTF-8", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
    for name in SESSION_VARIABLES:
        value = session.get(name) if session is not None else None
        if value:
            env[name] = value
    return env


def spawn(name: str, args: Sequence[str], session: Mapping[str, str] | None = None) -> subprocess.Popen:
    """Start helper ``name`` with ``args`` and go on: ``collect`` waits for its answer (finish
    lets systemctl and journalctl answer while it imports the delivery). Output captured,
    stdin closed; FileNotFoundError when the program is missing."""
    return subprocess.Popen([locate(name), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=environment(session))


def collect(child: subprocess.Popen, timeout: float, text: bool = False) -> subprocess.CompletedProcess:
    """A spawned helper's answer, as ``subprocess.run`` gives it: killed and TimeoutExpired
    when it takes longer than ``timeout``; ``text``: decoded as UTF-8, newlines as Python's."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        discard(child)
        raise
    if text:  # UTF-8 whatever locale the unit's environment names: it is systemd's output encoding
        out, err = (_text(b) for b in (out, err))
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def discard(child: subprocess.Popen | None) -> None:
    """Kill and reap a spawned helper whose answer will not be read (too late, or an error on the way)."""
    if child is not None and child.poll() is None:
        child.kill()
        child.communicate()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")


def run(name: str, args: Sequence[str], timeout: float, text: bool = False,
        session: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run helper ``name`` with ``args``, output captured, stdin closed. Raises
    FileNotFoundError when the program is missing, subprocess errors on timeout."""
    return collect(spawn(name, args, session), timeout, text)


def first_line(stderr: str) -> str:
    """What a failed helper said, in one line for an error message: its first line of stderr."""
    return (stderr.strip().splitlines() or ["no output"])[0]


def systemctl(args: Sequence[str], timeout: float, session: Mapping[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    """``systemctl ARGS``, text output: ``--user`` for the manager of the user whose
    environment is ``session``; None: the system's manager."""
    return collect(spawn_systemctl(args, session), timeout, text=True)


def spawn_systemctl(args: Sequence[str], session: Mapping[str, str] | None = None) -> subprocess.Popen:
    """``systemctl ARGS`` started, as ``systemctl`` runs it; ``collect`` reads its answer."""
    return spawn("systemctl", [*(["--user"] if session is not None else []), *args], session)


def show_args(units: Sequence[str], properties: Sequence[str]) -> list[str]:
    """The arguments of ``systemctl show`` for ``properties`` of several units at once."""
    return ["show", "--no-pager", "-p", ",".join(properties), "--", *units]


def parse_show(text: str, count: int) -> list[dict[str, str]]:
    """``systemctl show`` output for ``count`` units -> one dict of ``KEY=value`` lines per
    unit, in the order they were asked for ({} for a block systemctl did not print).

    The rule for a key printed more than once in a block: every value is kept, in order,
    joined with newlines (``values`` splits them). systemctl prints a property that holds
    several settings (``TimersCalendar=``, ``TimersMonotonic=``, ``EnvironmentFiles=``) once
    per setting, and each reader needs them all; a value never holds a newline itself."""
    blocks = text.split("\n\n")
    found = []
    for i in range(count):
        props: dict[str, str] = {}
        for line in blocks[i].splitlines() if i < len(blocks) else ():
            key, sep, value = line.partition("=")
            if sep:
                props[key] = f"{props[key]}\n{value}" if key in props else value
        found.append(props)
    return found


def values(props: Mapping[str, str], key: str) -> list[str]:
    """Every value ``parse_show`` kept of ``key``, in order ([] when it was not printed)."""
    value = props.get(key)
    return value.split("\n") if value is not None else []


def ask_show(units: Sequence[str], properties: Sequence[str],
             session: Mapping[str, str] | None = None) -> subprocess.Popen | None:
    """``show`` of ``units`` started now, its answer read later by ``show(..., asked=)``;
    None when systemctl is missing."""
    try:
        return spawn_systemctl(show_args(units, properties), session)
    except OSError:
        return None


def show(units: Sequence[str], properties: Sequence[str], timeout: float,
         session: Mapping[str, str] | None = None, asked: subprocess.Popen | None = None) -> list[dict[str, str]]:
    """``systemctl show`` of several units in one call, parsed by ``parse_show``; a {} per unit
    when systemctl is missing or does not answer in time (the hooks go on without its facts).
    ``session``: as for ``systemctl``; ``asked``: the call ``ask_show`` started for these units."""
    try:
        child = asked or spawn_systemctl(show_args(units, properties), session)
        done = collect(child, timeout, text=True)
    except (OSError, subprocess.SubprocessError):
        return [{} for _ in units]
    return parse_show(done.stdout, len(units))
