"""The cron(8) way: run a command, pass its output through, report how it ended.

The command's own process decides when ``run`` returns. A background child it leaves
holding stdout or stderr gets OUTPUT_GRACE_S to finish writing, then we stop reading
(as Go's ``exec.Cmd.WaitDelay`` does): a daemon started by the job never holds ``run``.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import threading
import time
from collections import deque

from seestack_systemd.contract import MESSAGE_LIMIT_BYTES
from seestack_systemd.heartbeat import how_it_ended, tail_within
from seestack_systemd.jobs.runs import Finished

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
STDERR_LINE_BYTES = MESSAGE_LIMIT_BYTES  # no one line may hold more than a message
# How long output is still read after the command's own process has exited.
OUTPUT_GRACE_S = 1.0
READ_BYTES = 65536


class _Copy:
    """One output stream of the command: copied to our ``fd`` as it comes, its last
    ``keep`` non-empty lines remembered."""

    def __init__(self, fd: int, keep: int) -> None:
        self.fd, self.broken = fd, False
        self.lines: deque = deque(maxlen=keep)
        self.keep, self.partial = keep, b""

    def feed(self, chunk: bytes) -> None:
        if not self.broken:
            self.broken = not _write_all(self.fd, chunk)
        if self.keep:
            lines = (self.partial + chunk).split(b"\n")
            self.partial = lines.pop()[-STDERR_LINE_BYTES:]
            self.lines.extend(line[-STDERR_LINE_BYTES:] for line in lines if line.strip())

    def tail(self) -> list[str]:
        found = list(self.lines) + ([self.partial] if self.partial.strip() else [])
        return [raw.decode("utf-8", "replace").rstrip() for raw in found[-self.keep:]] if self.keep else []


def run_command(argv: list[str], success_codes: list[int], env: dict, tail_lines: int,
                last_line: bool = False, grace: float = OUTPUT_GRACE_S) -> Finished:
    """Run ``argv`` with inherited stdin and ``env``; pass its stderr through to ours as it
    comes while keeping the last ``tail_lines`` lines for a failure's message; with
    ``last_line``, also keep stdout's last line for a success's message (stdout is tee'd
    only when it is not a terminal). Forward SIGTERM/SIGHUP (and SIGINT/SIGQUIT when no
    terminal sent them to it already). The exit code is the command's own (128+N for
    signal N, 127 not found, 126 cannot be started)."""
    started_at, started = time.time(), time.monotonic()
    tee_stdout = last_line and not os.isatty(1)
    # A terminal sends ^C and ^\ to the whole foreground group, the command included:
    # then we only wait for it, rather than send it a second one.
    typed = (signal.SIGINT, signal.SIGQUIT) if os.isatty(0) else ()
    # A signal that comes while the command is being started waits for it, and is sent to it
    # once it exists: the caller's handlers would take it for one after the job. (Not SIG_IGN
    # here: an ignored signal stays ignored in the command.)
    arrived: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: arrived.append(signum)) for s in FORWARDED_SIGNALS}
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE if tee_stdout else None,
                                stderr=subprocess.PIPE, env=env)
    except OSError as e:
        _restore(previous, arrived)
        code = 127 if isinstance(e, (FileNotFoundError, NotADirectoryError)) or _nowhere_on_path(argv[0], env) else 126
        reason = "was not found" if code == 127 else f"could not be started: {e.strerror}"
        return Finished(code, False, f"command {argv[0]!r} {reason}", 0, started_at, launch_error=True)
    except BaseException:
        _restore(previous, [])
        raise

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    for s in FORWARDED_SIGNALS:
        signal.signal(s, signal.SIG_IGN if s in typed else forward)
    # Every handler forwards by now, so one that comes meanwhile is not lost; a typed one
    # reached the command from the terminal, if it existed yet.
    for signum in arrived:
        if signum not in typed:
            proc.send_signal(signum)
    err, out = _Copy(2, tail_lines), _Copy(1, 1)
    try:
        cut, exited = _pump(proc, {proc.stderr: err, **({proc.stdout: out} if tee_stdout else {})}, grace)
        returncode = proc.wait()
    finally:
        _restore(previous, [])
    # The job ends when its own process exits, not when a background child lets go of its output.
    duration = int(round((exited - started) * 1000))
    if returncode < 0:
        code, ended = 128 - returncode, how_it_ended("killed", str(-returncode))
    else:
        code, ended = returncode, how_it_ended("exited", str(returncode))
    success = returncode >= 0 and returncode in success_codes
    last = out.tail()[-1] if tee_stdout and out.tail() else ""
    if success:
        counted = f"{ended}, counted as success" if returncode else ""
        message = "\n".join(part for part in (counted, last) if part)
    else:
        message = tail_within(ended, err.tail())
    return Finished(code, success, message, duration, started_at, output_cut=cut)


def _restore(previous: dict, arrived: list[int]) -> None:
    """Put the caller's handlers back, and hand them the signals ``arrived`` meanwhile."""
    for s, handler in previous.items():
        signal.signal(s, handler)
    for signum in arrived:
        handler = previous.get(signum)
        if callable(handler):
            handler(signum, None)


def _nowhere_on_path(name: str, env: dict) -> bool:
    """Whether a PATH search for ``name`` finds no file at all, as sh(1) decides "not found"
    (127): a directory on PATH the user may not search (EACCES) hides nothing executable."""
    if "/" in name:
        return False
    return not any(os.path.exists(os.path.join(directory or ".", name)) for directory in os.get_exec_path(env))


def _pump(proc: subprocess.Popen, streams: dict, grace: float) -> tuple[bool, float]:
    """Copy ``streams`` (pipe -> _Copy) until they end, or until ``grace`` seconds after
    ``proc`` exited; whether the grace period cut output short, and when (monotonic) ``proc`` exited."""
    wake_r, wake_w = os.pipe()
    exited: list[float] = []
    waiter = threading.Thread(target=_wait_then_wake, args=(proc, wake_w, exited), daemon=True)
    waiter.start()
    selector = selectors.DefaultSelector()
    selector.register(wake_r, selectors.EVENT_READ)
    for pipe in streams:
        selector.register(pipe, selectors.EVENT_READ, pipe)
    open_pipes = set(streams)
    stop_at: float | None = None
    try:
        while open_pipes:
            timeout = None if stop_at is None else stop_at - time.monotonic()
            if timeout is not None and timeout <= 0:
                break
            for key, _ in selector.select(timeout):
                if key.fileobj == wake_r:
                    selector.unregister(wake_r)
                    stop_at = time.monotonic() + grace
                    continue
                pipe = key.data
                copy = streams[pipe]
                chunk = os.read(key.fd, READ_BYTES)
                if chunk:
                    copy.feed(chunk)
                if not chunk or (copy.broken and copy.fd == 1):
                    # Our stdout is gone: the job sees a closed pipe, as it would without us.
                    # A broken stderr is still read: its tail is the failure's message.
                    selector.unregister(pipe)
                    pipe.close()
                    open_pipes.discard(pipe)
        cut = bool(open_pipes)
    finally:
        for pipe in open_pipes:
            pipe.close()
        selector.close()
        waiter.join()
        os.close(wake_r)
    return cut, exited[0] if exited else time.monotonic()


def _wait_then_wake(proc: subprocess.Popen, wake_fd: int, exited: list[float]) -> None:
    try:
        proc.wait()
        exited.append(time.monotonic())
    finally:
        os.write(wake_fd, b"x")
        os.close(wake_fd)


def _write_all(fd: int, data: bytes) -> bool:
    """Copy to our stdout/stderr; False when it is closed or broken (never raises)."""
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        return False
    return True
