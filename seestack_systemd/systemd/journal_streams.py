"""Whether journald has written all of a unit's output yet: its open stdout streams.

journald keeps one state file per open stdout stream in /run/systemd/journal/streams
(``KEY=value`` lines, ``UNIT=`` naming the unit) and removes it only once the stream
has ended and its last line is in the journal. Measured in booted Debian 11, 12 and
13 (systemd 247, 252, 257) with a oneshot job writing 3,000 lines: a journal read at
once in ExecStopPost= missed the last line in 15 of 15 runs; a read as soon as the
job's stream file was gone (1-4 polls of 5 ms) had it in 15 of 15. ``journalctl
--sync`` does not wait for stdout streams on these releases (systemd #32539).

So ``finish`` waits for the unit's streams to close, then reads the journal once,
instead of reading until two reads 50 ms apart agree on every run.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable  # not typing: that is milliseconds of every finish

STREAMS_DIR = "/run/systemd/journal/streams"
STREAM_WAIT_S = 0.5  # a process left in the unit may hold its stream open: then give up
STREAM_POLL_S = 0.005
MAX_STATE_BYTES = 4096  # a state file is a dozen short lines


def open_streams(unit: str, streams_dir: str = STREAMS_DIR) -> int | None:
    """How many stdout streams journald has open for ``unit``, or None when that cannot
    be told (no such directory, e.g. outside systemd, or not readable by this user)."""
    try:
        names = os.listdir(streams_dir)
    except OSError:
        return None
    needle = f"\nUNIT={unit}\n".encode()
    count = 0
    for name in names:
        try:
            with open(os.path.join(streams_dir, name), "rb") as f:
                data = f.read(MAX_STATE_BYTES)
        except FileNotFoundError:
            continue  # that stream just ended
        except OSError:
            return None
        if needle in b"\n" + data + b"\n":
            count += 1
    return count


def own_streams() -> int:
    """How many distinct streams our own stdout and stderr are: in ExecStopPost= a socket
    there is the hook's own journal stream, which carries the unit's name too."""
    seen = set()
    for fd in (1, 2):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        if stat.S_ISSOCK(st.st_mode):
            seen.add((st.st_dev, st.st_ino))
    return len(seen)


def wait_closed(unit: str, timeout: float = STREAM_WAIT_S, streams_dir: str = STREAMS_DIR,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> bool:
    """Wait until journald has no stream of ``unit`` open but our own. True when so (the
    journal holds the unit's output); False when it cannot be told or ``timeout`` passed."""
    own = own_streams()
    give_up = clock() + timeout
    while True:
        count = open_streams(unit, streams_dir)
        if count is None:
            return False
        if count <= own:
            return True
        if clock() >= give_up:
            return False
        sleep(STREAM_POLL_S)
