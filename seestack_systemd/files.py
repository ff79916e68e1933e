"""Private files written by a root-run hook: atomic, never through a planted symlink.

Every path handed in here is built from validated parts (slugs, invocation ids),
and the directories are checked before use: a directory that root does not own,
or that others can write to, could let someone else swap files under the hook.
"""

from __future__ import annotations

import os
import stat

from seestack_systemd.errors import StateError

# A record or spooled heartbeat is a few KiB; anything far larger is not ours.
MAX_FILE_BYTES = 1 << 20
# O_NONBLOCK: a FIFO planted under a record's name must not hang a hook on open.
O_READ_PRIVATE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


# How to point a setting elsewhere, for the errors about the directory it names.
_SET_ELSEWHERE = {
    "state_dir": "state_dir (SEESTACK_STATE_DIR, --state-dir)",
    "data_dir": "data_dir (SEESTACK_DATA_DIR, --data-dir)",
    "spool_dir": "data_dir (SEESTACK_DATA_DIR, --data-dir) or spool_dir (SEESTACK_SPOOL_DIR)",
}


def elsewhere(setting: str | None) -> str:
    """The end of a permission error: which setting moves the directory to one of the user's own."""
    if setting not in _SET_ELSEWHERE:
        return ""
    return f"; to use a directory of your own, set {_SET_ELSEWHERE[setting]}"


def secure_dir(path: str, create: bool = True, setting: str | None = None) -> str:
    """Return ``path`` after checking it is a real directory owned by us and not
    writable by others; create it 0700 (parents 0755) when missing and ``create``.
    Errors about permissions end with how to set ``setting`` to another directory."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        if not create:
            raise StateError(f"{path} does not exist")
        try:
            parent = os.path.dirname(path.rstrip("/"))
            if parent and not os.path.isdir(parent):
                os.makedirs(parent, 0o755, exist_ok=True)
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as e:
            raise StateError(f"cannot create directory {path}: {e.strerror}; check that its parent is writable"
                             f"{elsewhere(setting)}") from None
        st = os.lstat(path)
    except OSError as e:
        raise StateError(f"cannot use directory {path}: {e.strerror}{elsewhere(setting)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise StateError(f"{path} is not a directory (a symlink or file is in its place): remove it, it is recreated")
    if st.st_uid != os.geteuid():
        if os.geteuid() != 0 and setting in _SET_ELSEWHERE:  # a user cannot chown; another directory is the fix
            raise StateError(f"refusing {path}: it is owned by uid {st.st_uid}, not you (uid {os.geteuid()})"
                             f"{elsewhere(setting)}")
        raise StateError(f"refusing {path}: it is owned by uid {st.st_uid}, not {os.geteuid()};"
                         f" fix: chown {os.geteuid()} {path}"
                         f"{elsewhere(setting)}")
    if st.st_mode & 0o022:
        if st.st_mode & stat.S_ISVTX:  # a shared directory such as /tmp: chmod would break it for others
            raise StateError(f"refusing {path}: it is shared with other users (a sticky directory such as /tmp)"
                             f"{elsewhere(setting)}")
        raise StateError(f"refusing {path}: others can write to it; fix: chmod 700 {path}")
    return path


def atomic_write(directory: str, name: str, data: bytes, durable: bool = False, mode: int = 0o600,
                 setting: str | None = None, replace: bool = True) -> str:
    """Write ``data`` to ``directory/name`` (``mode``, default 0600) via an O_EXCL temporary file and
    rename, so readers see the old file or the new one, never half. ``durable`` fsyncs
    file and directory, for what must survive a power loss (the spool). ``replace=False``
    removes the old file just before the rename, for a record a reader may miss for an
    instant: ext4 writes a file's data out before a rename may replace another
    (auto_da_alloc), milliseconds on a disk the job just kept busy. A directory we may
    not write in is said with how to set ``setting`` to another."""
    final = os.path.join(directory, name)
    tmp = os.path.join(directory, f".{name}.{os.urandom(6).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        raise StateError(f"cannot write in {directory}: {e.strerror}{elsewhere(setting)}") from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)  # the umask must not loosen or tighten it
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        if not replace:
            try:
                os.unlink(final)
            except FileNotFoundError:
                pass
        os.rename(tmp, final)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise StateError(f"cannot write {final}: {e.strerror}") from None
    if durable:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return final


def read_private(path: str) -> bytes:
    """Read a file we wrote: not through a symlink, only a regular file of ours."""
    try:
        fd = os.open(path, O_READ_PRIVATE)
    except OSError as e:
        if e.errno == 40:  # ELOOP: the name is a symlink someone planted
            raise StateError(f"refusing {path}: it is a symlink") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise StateError(f"refusing {path}: not a regular file")
        if st.st_uid != os.geteuid():
            raise StateError(f"refusing {path}: it is owned by uid {st.st_uid}, not uid {os.geteuid()}")
        if st.st_size > MAX_FILE_BYTES:
            raise StateError(f"refusing {path}: {st.st_size} bytes is too large to be ours")
        chunks: list[bytes] = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def read_regular(path: str, limit: int) -> tuple[bytes, os.stat_result]:
    """Read a settings file (config, API key) that need not be ours: opened without
    blocking, so a FIFO in its place cannot hang the job; only a regular file; at most
    ``limit`` bytes, so ``/dev/zero`` or a huge file cannot be read without end. Raises
    OSError from open (FileNotFoundError, PermissionError...) and StateError for the rest."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                    or stat.S_ISBLK(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode) else "not a file")
            raise StateError(f"{path} is {kind}, not a regular file")
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                return b"".join(chunks), st
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise StateError(f"{path} is larger than {limit} bytes")
    finally:
        os.close(fd)
