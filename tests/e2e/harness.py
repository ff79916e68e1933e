"""Boot real Debian systemd in containers for the end-to-end suite (root only).

Small API, built on ``debootstrap`` and ``systemd-nspawn`` (no Docker engine):

    rootfs(release, extra_packages=(), log=say) -> Path       # cached pristine tree
    require_root(reason)                                    # skip (or fail in CI)
    with Container("debian-12", binds=[(host, "/mnt/x", True)]) as c:
        c.run(["systemctl", "is-system-running"])             # CompletedProcess, text
        c.sh("echo hi > /tmp/x"); c.systemctl("start", "foo.service")
        c.write_file("/etc/systemd/system/foo.service", text); c.read_file("/etc/os-release")
        c.journal("foo.service", contains="done")
    # persistent=PATH: boots a read-write copy; c.kill() then c.boot() is a reboot after power loss.

Facts behind the boot recipe (flags, cgroups, timings) are in
/work/shared/e2e-systemd-containers.md. Containers share the host's network namespace, so a
server the test binds on host 127.0.0.1 (port 0) is reachable from inside.
"""

import atexit
import fcntl
import glob
import hashlib
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

RELEASES = {"debian-11": "bullseye", "debian-12": "bookworm", "debian-13": "trixie"}

# What every root filesystem gets: a bootable systemd, D-Bus for systemctl, the Python the
# agent runs under, and man-db/groff-base so the package tests can render the man page
# (measured: +4 s on a ~45 s build, +11 MB). Real parts the suite puts in front of the agent:
# nginx (TLS), tinyproxy (CONNECT proxy), ca-certificates and openssl (a private CA in the
# system store), curl (the bench's healthchecks-style baseline), and libpam-systemd with
# dbus-user-session for lingering users' managers. One list, so one cache per release.
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "man-db", "groff-base", "nginx", "tinyproxy",
                 "ca-certificates", "openssl", "curl", "libpam-systemd", "dbus-user-session")
# Installed above but started only by the tests that use them, on ports of their own: the
# containers share the host's network, so three default nginx on port 80 would collide.
MASKED_UNITS = ("nginx.service", "tinyproxy.service")

CACHE_DIR = Path("/var/cache/seestack-e2e")
# Console output of each container (boot messages, nspawn's own errors), kept after the
# container is gone so a failure can be read afterwards; a few KB each.
LOG_DIR = Path(tempfile.gettempdir()) / "seestack-e2e"
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# Bump when _customize() changes, so existing caches are rebuilt rather than silently reused.
_SETUP_VERSION = "3"
# A fixed PATH for the host tools and the commands run inside: the caller's PATH (pyenv
# shims, a non-root PATH without /usr/sbin) must not leak into either.
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_BOOT_TIMEOUT = 60.0
_POWEROFF_TIMEOUT = 30.0

Log = Callable[[str], None]
Bind = Tuple[Union[str, Path], str, bool]


def say(message: str) -> None:
    """The default log: print one line in a single write, so lines from parallel builds
    or boots do not interleave (print() writes the text and the newline separately)."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


class CommandFailed(AssertionError):
    """A command run inside a container exited non-zero (an assertion failure in a test)."""

    def __init__(self, container: str, argv: Sequence[str], result: subprocess.CompletedProcess):
        self.result = result
        super().__init__(
            f"in {container}: {shlex.join(argv)} exited {result.returncode}\n"
            f"--- stdout ---\n{_as_text(result.stdout)}--- stderr ---\n{_as_text(result.stderr)}"
        )


class BootError(RuntimeError):
    """A container did not reach running/degraded (or could not be started at all)."""


def _as_text(data: Union[str, bytes, None]) -> str:
    if isinstance(data, bytes):
        data = data.decode("utf-8", "replace")
    return data or ""


def _tool(name: str) -> str:
    path = shutil.which(name, path=_PATH)
    if path is None:
        raise RuntimeError(f"{name} not found; run tests/install-deps.sh as root")
    return path


class ReleaseTest:
    """Mixin for the tests of one release: ``release`` names it, and every line the
    runner prints for them starts with it."""

    release = ""

    def shortDescription(self) -> str:
        return f"{self.release}: {super().shortDescription()}"


def per_release(base: type, namespace: dict) -> None:
    """Define Debian11, Debian12 and Debian13 in ``namespace`` (a test module's globals()):
    ``base``'s tests run once per release."""
    for release in RELEASES:
        name = "Debian" + release.split("-")[1]
        namespace[name] = type(name, (base, unittest.TestCase),
                               {"release": release, "__module__": namespace["__name__"], "__qualname__": name})


def require_root(reason: str) -> None:
    """Skip the calling test(s) where containers cannot run; fail instead when CI is set.

    Raises unittest.SkipTest naming what is missing (root, systemd-nspawn, ...), or
    RuntimeError when the CI environment variable is set: in CI the e2e suite must never
    pass by skipping.
    """
    missing = [] if os.geteuid() == 0 else ["root"]
    missing += [t for t in ("systemd-nspawn", "nsenter", "debootstrap") if not shutil.which(t, path=_PATH)]
    if not missing:
        return
    message = f"{reason}: needs {', '.join(missing)} (run as root; tests/install-deps.sh installs the tools)"
    if "CI" in os.environ:
        raise RuntimeError(message + " -- CI is set, so this is a failure, not a skip")
    raise unittest.SkipTest(message)


# --- root filesystems -------------------------------------------------------------------


def host_mirror() -> str:
    """The main Debian archive URI from the host's deb822 apt sources, else deb.debian.org."""
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        for stanza in re.split(r"\n\s*\n", text):
            fields = {k.lower(): v.split() for k, v in re.findall(r"^([A-Za-z-]+):(.*)$", stanza, re.M)}
            uris = fields.get("uris", [])
            # The main archive carries a bare codename suite with the "main" component; this
            # skips debian-security, *-updates-only stanzas and third-party repositories.
            if (
                "deb" in fields.get("types", [])
                and uris
                and "security" not in uris[0]
                and "main" in fields.get("components", [])
                and any("-" not in s and "/" not in s for s in fields.get("suites", []))
            ):
                return uris[0]
    return DEFAULT_MIRROR


def rootfs(release: str, extra_packages: Sequence[str] = (), log: Log = say) -> Path:
    """Return the pristine cached root filesystem for a release, building it once.

    The tree lives in /var/cache/seestack-e2e/<codename>-<hash of the package list and of
    _SETUP_VERSION>/. It is
    debootstrapped into a temporary sibling and renamed into place, so an interrupted build
    never leaves a half cache; a flock on a lock file serialises builders of the same tree
    (threads and processes alike). Never boot it read-write: Container overlays or copies it.
    """
    if release not in RELEASES:
        raise ValueError(f"unknown release {release!r}; expected one of {', '.join(RELEASES)}")
    codename = RELEASES[release]
    packages = list(dict.fromkeys([*BASE_PACKAGES, *extra_packages]))
    digest = hashlib.sha256(",".join([_SETUP_VERSION, *sorted(packages)]).encode()).hexdigest()[:10]
    key = f"{codename}-{digest}"
    dest = CACHE_DIR / key
    if dest.is_dir():
        return dest
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if dest.is_dir():  # another builder finished while we waited for the lock
            return dest
        # Holding the lock, any temporary tree of this key is a killed build's leftover.
        for stale in CACHE_DIR.glob(f".{key}.tmp-*"):
            _remove_tree(Path(stale))
        log(f"{release}: building root filesystem (about a minute, once)...")
        started = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=CACHE_DIR))
        try:
            # mkdtemp makes it 0700, and this directory becomes the container's "/": User=
            # and DynamicUser= services could not even traverse it.
            tmp.chmod(0o755)
            _debootstrap(codename, packages, tmp, CACHE_DIR / f"{key}.log")
            _customize(tmp)
            os.rename(tmp, dest)
        except BaseException:
            _remove_tree(tmp)
            raise
        log(f"{release}: root filesystem ready in {time.monotonic() - started:.0f}s: {dest}")
    return dest


def _debootstrap(codename: str, packages: Sequence[str], target: Path, log_path: Path) -> None:
    argv = [
        _tool("debootstrap"), "--variant=minbase", "--include=" + ",".join(packages),
        codename, str(target), host_mirror(),
    ]
    with open(log_path, "w") as out:
        proc = subprocess.run(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env={"PATH": _PATH, "LC_ALL": "C"}, check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(argv)} exited {proc.returncode}; full log: {log_path}\n{_tail(log_path)}"
        )


def _customize(root: Path) -> None:
    """The few changes to a fresh debootstrap tree that make the suite reliable."""
    # debootstrap keeps the downloaded .debs (about 46 MB): dropping them makes the cache and
    # every persistent copy smaller and faster to copy; apt can fetch them again if needed.
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    # journald's default rate limit (10,000 messages / 30 s per service) drops lines of
    # chatty test jobs, and tests assert on what reached the journal.
    conf = root / "etc/systemd/journald.conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "seestack-e2e.conf").write_text("[Journal]\nRateLimitIntervalSec=0\n")
    # debootstrap copies the host's /etc/hostname; without it systemd keeps the hostname
    # nspawn sets, the container's unique name, so each container is told apart by hostname.
    (root / "etc/hostname").unlink(missing_ok=True)
    # Debian 11/12's minbase has no /etc/hosts (13's netbase ships one): "localhost" would
    # then go to the host's DNS resolver, slow or failing offline.
    hosts = root / "etc/hosts"
    if not hosts.exists():
        hosts.write_text("127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n")
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        link.unlink(missing_ok=True)
        link.symlink_to("/dev/null")
    # Left as is on purpose: /etc/machine-id. debootstrap writes one per tree, so every
    # container booted from one cache shares it; an empty one would instead make each boot
    # a systemd "first boot" (presets, ConditionFirstBoot units), which is less predictable.


def _mounts_under(path: Path) -> List[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point.startswith(prefix):
                found.append(point)
    return found


def _remove_tree(path: Path) -> None:
    """rm -rf that first unmounts whatever is mounted inside the tree.

    A killed debootstrap can leave the host's /proc, /sys or /dev mounted inside its target;
    a plain rmtree would then walk into them (and delete host device nodes).
    """
    for point in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False)
    left = _mounts_under(path)
    if left:
        raise RuntimeError(f"not removing {path}: still mounted inside: {', '.join(left)}")
    shutil.rmtree(path, ignore_errors=True)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as e:
        return f"(no output: {e})"
    # The console is a pty: drop its carriage returns, blank lines and systemd's colours.
    text = re.sub(r"\x1b\[[0-9;]*m", "", text.replace("\r", ""))
    return "".join([line for line in text.splitlines(True) if line.strip()][-lines:])


# --- containers -------------------------------------------------------------------------


def _children(pid: int) -> List[int]:
    """PIDs whose parent is pid (scans /proc: /proc/PID/task/*/children is optional in kernels)."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process exited while we looked
        if int(fields[1]) == pid:
            found.append(int(stat.split("/")[2]))
    return found


def _is_namespace_init(pid: int) -> bool:
    """True when pid is PID 1 of its own PID namespace (NSpid: <host pid> ... 1)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    ids = line.split()[1:]
                    return len(ids) > 1 and ids[-1] == "1"
    except OSError:
        pass
    return False


def _cgroup_roots() -> List[Path]:
    """Where a per-container host cgroup goes: both hierarchies of a hybrid (v1 + unified)
    layout as on the project's machines, or the single cgroup2 tree of a unified-only host."""
    hybrid = [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified")]
    return [p for p in hybrid if p.is_dir()] or [Path("/sys/fs/cgroup")]


def _escape_bind(path: str) -> str:
    # nspawn splits --bind= on ':' and interprets backslash escapes.
    return path.replace("\\", "\\\\").replace(":", "\\:")


# Containers still running, killed at interpreter exit (Ctrl-C, a test that forgot to power
# off, setUpClass failing before tearDownClass exists) so none outlives the test run.
_live: "set[Container]" = set()
_live_lock = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live)
    for container in leftovers:
        container.kill()


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


# SIGTERM (CI cancelling a job, timeout(1)) would end Python without atexit handlers and
# leave containers and cgroups behind; as KeyboardInterrupt it unwinds like Ctrl-C, which
# unittest lets through. Only where nobody installed a handler, and only from the main
# thread (the only one allowed to).
if threading.current_thread() is threading.main_thread() and (
    signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
):
    signal.signal(signal.SIGTERM, _sigterm)


