"""Runs in progress, in persistent storage: DATA_DIR/running/SLUG/RUN_ID.json.

``start`` and ``run`` write one, durably, before the job starts; the run's delivery
removes it once the heartbeat is delivered, dropped or safely in the spool. The
start record in /run (state.py) is gone after a reboot; this one is not, so a run
that a crash, a power loss or a reboot cut off is still reported: a record left
from an earlier boot becomes a failed heartbeat (``interrupted``) that the next
replay sends. A record of this boot is a run still going, and is never touched.

``start`` writes it without the json module (its import is tens of milliseconds
of every job's start): the fields are strings and numbers, encoded by ``_encode``.
One directory per slug lets ``begin`` see, from one listing, whether another run of
the same job is still going: the overlap a heartbeat then reports.
"""

from __future__ import annotations

import fcntl
import os

# _collections_abc, not collections.abc: os has loaded it already, and start pays for every import
from _collections_abc import Callable

from seestack_systemd.contract import rfc3339
from seestack_systemd.errors import StateError
from seestack_systemd.files import O_READ_PRIVATE, atomic_write, read_private, secure_dir

RUNNING = "running"
_UUID = frozenset("0123456789abcdef-")
SUFFIX = ".json"
UNREPORTED = "a reboot during this run would go unreported"  # said when a record cannot be written
INTERRUPTED = "interrupted: the host rebooted or lost power during the run (started {started}); it never finished"
CUT_OFF = "interrupted: the run's report was cut off (its finish was killed before it could send it; started {started})"


def running_dir(data_dir: str) -> str:
    return os.path.join(data_dir, RUNNING)


def begin(data_dir: str, run_id: str, slug: str, started_at: float, boot_id: str, host: str,
          source: dict[str, dict[str, str]], pid: int | None = None) -> dict[str, object]:
    """Record, durably, that run ``run_id`` of ``slug`` started (``pid``: the process that
    lives as long as the run, for ``run``). Returns what it found of other runs of ``slug``
    still going on this boot ({} when none): ``{"earlierRuns": N, "since": START}``, which
    the record keeps too (see ``overlap``)."""
    directory = os.path.join(secure_dir(running_dir(secure_dir(data_dir, setting="data_dir")), setting="data_dir"),
                             slug)
    secure_dir(directory, setting="data_dir")
    try:
        others = [n for n in os.listdir(directory) if n.endswith(SUFFIX)]
    except OSError as e:
        raise StateError(f"cannot read {directory}: {e.strerror}") from None
    overlap: dict[str, object] = {}
    if others:  # rare: only then is json imported, to tell a run still going from a leftover
        unit = source.get("systemd", {}).get("unit")
        earlier = []
        for other in _read(directory, others):
            if other.get("bootId") != boot_id:
                continue  # an earlier boot's: the next delivery or flush reports it as interrupted
            if _ended(other, unit):  # the next delivery reports it (spool_interrupted), unless it is spooled
                other.update(bootId="", cutOff=started_at)
                atomic_write(directory, str(other["runId"]) + SUFFIX, _encode(other).encode("utf-8"))
                continue
            earlier.append(float(other["startedAt"]))
        if earlier:
            overlap = {"earlierRuns": len(earlier), "since": min(earlier)}
    doc: dict[str, object] = {"runId": run_id, "slug": slug, "startedAt": started_at, "bootId": boot_id, "host": host,
                              "source": source}
    if pid is not None:
        doc["pid"] = pid
    if overlap:
        doc["overlap"] = overlap
    atomic_write(directory, run_id + SUFFIX, _encode(doc).encode("utf-8"), durable=True, setting="data_dir")
    return overlap


def _ended(doc: dict, unit: str | None) -> bool:
    """Whether a record of this boot is a leftover of a run that has ended (its finish was
    killed before it could remove it): systemd never runs one unit twice at once, and a
    ``run`` whose process is gone is over."""
    source = doc.get("source")
    systemd = source.get("systemd") if isinstance(source, dict) else None
    if unit and isinstance(systemd, dict) and systemd.get("unit") == unit:
        return True
    pid = doc.get("pid")
    if isinstance(pid, int) and pid > 0:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            pass  # EPERM: another user's process, alive
    return False


