"""The last heartbeat of each slug, for ``list``: DATA_DIR/last/SLUG.json.

Its own module, without the transport: ``list`` reads these files and sends nothing.
"""

from __future__ import annotations

import json
import os

from seestack_systemd.errors import StateError
from seestack_systemd.files import atomic_write, read_private, secure_dir


def last_dir(data_dir: str) -> str:
    """Where the last heartbeats are kept."""
    return os.path.join(data_dir, "last")


def write(data_dir: str, slug: str, doc: dict) -> None:
    """Record ``doc`` as ``slug``'s last heartbeat; StateError when the directory is unusable."""
    secure_dir(data_dir, setting="data_dir")
    # replace=False: this write is in every finish, which holds up the unit's stop.
    atomic_write(secure_dir(last_dir(data_dir), setting="data_dir"), slug + ".json", json.dumps(doc).encode(),
                 setting="data_dir", replace=False)


def read(data_dir: str, slug: str) -> dict | None:
    """The last heartbeat recorded for ``slug``, or None."""
    try:
        return json.loads(read_private(os.path.join(last_dir(data_dir), slug + ".json")))
    except (OSError, ValueError, StateError):
        return None
