"""The cron(8) way: run a command, pass its output through, report how it ended."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import deque
from dataclasses import dataclass

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


def run_command(argv: list[str], success_codes: list[int], env: dict, tail_lines: int) -> Finished:
    """Run ``argv`` with inherited stdin/stdout and ``env``; pass its stderr through to ours
    as it comes while keeping the last ``tail_lines`` lines for a failure's message; forward
    SIGTERM/SIGHUP (and SIGINT/SIGQUIT when no terminal sent them to it already). The exit
    code is the command's own (128+N for signal N, 127 not found, 126 cannot be started)."""
    started_at, started = time.time(), time.monotonic()
    try:
        proc = subprocess.Popen(list(argv), stderr=subprocess.PIPE, env=env)
    except OSError as e:
        code = 127 if isinstance(e, (FileNotFoundError, NotADirectoryError)) else 126
        reason = "was not found" if code == 127 else f"could not be started: {e.strerror}"
        return Finished(code, False, f"command {argv[0]!r} {reason}", 0, started_at, launch_error=True)
    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    # A terminal sends ^C and ^\ to the whole foreground group, the command included:
    # then we only wait for it, rather than send it a second one.
    typed = (signal.SIGINT, signal.SIGQUIT) if os.isatty(0) else ()
    previous = {s: signal.signal(s, signal.SIG_IGN if s in typed else forward) for s in FORWARDED_SIGNALS}
    tail: deque = deque(maxlen=tail_lines)
    partial = b""
    try:
        while True:
            chunk = os.read(proc.stderr.fileno(), 65536)
            if not chunk:
                break
            _write_all(2, chunk)
            if tail_lines:
                lines = (partial + chunk).split(b"\n")
                partial = lines.pop()[-STDERR_LINE_BYTES:]
                tail.extend(line[-STDERR_LINE_BYTES:] for line in lines)
        if partial and tail_lines:
            tail.append(partial)
        returncode = proc.wait()
    finally:
        proc.stderr.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    duration = int(round((time.monotonic() - started) * 1000))
    if returncode < 0:
        code, ended = 128 - returncode, how_it_ended("killed", str(-returncode))
    else:
        code, ended = returncode, how_it_ended("exited", str(returncode))
    success = returncode >= 0 and returncode in success_codes
    if success:
        message = f"{ended}, counted as success" if returncode else ""
    else:
        message = tail_within(ended, [raw.decode("utf-8", "replace") for raw in tail])
    return Finished(code, success, message, duration, started_at)


def _write_all(fd: int, data: bytes) -> None:
    """Copy to our stderr; a closed or broken one must not stop the command's run."""
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass
