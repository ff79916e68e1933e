"""Heartbeats that could not be delivered yet, kept on disk for replay.

One file per heartbeat, named so that names sort oldest first, holding the
Idempotency-Key on its first line and then the exact request body: a replay is
byte-identical and keeps the run's real ``finishedAt``. Senders claim a file
with ``flock`` so a hook and the flush timer never send one file at once.
What a replayed answer means is not decided here: ``flush`` asks its caller.

Every heartbeat is written here before its first attempt (``hold``), claimed by
its sender, and removed once delivered or dropped: a sender killed at any moment
leaves it for the next flush. Only a kept one is fsynced (``Held.keep``): an
fsync right after a job has filled the disk can wait seconds for ext4's journal,
and the power-loss case before that is covered by the in-progress record
(inflight.py) that ``start`` and ``run`` write durably before the job starts
(``ping`` and the library have none).
"""

from __future__ import annotations

import fcntl
import os
import stat
import time
from collections.abc import Callable  # not typing: that is milliseconds of every finish

from seestack_systemd.errors import StateError
from seestack_systemd.record import Record
from seestack_systemd.files import O_READ_PRIVATE, atomic_write, elsewhere, secure_dir

SUFFIX = ".heartbeat"


class FlushResult(Record):
    """What a flush did: sent (or found already accepted), dropped as refused, left."""

    sent: int = 0
    dropped: int = 0
    left: int = 0
    stopped_by: str = ""  # why it stopped early, '' when the spool was emptied


def entries(spool_dir: str) -> list[str]:
    """Spooled file names, oldest first ([] when there is no spool yet); StateError when
    the spool cannot be read."""
    try:
        return sorted(n for n in os.listdir(spool_dir) if n.endswith(SUFFIX))
    except FileNotFoundError:
        return []
    except OSError as e:
        raise StateError(f"cannot read the spool {spool_dir}: {e.strerror}{elsewhere('spool_dir')}") from None


class Held:
    """A heartbeat written ahead into the spool, claimed (``flock``) by its sender until
    ``done`` removes it or ``keep`` leaves it, durably, for a replay."""

    def __init__(self, spool_dir: str, name: str, fd: int) -> None:
        self.spool_dir, self.name, self.fd = spool_dir, name, fd

    def done(self) -> None:
        """Delivered or dropped: remove it (a flush that opened it meanwhile sees it unlinked)."""
        _unlink(os.path.join(self.spool_dir, self.name))
        self.release()

    def keep(self, max_files: int, max_bytes: int) -> int:
        """Leave it for a replay, on disk across a power loss; drop the oldest beyond the
        bounds. Returns how many were dropped; StateError when it cannot be made durable."""
        try:
            os.fsync(self.fd)
            _fsync_dir(self.spool_dir)
        except OSError as e:
            raise StateError(f"cannot sync {self.spool_dir}/{self.name}: {e.strerror}") from None
        finally:
            self.release()
        return prune(self.spool_dir, max_files, max_bytes)

    def release(self) -> None:
        """Let go of the claim (closing the file ends the lock); idempotent."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def hold(spool_dir: str, run_id: str, body: bytes, finished_at: float) -> Held:
    """Write one heartbeat into the spool, already claimed by the caller: it is locked
    before its name appears, so no flush can send it while its sender still may."""
    secure_dir(spool_dir, setting="spool_dir")
    name = entry_name(run_id, finished_at)
    tmp = os.path.join(spool_dir, f".{name}.{os.urandom(6).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        raise StateError(f"cannot write in {spool_dir}: {e.strerror}{elsewhere('spool_dir')}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = memoryview(run_id.encode("ascii") + b"\n" + body)
        while data:
            data = data[os.write(fd, data):]
        os.fchmod(fd, 0o600)  # the umask must not loosen or tighten it
        os.rename(tmp, os.path.join(spool_dir, name))
    except OSError as e:
        os.close(fd)
        _unlink(tmp)
        raise StateError(f"cannot write {spool_dir}/{name}: {e.strerror}") from None
    return Held(spool_dir, name, fd)


def holds(spool_dir: str, run_id: str) -> bool:
    """Whether the spool holds a whole heartbeat of ``run_id`` (a file a power loss left
    empty, never synced, does not count)."""
    try:
        names = [n for n in entries(spool_dir) if n.endswith(f"-{run_id}{SUFFIX}")]
    except StateError:
        return False
    for name in names:
        try:
            with open(os.path.join(spool_dir, name), "rb") as f:
                key, _, body = f.read(1 << 20).partition(b"\n")
        except OSError:
            continue
        if key == run_id.encode("ascii") and body.startswith(b"{") and body.endswith(b"}"):
            return True
    return False


def entry_name(run_id: str, finished_at: float) -> str:
    """A spooled heartbeat's file name: oldest first when sorted, one per run."""
    return f"{int(finished_at * 1000):013d}-{run_id}{SUFFIX}"


