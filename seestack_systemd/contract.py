"""The ingest contract's constants (seestack-ingest-api.md), in one place.

The hooks, the library, the transport and the ``receive`` server all read them
from here. This module is on the ``start`` hook's path, so it imports only ``time``.
"""

from __future__ import annotations

import time

# The package's version (seestack_systemd.__version__ is this; pyproject.toml says the same).
VERSION = "0.1.0"
INGEST_PATH = "/v1/cron/heartbeats"
SDK_NAME = "seestack-systemd"
SDK = {"name": SDK_NAME, "version": VERSION}
STATUSES = ("success", "failed")
MESSAGE_LIMIT_BYTES = 4096
TRUNCATION_MARK = "…[truncated]"
TIME_EXAMPLE = "2026-11-24T23:43:46.123Z"


def rfc3339(timestamp: float) -> str:
    """Format a Unix time as RFC 3339 UTC with milliseconds, e.g. ``2026-11-24T23:43:46.123Z``.

    The milliseconds are truncated, not rounded: a timestamp names the millisecond its
    instant falls in (as ``datetime.isoformat(timespec="milliseconds")`` and JavaScript's
    ``toISOString`` do), so ``finishedAt`` never claims a moment after the run finished and
    never rolls over into the next second, day or year. The float is first rounded to whole
    microseconds so that binary noise (``.123`` stored as ``.12299999``) does not cost a millisecond.
    """
    seconds, micros = divmod(round(timestamp * 1_000_000), 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros // 1000:03d}Z"
