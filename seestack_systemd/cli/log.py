"""The standard streams: log lines on stderr, with sd-daemon priority prefixes when stderr
is the journal, and a safe last flush."""

from __future__ import annotations

import os
import sys

# _collections_abc, not collections.abc: os has loaded it already, and start pays for every import
from _collections_abc import Iterable

from seestack_systemd.cli.grammar import PROG


class Output:
    """Log lines on stderr: sd-daemon priority prefixes when stderr is the journal."""

    PRIORITY = {"error": "<3>", "warning": "<4>", "info": "<6>"}

    def __init__(self, environ: dict[str, str], quiet_info: bool = False) -> None:
        self.journal = _stderr_is_journal(environ.get("JOURNAL_STREAM", ""))
        self.quiet_info = quiet_info

    def log(self, level: str, text: str) -> None:
        if (level == "info" and self.quiet_info) or sys.stderr is None:  # stderr closed: nowhere to say it
            return
        line = " ".join(str(text).split("\n"))
        label = "" if level == "info" else f"{level}: "
        data = f"{self.PRIORITY[level]}{line}\n" if self.journal else f"{PROG}: {label}{line}\n"
        try:
            os.write(2, data.encode("utf-8", "replace"))
        except OSError:  # a broken or closed stderr must not change how the command ends
            pass

    def warn(self, lines: Iterable[str]) -> None:
        """Each of ``lines`` as a warning."""
        for line in lines:
            self.log("warning", line)


def _stderr_is_journal(value: str) -> bool:
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(2)
        return dev.isdigit() and ino.isdigit() and (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except OSError:
        return False


def settle_std_streams() -> None:
    """Flush stdout/stderr now; when one is broken, point it at /dev/null so the exit-time
    flush cannot turn the command's status into Python's 120."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            try:
                fd = os.open(os.devnull, os.O_WRONLY)
                os.dup2(fd, stream.fileno())
                os.close(fd)
            except (OSError, ValueError):
                pass
