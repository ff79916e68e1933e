"""Start records: what ``start`` leaves for ``finish`` in STATE_DIR/SLUG/ID.json.

ID is the unit's $INVOCATION_ID (``manual`` outside systemd), so parallel
instances of one template unit never share a record. This module runs before
every job: it imports nothing heavier than ``os`` (the record is written
without the json module, its fields being a UUID, hex and numbers).
"""

from __future__ import annotations

import os
import time

from seestack_systemd.errors import StateError
from seestack_systemd.files import atomic_write, read_private, secure_dir
from seestack_systemd.record import Record

MANUAL_ID = "manual"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_HEX = frozenset("0123456789abcdef")


class StartRecord(Record):
    """When a run started, by both clocks, and the run id its heartbeat will carry."""

    run_id: str
    invocation_id: str
    wall: float
    mono: float
    boot_id: str

    def duration_ms(self, now_wall: float, now_mono: float, boot_id: str) -> int:
        """Monotonic time when still on the same boot (immune to clock steps), else wall."""
        elapsed = now_mono - self.mono if boot_id and boot_id == self.boot_id else now_wall - self.wall
        return max(0, int(round(elapsed * 1000)))


def new_run_id() -> str:
    """A random (version 4) UUID, without importing ``uuid`` on the hot path."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def current_boot_id() -> str:
    """This boot's id, or '' where /proc does not say."""
    try:
        with open(BOOT_ID_PATH) as f:
            return f.read().strip()
    except OSError:
        return ""


def is_invocation_id(text: str) -> bool:
    """Whether ``text`` has the form systemd gives $INVOCATION_ID: 32 lowercase hex digits."""
    return len(text) == 32 and _HEX.issuperset(text)


def record_id(invocation_id: str | None) -> str:
    """The record's file id: a systemd invocation id (32 hex digits), or ``manual``."""
    if not invocation_id:
        return MANUAL_ID
    if not is_invocation_id(invocation_id):
        raise StateError(f"invalid INVOCATION_ID {invocation_id[:40]!r}: expected 32 hex digits as systemd sets it")
    return invocation_id


def new_record(invocation_id: str | None) -> StartRecord:
    """A start record for a run starting now."""
    return StartRecord(new_run_id(), record_id(invocation_id), time.time(), time.monotonic(), current_boot_id())


def save(state_dir: str, slug: str, record: StartRecord) -> str:
    """Write ``record`` for ``slug`` (a validated slug) atomically; return its path."""
    directory = secure_dir(os.path.join(secure_dir(state_dir, setting="state_dir"), slug), setting="state_dir")
    text = (
        f'{{"runId":"{record.run_id}","invocationId":"{record.invocation_id}",'
        f'"startedAt":{record.wall!r},"monotonic":{record.mono!r},"bootId":"{record.boot_id}"}}\n'
    )
    return atomic_write(directory, record.invocation_id + ".json", text.encode(), setting="state_dir")


def take(state_dir: str, slug: str, invocation_id: str | None) -> tuple[StartRecord | None, str | None]:
    """Read and remove this invocation's record. Returns ``(record, None)``, or
    ``(None, why)`` when there is none or it is unusable (then it is removed too)."""
    import json  # here: start imports this module too, and json brings re; only finish reads a record

    directory = os.path.join(state_dir, slug)
    try:
        path = os.path.join(directory, record_id(invocation_id) + ".json")
    except StateError as e:
        return None, str(e)
    missing = f"no start record for {slug} (was 'seestack-hook start {slug}' run for this invocation?)"
    try:
        secure_dir(state_dir, create=False, setting="state_dir")
        secure_dir(directory, create=False)
    except StateError as e:
        # Nothing is removed through a directory we do not trust.
        return None, missing if not os.path.lexists(directory) else str(e)
    try:
        raw = read_private(path)
    except FileNotFoundError:
        return None, missing
    except (OSError, StateError) as e:
        _remove(path)
        return None, f"ignoring start record {path}: {e}"
    problem = _remove(path)
    if problem:
        # A record left behind would be taken again by the next run: same runId, wrong duration.
        return None, f"cannot remove start record {path} ({problem}), so it is not used"
    try:
        doc = json.loads(raw)
        record = StartRecord(
            str(doc["runId"]), str(doc["invocationId"]), float(doc["startedAt"]), float(doc["monotonic"]),
            str(doc["bootId"]),
        )
        if len(record.run_id) != 36 or not all(abs(x) < 1e12 for x in (record.wall, record.mono)):
            raise ValueError("bad runId or times")
    except (ValueError, KeyError, TypeError) as e:
        return None, f"ignoring corrupt start record {path}: {e}"
    return record, None


def _remove(path: str) -> str | None:
    """Remove ``path``; the reason when that failed (gone already is fine)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        return e.strerror
    return None
