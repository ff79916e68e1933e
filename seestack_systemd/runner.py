"""The cron(8) way: run a command, pass its output through, report how it ended."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass
from typing import BinaryIO, List, Sequence

from .heartbeat import MESSAGE_LIMIT_BYTES
from .systemd import how_it_ended, tail_within

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
STDERR_LINE_BYTES = MESSAGE_LIMIT_BYTES  # no one line may hold more than a message


@dataclass
class Finished:
    """How the command ended: the exit code to pass on, and a message for the heartbeat."""

    exit_code: int
    success: bool
    message: str
    duration_ms: int
    started_at: float
    launch_error: bool = False  # the command could not be started at all


def run_command(argv: Sequence[str], success_codes: Sequence[int], stderr_out: BinaryIO, env: dict,
                tail_lines: int) -> Finished:
    """Run ``argv`` with inherited stdin/stdout and ``env``; copy its stderr to ``stderr_out``
    while keeping the last ``tail_lines`` lines for a failure's message; forward SIGINT/SIGTERM/SIGHUP/SIGQUIT to it. The exit code
    is the command's own (128+N for signal N, 127 not found, 126 not executable)."""
    started_at, started = time.time(), time.monotonic()
    try:
        proc = subprocess.Popen(list(argv), stderr=subprocess.PIPE, env=env)
    except (FileNotFoundError, PermissionError, NotADirectoryError) as e:
        code = 126 if isinstance(e, PermissionError) else 127
        reason = "is not executable" if code == 126 else "was not found"
        return Finished(code, False, f"command {argv[0]!r} {reason}", 0, started_at, launch_error=True)
    previous = {s: signal.signal(s, lambda signum, _frame: proc.send_signal(signum)) for s in FORWARDED_SIGNALS}
    tail: deque = deque(maxlen=tail_lines)
    try:
        for line in proc.stderr:
            stderr_out.write(line)
            stderr_out.flush()
            if tail_lines:
                tail.append(line[-STDERR_LINE_BYTES:])
        returncode = proc.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    duration = int(round((time.monotonic() - started) * 1000))
    if returncode < 0:
        code, ended = 128 - returncode, how_it_ended("killed", str(-returncode))
    else:
        code, ended = returncode, how_it_ended("exited", str(returncode))
    success = returncode >= 0 and returncode in success_codes
    lines: List[str] = [raw.decode("utf-8", "replace").rstrip("\n") for raw in tail]
    if success:
        message = f"{ended}, counted as success" if returncode else ""
    else:
        message = tail_within(ended, lines)
    return Finished(code, success, message, duration, started_at)