def put(spool_dir: str, run_id: str, body: bytes, finished_at: float, max_files: int, max_bytes: int) -> int:
    """Spool one heartbeat durably; drop the oldest beyond the bounds. Returns how many were dropped."""
    secure_dir(spool_dir, setting="spool_dir")
    atomic_write(spool_dir, entry_name(run_id, finished_at), run_id.encode("ascii") + b"\n" + body, durable=True,
                 setting="spool_dir")
    return prune(spool_dir, max_files, max_bytes)


def prune(spool_dir: str, max_files: int, max_bytes: int) -> int:
    """Drop the oldest heartbeats beyond the bounds (the newest always stays); how many."""
    names = entries(spool_dir)
    sizes = []
    for n in names:
        try:
            sizes.append(os.lstat(os.path.join(spool_dir, n)).st_size)
        except OSError:
            sizes.append(0)
    dropped = 0
    total = sum(sizes)
    while names and (len(names) > max(1, max_files) or (total > max_bytes and len(names) > 1)):
        _unlink(os.path.join(spool_dir, names.pop(0)))
        total -= sizes.pop(0)
        dropped += 1
    return dropped


def stats(spool_dir: str, now: float | None = None) -> tuple[int, float | None]:
    """(how many heartbeats wait, age in seconds of the oldest one or None)."""
    names = entries(spool_dir)
    if not names:
        return 0, None
    oldest_ms = names[0].split("-", 1)[0]
    age = (now or time.time()) - int(oldest_ms) / 1000 if oldest_ms.isdigit() else None
    return len(names), age


def flush(spool_dir: str, send_one: Callable[[str, bytes], tuple[str, str]], deadline_at: float,
          log: Callable[[str, str], None], clock: Callable[[], float] = time.monotonic) -> FlushResult:
    """Hand spooled heartbeats oldest first to ``send_one(run_id, body)``, which answers
    (action, detail): "done" removes the file, "drop" removes it as refused, anything
    else stops the flush with ``detail`` as the reason. Stops too at ``deadline_at``."""
    result = FlushResult()
    try:
        names = entries(spool_dir)
    except StateError as e:
        log("error", f"spool not replayed: {e}")
        result.stopped_by = str(e)
        return result
    if not names:
        return result
    try:
        secure_dir(spool_dir, create=False, setting="spool_dir")
    except StateError as e:
        log("error", f"spool not replayed: {e}")
        result.left, result.stopped_by = len(names), str(e)
        return result
    for index, name in enumerate(names):
        if clock() >= deadline_at:
            result.stopped_by = "out of time"
        else:
            result.stopped_by = _replay_one(os.path.join(spool_dir, name), send_one, result, log)
        if result.stopped_by:
            result.left = len(names) - index
            break
    return result


def _replay_one(path: str, send_one: Callable[[str, bytes], tuple[str, str]], result: FlushResult,
                log: Callable[[str, str], None]) -> str:
    """Send one spooled file; '' to go on with the next, or why to stop."""
    try:
        fd = os.open(path, O_READ_PRIVATE)
    except FileNotFoundError:
        return ""  # someone else sent it
    except OSError as e:
        log("error", f"cannot open spooled heartbeat {path}: {e.strerror}; removing it")
        _unlink(path)
        return ""
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return ""  # claimed by a concurrent sender
        st = os.fstat(fd)
        if st.st_nlink == 0:
            return ""  # sent and removed while we waited
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_size > 1 << 20:
            log("error", f"removing {path}: not a spooled heartbeat of ours")
            _remove_entry(path)
            return ""
        data = os.read(fd, st.st_size)
        run_id, _, body = data.partition(b"\n")
        if not body or len(run_id) != 36:
            log("error", f"removing corrupt spooled heartbeat {path}")
            _unlink(path)
            result.dropped += 1
            return ""
        action, detail = send_one(run_id.decode("ascii", "replace"), body)
        if action == "done":
            result.sent += 1
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass  # dropped meanwhile by a full spool's clean-up: gone is what we wanted
            except OSError as e:
                # Left in place it would be sent again on every run: stop and say why.
                log("error", f"cannot remove delivered heartbeat {path}: {e.strerror}; fix the spool's permissions")
                return f"cannot remove {path}"
            return ""
        if action != "drop":
            return detail
        _unlink(path)
        result.dropped += 1
        return ""
    finally:
        os.close(fd)


def _remove_entry(path: str) -> None:
    """Remove a file, or an empty directory someone put in the spool's way."""
    try:
        os.rmdir(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    except OSError:
        pass


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
