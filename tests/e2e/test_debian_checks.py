"""Debian's own checks on the built .deb (root): piuparts on bookworm.

- piuparts installs the .deb in a minimal bookworm chroot, removes it, purges it and
  fails on files left behind or changed, on maintainer-script errors and on processes
  left running. Its base is a debootstrap --variant=minbase tarball built once and kept
  in /var/cache/seestack-e2e (keyed like the harness's root filesystems); the Debian
  mirror is the host's (harness.host_mirror()), as for the containers.

The .deb is the one `make deb` built for the whole run (package.built_deb()).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
import unittest
from pathlib import Path
from typing import Dict, Optional, Sequence

from tests.e2e import harness
from tests.e2e.package import built_deb

PACKAGE = "seestack-systemd"
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8", "HOME": "/root"}
PIUPARTS_RELEASE = "bookworm"
# Bump when piuparts_base() changes, so an existing tarball is rebuilt rather than reused.
_PIUPARTS_BASE_VERSION = "1"


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
