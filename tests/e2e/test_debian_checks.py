"""Debian's own checks on the built .deb (root): piuparts on bookworm, and a reproducible build.

- piuparts installs the .deb in a minimal bookworm chroot, removes it, purges it and
  fails on files left behind or changed, on maintainer-script errors and on processes
  left running. Its base is a debootstrap --variant=minbase tarball built once and kept
  in /var/cache/seestack-e2e (keyed like the harness's root filesystems); the Debian
  mirror is the host's (harness.host_mirror()), as for the containers.

- Reproducibility: `make deb` again, from another clean copy, with another umask, another
  time zone and the clock 398 days ahead, must give a byte-identical .deb. build-deb.sh runs
  dpkg-buildpackage with `env -i`, so TZ= and faketime's LD_PRELOAD would not reach the build:
  the second build runs in a private mount namespace whose /etc is an overlay with another
  /etc/localtime, an /etc/ld.so.preload naming libfaketime and an /etc/faketimerc holding the
  offset, which reach every process of the build whatever its environment (the host's /etc
  is untouched). It builds with DEB_BUILD_OPTIONS=nocheck (the unit tests under a shifted
  clock prove nothing here), so it also checks that nocheck changes nothing in the .deb.

The .deb is the one `make deb` built for the whole run (package.built_deb()); it is the
first of the two reproducible builds.
"""

from __future__ import annotations

import datetime
import difflib
import email.utils
import fcntl
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path
from typing import Dict, Optional, Sequence

from tests.e2e import harness
from tests.e2e.package import built_deb, clean_copy

PACKAGE = "seestack-systemd"
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
PIUPARTS_RELEASE = "bookworm"
# Bump when piuparts_base() changes, so an existing tarball is rebuilt rather than reused.
_PIUPARTS_BASE_VERSION = "1"
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
# The second build's clock: this far ahead of the real one (libfaketime's relative offset;
# the clock keeps ticking). Ahead, as a later rebuild is: dpkg clamps newer mtimes to the
# changelog's date (SOURCE_DATE_EPOCH) and keeps older ones.
SHIFT = "+398d"