class Container:
    """A booted Debian systemd container; a context manager (boot on enter, poweroff on exit).

    By default it boots with --volatile=overlay over the cached root filesystem, so all
    changes vanish with it. With persistent=PATH the root filesystem is copied to PATH once
    (if PATH is missing or an empty directory) and booted read-write: kill() then boot()
    boots the same tree again, as after a power loss. PATH is the caller's to delete.
    """

    def __init__(
        self,
        release: str,
        name: Optional[str] = None,
        binds: Sequence[Bind] = (),
        persistent: Optional[Path] = None,
        log: Log = say,
    ) -> None:
        if release not in RELEASES:
            raise ValueError(f"unknown release {release!r}; expected one of {', '.join(RELEASES)}")
        self.release = release
        # Unique per container: it is the hostname inside and the host cgroup's name.
        self.name = name or f"e2e-{RELEASES[release]}-{os.getpid()}-{secrets.token_hex(3)}"
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{0,62}", self.name):
            raise ValueError(f"container name {self.name!r} must be a hostname (letters, digits, '-')")
        self.binds = [(str(host), str(inside), bool(ro)) for host, inside, ro in binds]
        self.persistent = Path(persistent) if persistent is not None else None
        self.log = log
        self.console_log = LOG_DIR / f"{self.name}.log"
        self.pid1: Optional[int] = None
        self._proc: Optional[subprocess.Popen] = None
        self._cgroups = [root / self.name for root in _cgroup_roots()]

    # -- lifecycle --

    def __enter__(self) -> "Container":
        self.boot()
        return self

    def __exit__(self, *exc) -> None:
        self.poweroff()

    @property
    def running(self) -> bool:
        """Whether the nspawn process is still alive."""
        return self._proc is not None and self._proc.poll() is None

    def boot(self, timeout: float = _BOOT_TIMEOUT) -> None:
        """Start the container and wait until systemd reports running or degraded.

        Builds the root filesystem first if it is not cached (not counted in timeout). On
        any failure the container is killed and its cgroups removed before the error rises.
        """
        if self.running:
            raise RuntimeError(f"{self.name} is already running")
        root = self._prepare_root()
        with _live_lock:
            _live.add(self)
        try:
            self._start(root)
            self._wait_booted(timeout)
        except BaseException:
            self.kill()
            raise

    def poweroff(self, timeout: float = _POWEROFF_TIMEOUT) -> None:
        """Clean shutdown (systemctl poweroff), bounded: kill() if nspawn has not exited in time."""
        if not self.running:
            self._reap()
            return
        try:
            # systemctl may be killed by the shutdown it started; its exit code means nothing.
            _run_group(self._nsenter(["systemctl", "poweroff"]), None, 10, self._env(None))
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        finally:
            self.kill()

    def kill(self) -> None:
        """SIGKILL the container and nspawn at once (power loss), then remove the host cgroups.

        Idempotent; a no-op for a container that is not running.
        """
        if self.running:
            # Killing PID 1 makes the kernel kill its whole PID namespace at once, so nothing
            # in the container gets to run a shutdown step; then sweep nspawn and anything
            # else in the container's host cgroups.
            pid1 = self.pid1 or next((p for p in _children(self._proc.pid) if _is_namespace_init(p)), None)
            if pid1:
                _signal(pid1)
            deadline = time.monotonic() + 10
            while self._cgroup_pids() and time.monotonic() < deadline:
                for pid in self._cgroup_pids():
                    _signal(pid)
                time.sleep(0.05)
        self._reap()

    def _reap(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        self.pid1 = None
        self._remove_cgroups()
        # nspawn leaves this directory behind when killed, and also on a clean exit where
        # /run is not a tmpfs ("Attempted to remove disk file system ... can't allow that").
        propagate = Path("/run/systemd/nspawn/propagate") / self.name
        if propagate.exists():
            _remove_tree(propagate)
        with _live_lock:
            _live.discard(self)

    def _prepare_root(self) -> Path:
        pristine = rootfs(self.release, log=self.log)
        target = self.persistent
        if target is None:
            return pristine
        if target.is_dir() and any(target.iterdir()):
            return target  # copied by an earlier boot: boot the same state again
        self.log(f"{self.release}: copying root filesystem to {target}")
        partial = target.with_name(target.name + ".partial")
        if partial.exists():
            _remove_tree(partial)
        # Copy into a sibling and rename, so an interrupted copy is never booted as a tree.
        subprocess.run(["cp", "-a", "--reflink=auto", str(pristine), str(partial)], check=True)
        os.rename(partial, target)  # rename(2) replaces an empty directory
        return target

    def _start(self, root: Path) -> None:
        for cgroup in self._cgroups:
            cgroup.mkdir(exist_ok=True)
        argv = [
            _tool("systemd-nspawn"),
            # No systemd/D-Bus on the host: without both of these nspawn fails to register.
            "--register=no", "--keep-unit",
            "--boot", "-D", str(root), f"--machine={self.name}",
            # A console (read-only pty) is needed by systemd as PID 1 (pipe mode gives none);
            # its output goes to console_log.
            "--console=read-only",
            # The default "auto" would link the journal into a host /var/log/journal/<id>
            # if one exists, shared by every container of one cache (same machine-id).
            "--link-journal=no",
        ]
        if self.persistent is None:
            argv.append("--volatile=overlay")
        for host, inside, read_only in self.binds:
            option = "--bind-ro" if read_only else "--bind"
            argv.append(f"{option}={_escape_bind(host)}:{_escape_bind(inside)}")
        # Each container needs its own host cgroup (else their systemds share one payload
        # cgroup and misbehave): the shell moves itself into them, then becomes nspawn.
        # Moving the shell, not this Python process, keeps the test runner where it was; a
        # preexec_fn would do the same but is unsafe with threads (boots run in parallel).
        script = "".join(f"echo $$ > {shlex.quote(str(c / 'cgroup.procs'))}; " for c in self._cgroups)
        env = dict(os.environ, PATH=_PATH, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with open(self.console_log, "w") as out:
            # A new session (setsid) keeps the terminal's Ctrl-C away from nspawn: the test
            # process handles it and kills containers at exit.
            self._proc = subprocess.Popen(
                ["sh", "-ec", script + 'exec "$@"', "sh", *argv],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,
            )

    def _wait_booted(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "(PID 1 not found yet)"
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise BootError(self._describe(f"systemd-nspawn exited with {self._proc.returncode}"))
            # The first child of nspawn can be a short-lived helper: look PID 1 up every time.
            pid1 = next((p for p in _children(self._proc.pid) if _is_namespace_init(p)), None)
            if pid1 is not None:
                try:
                    result = _run_group(_nsenter(pid1, ["systemctl", "is-system-running", "--wait"]),
                                        None, max(1.0, deadline - time.monotonic()), self._env(None))
                except subprocess.TimeoutExpired:
                    result = None
                if result is not None:
                    state = result.stdout.strip()
                    if state in ("running", "degraded"):
                        self.pid1 = pid1
                        return
                    last = state or result.stderr.strip()
                    if state in ("maintenance", "stopping"):
                        raise BootError(self._describe(f"systemd is {state!r}"))
            if time.monotonic() >= deadline:
                raise BootError(self._describe(f"not booted after {timeout:.0f}s (last state: {last})"))
            time.sleep(0.1)

    def _describe(self, what: str) -> str:
        return (f"{self.release} container {self.name}: {what}\n"
                f"--- console ({self.console_log}), last lines ---\n{_tail(self.console_log)}")

    def _cgroup_pids(self) -> List[int]:
        pids = set()
        for cgroup in self._cgroups:
            for procs in glob.glob(f"{cgroup}/**/cgroup.procs", recursive=True):
                try:
                    with open(procs) as f:
                        pids.update(int(line) for line in f if line.strip())
                except OSError:
                    continue  # the cgroup went away while we read it
        return sorted(pids)

    def _remove_cgroups(self) -> None:
        # cgroup directories go one rmdir at a time, deepest first (os.walk bottom-up); a
        # just-killed process can keep one busy for a moment, hence the retries.
        deadline = time.monotonic() + 5
        for cgroup in self._cgroups:
            while cgroup.exists():
                for dirpath, _, _ in os.walk(cgroup, topdown=False):
                    try:
                        os.rmdir(dirpath)
                    except OSError:
                        pass
                if not cgroup.exists():
                    break
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"cannot remove cgroup {cgroup}: pids {self._cgroup_pids()}")
                time.sleep(0.05)

    # -- commands inside --

    def _nsenter(self, argv: Sequence[str]) -> List[str]:
        if not self.running or self.pid1 is None:
            raise RuntimeError(f"{self.name} is not running")
        return _nsenter(self.pid1, argv)

    @staticmethod
    def _env(env: Optional[Dict[str, str]]) -> Dict[str, str]:
        # A clean environment like a login shell's: nothing of the host's (proxies, pyenv,
        # locale names the container lacks) leaks into commands run inside.
        return {"PATH": _PATH, "HOME": "/root", "LANG": "C.UTF-8", **(env or {})}

    def run(
        self,
        argv: Sequence[str],
        input: Optional[str] = None,
        check: bool = True,
        timeout: float = 60,
        env: Optional[Dict[str, str]] = None,
    ) -> subprocess.CompletedProcess:
        """Run argv inside the container (as root, via nsenter); text in, text out, captured.

        stdin is input, or /dev/null. On timeout the command is killed inside too and
        subprocess.TimeoutExpired rises. env is added to a clean environment (PATH, HOME=/root,
        LANG=C.UTF-8). With check=True a non-zero exit raises CommandFailed (an AssertionError)
        showing stdout and stderr.
        """
        result = _run_group(self._nsenter(argv), input, timeout, self._env(env))
        if check and result.returncode != 0:
            raise CommandFailed(self.name, argv, result)
        return result

    def sh(self, script: str, **kwargs) -> subprocess.CompletedProcess:
        """Run a shell script inside (/bin/sh -c script); keyword arguments as for run()."""
        return self.run(["/bin/sh", "-c", script], **kwargs)

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run systemctl inside with the given arguments."""
        return self.run(["systemctl", *args], check=check)

    def write_file(self, path: str, content: Union[str, bytes], mode: int = 0o644) -> None:
        """Write a file inside (as root), creating missing parent directories.

        Goes through nsenter and the container's own sh/cat rather than /proc/PID1/root:
        that path resolves absolute symlinks inside the container (/etc/resolv.conf ->
        /run/...) against the host's root, so a write could land on the host.
        """
        data = content.encode() if isinstance(content, str) else content
        argv = ["/bin/sh", "-ec", 'mkdir -p -- "$(dirname -- "$1")"; cat > "$1"; chmod "$2" "$1"',
                "sh", path, format(mode, "o")]
        result = _run_group(self._nsenter(argv), data, 60, self._env(None))
        if result.returncode != 0:
            raise CommandFailed(self.name, argv, result)

    def read_file(self, path: str) -> str:
        """The text of a file inside."""
        return self.run(["cat", "--", path]).stdout

    def journal(self, unit: str, contains: Optional[str] = None, timeout: float = 10) -> str:
        """The unit's journal messages (journalctl -u UNIT -o cat), one per line.

        With contains, polls until that text appears (journald can lag a unit's exit by a
        fraction of a second) and raises AssertionError after timeout.
        """
        argv = ["journalctl", "--no-pager", "--quiet", "-o", "cat", "-u", unit]
        deadline = time.monotonic() + timeout
        while True:
            text = self.run(argv).stdout
            if contains is None or contains in text:
                return text
            if time.monotonic() >= deadline:
                raise AssertionError(f"{contains!r} not in the journal of {unit} after {timeout}s:\n{text}")
            time.sleep(0.05)


def _nsenter(pid1: int, argv: Sequence[str]) -> List[str]:
    return [_tool("nsenter"), f"--target={pid1}", "--mount", "--uts", "--ipc", "--net", "--pid", "--", *argv]


def _run_group(
    argv: Sequence[str], input: Union[str, bytes, None], timeout: float, env: Dict[str, str]
) -> subprocess.CompletedProcess:
    """subprocess.run(capture_output=True, check=False), text unless input is bytes, with
    stdin /dev/null when there is no input, and on timeout SIGKILL to the whole process group:
    nsenter --pid forks, and killing nsenter alone would leave its child running inside."""
    text = not isinstance(input, bytes)
    with subprocess.Popen(
        argv, stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True,
        **({"encoding": "utf-8", "errors": "replace"} if text else {}),
    ) as proc:
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.communicate()
            raise
    return subprocess.CompletedProcess(list(argv), proc.returncode, out, err)


def _signal(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_until(what: str, check: Callable[[], object], timeout: float = 20.0, every: float = 0.1,
               detail: Callable[[], str] = lambda: ""):
    """Poll ``check`` until it returns something true, and return that; AssertionError after
    ``timeout``, with what ``detail()`` says of the state then."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            said = detail()
            raise AssertionError(f"{what}: not after {timeout:.0f}s" + (f"; {said}" if said else ""))
        time.sleep(every)


def rfc3339_to_unix(text: str) -> float:
    """A heartbeat's ``2026-12-05T02:00:00.000Z`` as Unix time."""
    from datetime import datetime, timezone

    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def reserve_port() -> Tuple[socket.socket, int]:
    """A host loopback port that refuses connections until a server is bound to it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]