def end(data_dir: str, slug: str, run_id: str) -> None:
    """The run's heartbeat is delivered, dropped or spooled: forget the run (gone already is fine)."""
    if not run_id or not set(run_id) <= _UUID:
        return  # read from a spool file: never a path
    try:
        os.unlink(os.path.join(running_dir(data_dir), slug, run_id + SUFFIX))
    except FileNotFoundError:
        pass
    except OSError as e:
        raise StateError(f"cannot remove the in-progress record of run {run_id}: {e.strerror}") from None


def overlap(data_dir: str, slug: str, run_id: str) -> dict:
    """What ``begin`` found of other runs of ``slug`` going on when ``run_id`` started ({}: none)."""
    found = _read(os.path.join(running_dir(data_dir), slug), [run_id + SUFFIX])
    return dict(found[0].get("overlap") or {}) if found else {}


def records(data_dir: str) -> list[dict]:
    """Every run in progress (or left over from an earlier boot), oldest start first; a
    record that cannot be read is skipped."""
    found = []
    try:
        slugs = sorted(os.listdir(running_dir(data_dir)))
    except OSError:
        return []
    for slug in slugs:
        directory = os.path.join(running_dir(data_dir), slug)
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(SUFFIX))
        except OSError:
            continue
        found += [doc for doc in _read(directory, names) if doc.get("slug") == slug]
    return sorted(found, key=lambda d: float(d.get("startedAt") or 0))


def _read(directory: str, names: list[str]) -> list[dict]:
    """The records named, each a dict whose runId matches its name; the unreadable left out."""
    import json  # here: start imports this module too, and json brings re; start reads no record

    found = []
    for name in names:
        try:
            doc = json.loads(read_private(os.path.join(directory, name)))
            if isinstance(doc, dict) and doc.get("runId") == name[:-len(SUFFIX)]:
                float(doc.get("startedAt"))  # type: ignore[arg-type]
                found.append(doc)
        except (OSError, ValueError, TypeError, StateError):
            continue
    return found


def interrupted(doc: dict, boot_started: float) -> tuple[str, dict]:
    """The failed heartbeat's (slug, fields) for a run that never reported: one an earlier
    boot cut off, or one whose finish was killed (``cutOff``: when a later run found it).
    Its own id and start, no duration (when it ended is unknown), finished at the latest
    when this boot began, or when the later run started."""
    started = float(doc["startedAt"])
    cut_off = doc.get("cutOff")
    source = dict(doc.get("source") or {})
    source["interrupted"] = {"bootId": str(doc.get("bootId", ""))} if cut_off is None else {"cutOff": True}
    ended = float(cut_off) if cut_off is not None else boot_started
    return str(doc["slug"]), {
        "run_id": str(doc["runId"]), "status": "failed", "finished_at": max(started, ended),
        "duration_ms": None, "started_at": started, "host": doc.get("host") or None, "source": source,
        "message": (INTERRUPTED if cut_off is None else CUT_OFF).format(started=rfc3339(started)),
    }


def settle(data_dir: str, slug: str, run_id: str, report: Callable[[], None]) -> None:
    """Under a lock on the record of ``run_id``, while it still exists: ``report()`` (which
    spools its heartbeat), then remove it. Two processes that both found the record (the
    flush and a hook after a boot) never both report it."""
    try:
        fd = os.open(os.path.join(running_dir(data_dir), slug, run_id + SUFFIX), O_READ_PRIVATE)
    except FileNotFoundError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # another process is reporting it
        if os.fstat(fd).st_nlink == 0:
            return  # reported and removed while we looked
        report()
        end(data_dir, slug, run_id)
    finally:
        os.close(fd)


def boot_started(stat_path: str = "/proc/stat") -> float:
    """When this boot began (Unix time, whole seconds as the kernel says it: the same in
    every process, so two that convert one record write the same heartbeat)."""
    try:
        with open(stat_path, "rb") as f:
            for line in f:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def _encode(value: object) -> str:
    """JSON for the record's strings, numbers and dicts of them."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_encode(str(k))}:{_encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return '"' + "".join(c if c >= " " and c not in '"\\' else f"\\u{ord(c):04x}" for c in value) + '"'
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    raise TypeError(f"cannot record {type(value).__name__}")