def host(argv: Sequence[str], timeout: float = 600, env: Optional[Dict[str, str]] = None,
         cwd: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run a host tool with a fixed environment; fail with its output when it exits non-zero."""
    done = subprocess.run([str(a) for a in argv], capture_output=True, text=True, errors="replace",
                          timeout=timeout, env={**HOST_ENV, **(env or {})}, cwd=cwd, stdin=subprocess.DEVNULL)
    if done.returncode:
        raise AssertionError(f"{shlex.join(map(str, argv))} exited {done.returncode}:\n"
                             f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done


def tool(name: str) -> str:
    """A host tool tests/install-deps.sh installs; its absence fails the test (it is never a skip)."""
    path = shutil.which(name, path=HOST_ENV["PATH"])
    if path is None:
        raise AssertionError(f"{name} is not installed: run tests/install-deps.sh as root")
    return path


def piuparts_base(codename: str = PIUPARTS_RELEASE) -> Path:
    """A piuparts base tarball of a minbase debootstrap of ``codename``, built once.

    /var/cache/seestack-e2e/piuparts-<codename>-<hash>.tar.gz, built in a temporary sibling
    and renamed into place under a flock, like harness.rootfs() builds its trees.
    """
    digest = hashlib.sha256(",".join([_PIUPARTS_BASE_VERSION, "minbase", codename]).encode()).hexdigest()[:10]
    key = f"piuparts-{codename}-{digest}"
    dest = harness.CACHE_DIR / f"{key}.tar.gz"
    if dest.is_file():
        return dest
    harness.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(harness.CACHE_DIR / f".{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if dest.is_file():
            return dest
        for stale in harness.CACHE_DIR.glob(f".{key}.tmp-*"):
            harness._remove_tree(Path(stale))
        work = Path(tempfile.mkdtemp(prefix=f".{key}.tmp-", dir=harness.CACHE_DIR))
        try:
            root = work / "root"
            host([tool("debootstrap"), "--variant=minbase", codename, root, harness.host_mirror()], timeout=900)
            for deb in (root / "var/cache/apt/archives").glob("*.deb"):
                deb.unlink()
            host(["tar", "-C", root, "-czf", work / "base.tar.gz", "."])
            os.rename(work / "base.tar.gz", dest)
        finally:
            harness._remove_tree(work)
    return dest


def setUpModule() -> None:
    harness.require_root("Debian's package checks run piuparts and boot containers")
    built_deb()


class Piuparts(unittest.TestCase):
    """piuparts on bookworm: the .deb installs, removes and purges cleanly in a minimal chroot."""

    def test_install_remove_purge(self):
        """piuparts (bookworm, minbase chroot): install, remove, purge, reinstall after remove; no leftovers, PASS"""
        piuparts = tool("piuparts")
        base = piuparts_base()
        deb = built_deb()
        work = Path(tempfile.mkdtemp(prefix="seestack-piuparts-"))
        self.addCleanup(shutil.rmtree, work, True)
        log = work / "piuparts.log"
        started = time.monotonic()
        # --install-remove-install: also install again over the removed package's conffiles (state rc).
        argv = [piuparts, "--basetgz", str(base), "-d", PIUPARTS_RELEASE, "-m", harness.host_mirror(),
                "--install-remove-install", "-l", str(log), str(deb)]
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=900,
                              env=HOST_ENV, stdin=subprocess.DEVNULL)
        said = done.stdout + done.stderr
        self.assertEqual(done.returncode, 0, f"{shlex.join(argv)} exited {done.returncode} after "
                                             f"{time.monotonic() - started:.0f}s; its last lines:\n{said[-6000:]}")
        for step in ("PASS: Installation and purging test.", "PASS: All tests."):
            self.assertIn(step, said)
        # The steps it took: apt-get install of the .deb, apt-get remove, dpkg --purge of the package.
        self.assertRegex(said, r"Command ok: \[.*'apt-get', '-y', .*'install', '\./tmp/seestack-systemd_")
        self.assertRegex(said, r"Command ok: \[.*'apt-get', 'remove', .*'seestack-systemd'\]")
        self.assertIn("'dpkg', '--purge', 'seestack-systemd']", said)


def varied_build(dest: Path, umask: int, zone: str) -> Path:
    """`make deb` (nocheck, no lintian) in a clean copy under ``dest``, with ``umask``, the
    time zone ``zone`` and the clock SHIFT ahead for every process of the build; its .deb."""
    tool("faketime")  # the package of LIBFAKETIME
    if not Path(LIBFAKETIME).is_file():
        raise AssertionError(f"{LIBFAKETIME} is missing: run tests/install-deps.sh as root")
    copy = clean_copy(dest / "seestack-systemd")
    upper, workdir = dest / "etc-upper", dest / "etc-work"
    upper.mkdir()
    workdir.mkdir()
    (upper / "ld.so.preload").write_text(LIBFAKETIME + "\n")
    (upper / "faketimerc").write_text(SHIFT + "\n")
    (upper / "localtime").symlink_to(f"/usr/share/zoneinfo/{zone}")
    (upper / "timezone").write_text(zone + "\n")
    script = ('mount -t overlay seestack-repro -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc\n'
              'umask "$3"\n'
              'exec make -C "$4" deb\n')
    host(["unshare", "--mount", "--propagation", "private", "sh", "-ec", script, "sh", upper, workdir,
          format(umask, "04o"), copy],
         env={"TZ": zone, "DEB_BUILD_OPTIONS": "nocheck", "SEESTACK_DEB_LINTIAN": "0"}, timeout=900)
    [deb] = (copy / "dist").glob(f"{PACKAGE}_*_all.deb")
    return deb


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def deb_differences(a: Path, b: Path) -> str:
    """Where two .debs differ, cheaply: their member listings (modes, owners, sizes, mtimes),
    control files and md5sums, as unified diffs; empty when those all agree."""
    parts = []
    for what, argv in (("dpkg-deb -c", ["dpkg-deb", "-c"]), ("dpkg-deb -I", ["dpkg-deb", "-I"]),
                       ("md5sums", ["dpkg-deb", "-I"])):
        if what == "md5sums":
            texts = [host([*argv, str(p), "md5sums"]).stdout for p in (a, b)]
        else:
            texts = [host([*argv, str(p)]).stdout for p in (a, b)]
        diff = list(difflib.unified_diff(texts[0].splitlines(), texts[1].splitlines(), f"{what} (1)",
                                         f"{what} (2)", lineterm="", n=0))
        parts += diff
    return "\n".join(parts)


class Reproducible(unittest.TestCase):
    """Two builds of the .deb under different umasks, time zones and clocks are byte-identical."""

    def test_two_builds_identical(self):
        """make deb twice: the run's build, and one with another umask, TZ (UTC+14) and the clock 398 days ahead, nocheck: same sha256"""
        first = built_deb()
        own_umask = os.umask(0o022)
        os.umask(own_umask)
        umask = 0o077 if own_umask != 0o077 else 0o002
        zone = "Etc/GMT-14" if os.path.realpath("/etc/localtime") != "/usr/share/zoneinfo/Etc/GMT-14" else "Etc/GMT+12"
        work = Path(tempfile.mkdtemp(prefix="seestack-repro-"))
        self.addCleanup(shutil.rmtree, work, True)
        started = time.time()
        second = varied_build(work, umask, zone)
        self.assertEqual(second.name, first.name)
        # The variations reached the build: dpkg-genbuildinfo's clock and zone, and cp's umask.
        [info] = second.parent.glob(f"{PACKAGE}_*.buildinfo")
        stamp = re.search(r"^Build-Date: (.+)$", info.read_text(), re.M).group(1)
        when = email.utils.parsedate_to_datetime(stamp)
        self.assertEqual(when.utcoffset(), datetime.timedelta(hours=-int(zone[-3:])), stamp)
        self.assertGreater(when.timestamp(), started + 397 * 86400, stamp)
        self.assertEqual(second.stat().st_mode & 0o777, 0o666 & ~umask)
        if sha256(first) != sha256(second):
            self.fail(f"two builds of {first.name} differ: {sha256(first)} (umask {own_umask:04o}, "
                      f"/etc/localtime -> {os.path.realpath('/etc/localtime')}, now) != {sha256(second)} "
                      f"(umask {umask:04o}, {zone}, clock {SHIFT}, nocheck):\n"
                      f"{deb_differences(first, second) or '(listings, control and md5sums agree: run diffoscope)'}")
