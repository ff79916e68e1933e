"""The .deb as users install it, on Debian 11, 12 and 13: install, upgrade, remove, purge.

Each test takes a fresh container and brings it to the state it checks itself, so any
one runs alone and in any order: what the install provides; an upgrade to a "next build"
that keeps the operator's changed conffile; a remove that leaves the monitoring drop-ins
harmless and says how to remove them; a purge after that remove that leaves no file of
the package behind and never silently deletes the operator's own files; and a plain
install + purge after which nothing with "seestack" in its path is left at all.

The install dominates the time, so it is done ahead: setUpModule starts installing
containers for every release in parallel, and each test takes one ready (see AHEAD).

The next build is this build repacked on the host with a higher version only
(dpkg-deb -R, Version +e2e1, dpkg-deb -b): the conffile in it is unchanged, so dpkg must
keep the operator's edited file silently, without a prompt or a .dpkg-dist copy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import unittest
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Deque, Dict, List, Optional, Sequence

from tests.e2e import harness
from tests.e2e.package import build_log, built_deb, clean_copy

PACKAGE = "seestack-systemd"
CONFFILE = "/etc/seestack/seestack.conf"
API_KEY = "sk-e2e-0d9c8b7a6f5e-PACKAGE-KEY"
SUBCOMMANDS = ("start", "finish", "ping", "run", "check", "receive", "flush", "enable", "disable", "list")
JOB = "e2e-job"
DROPIN = f"/etc/systemd/system/{JOB}.service.d/seestack.conf"
FLUSH_TIMER_LINK = "/etc/systemd/system/timers.target.wants/seestack-flush.timer"
# Where a package's files and its run-time data can be: searched for leftovers after purge.
SEARCHED = ("/etc", "/usr", "/var", "/opt", "/srv", "/root")
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}  # not the caller's PATH (pyenv shims)


class Setup:
    """One fresh container of a release, and what it held before and after the install."""

    def __init__(self, container: harness.Container, preexisting: List[str], named: List[str],
                 install: Optional[subprocess.CompletedProcess], listed: List[str]):
        self.c = container
        self.preexisting = preexisting  # the .deb's paths (mostly shared dirs) there before install
        self.named = named  # paths with seestack in them before install (the harness's journald drop-in)
        self.install = install  # apt-get install's result; None when not installed
        self.listed = listed  # dpkg -L after the install: what purge must remove


DEB_NAME = ""
NEXT_NAME = ""
NEXT_VERSION = ""
DEB_PATHS: List[str] = []  # every path in the .deb, as dpkg -L writes them
BINDS: List[harness.Bind] = []
# The install dominates, so installed containers are prepared ahead, one at a time per
# release and the releases in parallel: AHEAD of them in stock, topped up as tests take
# them, up to the INSTALLED tests of a release, so a whole run prepares none in vain.
INSTALLED = 4  # the tests that take an installed container: all but the plain purge
AHEAD = 2
POOLS = {release: ThreadPoolExecutor(1) for release in harness.RELEASES}
STOCK: Dict[str, Deque[Future[Setup]]] = {release: deque() for release in harness.RELEASES}
TAKEN: Dict[str, int] = {release: 0 for release in harness.RELEASES}
# A used container powers off in the background, while the next test runs.
CLOSER = ThreadPoolExecutor(len(harness.RELEASES))
CLOSING: List[Future[None]] = []


def setUpModule() -> None:
    global DEB_NAME, NEXT_NAME, NEXT_VERSION
    harness.require_root("the e2e suite boots Debian containers with systemd-nspawn")
    deb = built_deb()
    DEB_NAME = deb.name
    DEB_PATHS[:] = deb_paths(deb)
    next_dir = Path(tempfile.mkdtemp(prefix="seestack-e2e-next-"))
    # Registered first so that it runs last, after the containers binding it are off.
    unittest.addModuleCleanup(shutil.rmtree, next_dir, True)
    next_deb, NEXT_VERSION = repack_next(deb, next_dir)
    NEXT_NAME = next_deb.name
    BINDS[:] = [(str(deb.parent), "/mnt/dist", True), (str(next_dir), "/mnt/next", True)]
    unittest.addModuleCleanup(discard_stock)
    for release in harness.RELEASES:  # the releases in parallel
        for _ in range(AHEAD):
            STOCK[release].append(POOLS[release].submit(prepare, release, True))


def prepare(release: str, install: bool) -> Setup:
    """Boot a fresh container of ``release``; with ``install``, apt-get install the .deb in it."""
    container = harness.Container(release, binds=BINDS)
    container.boot()
    try:
        preexisting = existing(container, DEB_PATHS)
        named = named_seestack(container)
        done, listed = None, []
        if install:
            # Not checked here: the test that takes the container reports a failed install, with its output.
            done = apt(container, "install", "-y", "--no-install-recommends", f"/mnt/dist/{DEB_NAME}")
            listed = container.run(["dpkg", "-L", PACKAGE], check=False).stdout.splitlines()
    except BaseException:
        container.poweroff()
        raise
    return Setup(container, preexisting, named, done, [p for p in listed if p != "/."])


def discard_stock() -> None:
    """Power off the containers prepared for tests that did not run, and wait for all."""
    for futures in STOCK.values():
        while futures:
            future = futures.popleft()
            if future.exception() is None:  # a failed preparation powered its container off itself
                future.result().c.poweroff()
    while CLOSING:
        CLOSING.pop().result()


def host(argv: Sequence[str]) -> subprocess.CompletedProcess:
    """Run a host tool with a fixed PATH; fail loudly."""
    done = subprocess.run(list(argv), capture_output=True, text=True, env=HOST_ENV)
    if done.returncode:
        raise AssertionError(f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done


def deb_paths(deb: Path) -> List[str]:
    """The paths in the .deb (dpkg-deb -c), spelled as dpkg -L lists them: /etc, /etc/seestack, ..."""
    paths = []
    for line in host(["dpkg-deb", "-c", str(deb)]).stdout.splitlines():
        # "drwxr-xr-x root/root 0 2026-11-24 23:45 ./etc/seestack/"; no symlinks in this package.
        name = line.split(None, 5)[5]
        path = "/" + name[2:].rstrip("/") if name.startswith("./") else name
        if path != "/":
            paths.append(path)
    return paths


def repack_next(deb: Path, dest: Path):
    """The "next build": the same .deb repacked with Version + "+e2e1". Returns (path, version)."""
    tree = Path(tempfile.mkdtemp(prefix="tree-", dir=dest))
    os.rmdir(tree)  # dpkg-deb -R creates it
    host(["dpkg-deb", "-R", str(deb), str(tree)])
    control = tree / "DEBIAN" / "control"
    text = control.read_text()
    old = re.search(r"^Version: (\S+)$", text, re.M).group(1)
    new = old + "+e2e1"
    control.write_text(text.replace(f"\nVersion: {old}\n", f"\nVersion: {new}\n"))
    out = dest / f"{PACKAGE}_{new}_all.deb"
    host(["dpkg-deb", "-b", str(tree), str(out)])
    shutil.rmtree(tree)
    dest.chmod(0o755)  # apt fetches local files as _apt where it can
    return out, new


def apt(c: harness.Container, *args: str) -> subprocess.CompletedProcess:
    """apt-get ARGS inside, not checked: the tests assert on the exit code and the output."""
    return c.run(["apt-get", *args], check=False, timeout=180, env=APT_ENV)


def output(done: subprocess.CompletedProcess) -> str:
    return f"--- exit {done.returncode}, stdout ---\n{done.stdout}--- stderr ---\n{done.stderr}"


def existing(c: harness.Container, paths: Sequence[str]) -> List[str]:
    """Those of paths that exist inside (a dangling symlink counts as existing)."""
    script = 'for p; do if [ -e "$p" ] || [ -L "$p" ]; then echo "$p"; fi; done'
    return c.run(["/bin/sh", "-c", script, "sh", *paths]).stdout.splitlines()


def named_seestack(c: harness.Container) -> List[str]:
    """Every path with seestack in it (a name, or under such a directory) where packages and
    run-time data live, and /run/seestack.

    Leaves out man-db's cache of formatted pages (/var/cache/man/cat1/seestack-hook.1.gz,
    written when test 1 runs man): man-db's to expire, not a file of the package.
    """
    found = c.run(["find", *existing(c, SEARCHED), "-path", "/var/cache/man", "-prune", "-o",
                   "-path", "*seestack*", "-print"]).stdout.splitlines()
    return sorted(found + existing(c, ["/run/seestack"]))


class Release(harness.ReleaseTest):
    """The package's life cycle on one release (subclasses set ``release``): each test takes
    a fresh container and brings it to the state it checks."""

    s: Setup
    c: harness.Container

    def take(self, install: bool = True) -> None:
        """A fresh container as ``self.s``/``self.c``, powered off after the test; with
        ``install`` one from the stock, the .deb installed in it."""
        if install:
            stock, pool = STOCK[self.release], POOLS[self.release]
            future = stock.popleft() if stock else pool.submit(prepare, self.release, True)
            TAKEN[self.release] += 1
            if TAKEN[self.release] + len(stock) < INSTALLED:
                stock.append(pool.submit(prepare, self.release, True))
            self.s = future.result()
        else:
            self.s = prepare(self.release, False)
        self.c = self.s.c
        self.addCleanup(lambda c=self.c: CLOSING.append(CLOSER.submit(c.poweroff)))
        if install:
            self.assertEqual(self.s.install.returncode, 0, output(self.s.install))

    def status(self) -> str:
        """dpkg's status of the package: 'ii' installed, 'rc' removed with conffiles, '' unknown."""
        done = self.c.run(["dpkg-query", "-W", "-f", "${db:Status-Abbrev}", PACKAGE], check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    def leftovers(self) -> List[str]:
        """Paths with seestack in them that were not there before the package was installed."""
        return [p for p in named_seestack(self.c) if p not in self.s.named]

    def change_conffile(self) -> str:
        """The operator sets deadline = 7 in the conffile; its new text."""
        self.c.sh(f"sed -i 's/^# deadline = 10$/deadline = 7/' {CONFFILE}")
        changed = self.c.read_file(CONFFILE)
        self.assertIn("\ndeadline = 7\n", changed)
        return changed

    def monitor_job(self) -> None:
        """A timer-driven job, monitored by `seestack-hook enable` (its drop-in at DROPIN)."""
        self.c.write_file(f"/etc/systemd/system/{JOB}.service",
                          "[Unit]\nDescription=e2e job\n[Service]\nType=oneshot\nExecStart=/bin/echo e2e job ran\n")
        self.c.write_file(f"/etc/systemd/system/{JOB}.timer",
                          "[Unit]\nDescription=e2e job timer\n[Timer]\nOnCalendar=daily\n[Install]\nWantedBy=timers.target\n")
        self.c.systemctl("daemon-reload")
        # No endpoint is configured: enable does not need one.
        enabled = self.c.run(["seestack-hook", "enable", f"{JOB}.timer"])
        self.assertIn(DROPIN, enabled.stdout)
        self.assertIn(DROPIN, self.c.systemctl("show", "-p", "DropInPaths", f"{JOB}.service").stdout)

    def spool_heartbeat(self, slug: str) -> int:
        """A heartbeat the backend never got (nothing listens on port 9), spooled: run-time
        data for purge to handle. The number of spooled files."""
        self.c.run(["seestack-hook", "ping", "--status", "success", slug], check=False,
                   env={"SEESTACK_ENDPOINT": "http://127.0.0.1:9", "SEESTACK_API_KEY": API_KEY, "SEESTACK_DEADLINE": "2"})
        spooled = len(self.c.sh("ls /var/lib/seestack/spool").stdout.split())
        self.assertGreaterEqual(spooled, 1)
        return spooled

    def remove(self) -> subprocess.CompletedProcess:
        """apt-get remove, checked: the package is left 'rc'."""
        done = apt(self.c, "remove", "-y", PACKAGE)
        self.assertEqual(done.returncode, 0, output(done))
        self.assertEqual(self.status(), "rc")
        return done

    def test_install(self):
        """apt-get install ./the.deb: --version, man page, groff -ww clean, conffile 0600 root, flush timer on, module imports"""
        self.take()
        self.assertEqual(self.status(), "ii")
        self.assertEqual(sorted(self.s.listed), sorted(DEB_PATHS))  # dpkg -L: what the .deb holds
        self.assertEqual(self.c.run(["seestack-hook", "--version"]).stdout.strip(), "seestack-hook 0.1.0")

        page = self.c.run(["man", "-P", "cat", "seestack-hook"], env={"MANWIDTH": "80"}).stdout
        self.assertRegex(page, r"(?m)^NAME\n\s+seestack-hook - ")
        for name in SUBCOMMANDS:
            with self.subTest(subcommand=name):
                # Each command is a subsection heading (.SS), rendered at a 3-space indent.
                self.assertRegex(page, rf"(?m)^   {name}\b")
        source = self.c.run(["zcat", "/usr/share/man/man1/seestack-hook.1.gz"]).stdout
        groff = self.c.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=source, check=False)
        self.assertEqual((groff.returncode, groff.stderr), (0, ""), "groff warnings in seestack-hook.1")

        self.assertEqual(self.c.run(["stat", "-c", "%a %U %G", CONFFILE]).stdout.strip(), "600 root root")
        self.assertIn(CONFFILE, self.c.read_file(f"/var/lib/dpkg/info/{PACKAGE}.conffiles").split())
        self.assertEqual(self.c.systemctl("is-enabled", "seestack-flush.timer").stdout.strip(), "enabled")
        self.assertEqual(self.c.systemctl("is-active", "seestack-flush.timer").stdout.strip(), "active")
        # The user twin ships disabled: `seestack-hook enable --user` enables it for the user who asks.
        self.assertEqual(existing(self.c, ["/etc/systemd/user/timers.target.wants/seestack-flush.timer"]), [])
        where = self.c.run(["python3", "-I", "-c", "import seestack_systemd; print(seestack_systemd.__file__)"]).stdout
        self.assertEqual(where.strip(), "/usr/lib/python3/dist-packages/seestack_systemd/__init__.py")

    def test_upgrade_keeps_changed_conffile(self):
        """upgrade to the next build keeps the operator's changed conffile silently: no prompt, no .dpkg-dist"""
        self.take()
        changed = self.change_conffile()
        done = apt(self.c, "install", "-y", "--no-install-recommends", f"/mnt/next/{NEXT_NAME}")
        self.assertEqual(done.returncode, 0, output(done))
        version = self.c.run(["dpkg-query", "-W", "-f", "${Version}", PACKAGE]).stdout
        self.assertEqual(version, NEXT_VERSION)
        self.assertIn(f"Version: {NEXT_VERSION}", self.c.run(["dpkg", "-s", PACKAGE]).stdout)
        self.assertEqual(self.c.read_file(CONFFILE), changed)
        self.assertEqual(self.c.run(["stat", "-c", "%a %U %G", CONFFILE]).stdout.strip(), "600 root root")
        self.assertEqual(self.c.sh("ls -A /etc/seestack").stdout.split(), ["seestack.conf"])
        self.assertNotIn("Configuration file", done.stdout + done.stderr)  # dpkg's conffile prompt
        self.assertEqual(self.c.systemctl("is-enabled", "seestack-flush.timer").stdout.strip(), "enabled")
        self.assertIn("seestack-hook 0.1.0", self.c.run(["seestack-hook", "--version"]).stdout)

    def test_remove_leaves_dropins_harmless(self):
        """apt-get remove names the drop-in and how to remove it, keeps conffile and spool; the unit still runs, result success"""
        self.take()
        changed = self.change_conffile()
        self.monitor_job()
        self.spool_heartbeat("e2e-spooled")
        foreign = "/etc/systemd/system/other.service.d/seestack.conf"  # not written by enable: no marker
        self.c.write_file(foreign, "[Service]\nNice=5\n")

        done = self.remove()
        said = done.stdout + done.stderr
        self.assertIn(DROPIN, said)
        self.assertNotIn(foreign, said)
        self.assertIn(f"rm -f {DROPIN} && systemctl daemon-reload", said)
        self.assertEqual(existing(self.c, ["/usr/bin/seestack-hook"]), [])
        self.assertEqual(self.c.read_file(CONFFILE), changed)  # remove keeps conffiles
        self.assertGreaterEqual(len(self.c.sh("ls /var/lib/seestack/spool").stdout.split()), 1)

        self.c.systemctl("daemon-reload")
        shown = self.c.systemctl("show", "-p", "DropInPaths,ExecStartPre", f"{JOB}.service").stdout
        self.assertIn(DROPIN, shown)  # the drop-in is still in force, pointing at the missing binary
        self.assertIn("/usr/bin/seestack-hook", shown)
        self.c.systemctl("start", f"{JOB}.service")
        props = dict(line.partition("=")[::2] for line in
                     self.c.systemctl("show", "-p", "Result,ExecMainStatus", f"{JOB}.service").stdout.splitlines())
        self.assertEqual(props, {"Result": "success", "ExecMainStatus": "0"})
        self.c.journal(f"{JOB}.service", contains="e2e job ran")

    def test_purge_after_remove_keeps_operator_files(self):
        """apt-get purge after remove leaves no file of the package, clears /var/lib/seestack, keeps and names the operator's key file and drop-in"""
        self.take()
        self.change_conffile()
        self.monitor_job()
        spooled = self.spool_heartbeat("e2e-spooled")
        self.remove()
        self.c.write_file("/etc/seestack/api-key", API_KEY + "\n", 0o600)
        done = apt(self.c, "purge", "-y", PACKAGE)
        self.assertEqual(done.returncode, 0, output(done))
        said = done.stdout + done.stderr
        self.assertEqual(self.status(), "")

        # Every path dpkg -L listed after the install is gone, but for the directories that
        # were there before it (shared: /usr, /etc, /usr/share/doc, ...) and /etc/seestack,
        # which holds the operator's key file.
        self.assertTrue(self.s.listed, "dpkg -L listed nothing after the install")
        gone = [p for p in self.s.listed if p not in self.s.preexisting and p != "/etc/seestack"]
        self.assertEqual(existing(self.c, gone), [])
        self.assertEqual(existing(self.c, self.s.preexisting), self.s.preexisting)
        self.assertEqual(existing(self.c, [CONFFILE, "/var/lib/seestack", "/run/seestack", FLUSH_TIMER_LINK]), [])
        self.assertIn(f"discarding {spooled} undelivered heartbeat file(s) in /var/lib/seestack/spool", said)

        # The operator's own files stay, and purge says so.
        self.assertEqual(self.c.read_file("/etc/seestack/api-key"), API_KEY + "\n")
        self.assertIn("kept /etc/seestack", said)
        self.assertIn("/etc/seestack/api-key", said)
        self.assertTrue(existing(self.c, [DROPIN]), "purge deleted the operator's drop-in")
        self.assertIn(f"not removed, the operator's monitoring drop-ins: {DROPIN}", said)

        # Nothing else with seestack in its path is left (dpkg's records, deb-systemd-helper's state, caches).
        self.assertEqual(self.leftovers(), sorted(["/etc/seestack", "/etc/seestack/api-key", DROPIN]))

    def test_plain_purge_leaves_nothing(self):
        """install, record a run and spool a heartbeat, purge with no operator files: nothing with seestack in its path is left"""
        self.take(install=False)
        done = apt(self.c, "install", "-y", "--no-install-recommends", f"/mnt/dist/{DEB_NAME}")
        self.assertEqual(done.returncode, 0, output(done))
        self.assertEqual(self.status(), "ii")
        # Run-time data in both places: a run in progress (/run/seestack), a spooled heartbeat.
        self.c.run(["seestack-hook", "start", "e2e-plain"])
        self.spool_heartbeat("e2e-plain")
        self.assertEqual(existing(self.c, ["/run/seestack/e2e-plain", "/var/lib/seestack/spool"]),
                         ["/run/seestack/e2e-plain", "/var/lib/seestack/spool"])
        done = apt(self.c, "purge", "-y", PACKAGE)
        self.assertEqual(done.returncode, 0, output(done))
        said = done.stdout + done.stderr
        self.assertEqual(self.status(), "")
        self.assertEqual(self.leftovers(), [])
        self.assertNotIn("kept /etc/seestack", said)
        self.assertNotIn("drop-ins", said)
        self.assertEqual(existing(self.c, self.s.preexisting), self.s.preexisting)


class Build(unittest.TestCase):
    """The README's install path, `make deb`, as root on a clean copy of the tree."""

    def test_built_with_unit_tests_as_root(self):
        """make deb as root from a clean copy ran the unit tests in the build, the uid-65534 cases included, all passing"""
        self.assertEqual(os.geteuid(), 0)
        log = build_log()
        interpreters = re.findall(r"^unit tests with (/usr/bin/python3\.\d+)$", log, re.M)
        self.assertTrue(interpreters, "the build ran no unit tests (nocheck?)")
        totals = re.findall(r"^(\d+) passed, (\d+) failed", log, re.M)
        self.assertEqual(len(totals), len(interpreters), log[-3000:])
        for passed, failed in totals:
            self.assertEqual(failed, "0", log[-3000:])
            self.assertGreater(int(passed), 100)
        # The cases that drop to uid 65534 ran (not skipped) once per interpreter.
        for case in ("state dir that its owner cannot write", "data dir its owner cannot write"):
            self.assertEqual(len(re.findall(rf"^ok   {case}", log, re.M)), len(interpreters), case)

    def test_built_as_a_normal_user(self):
        """make deb as uid 65534 in its own clean copy builds the .deb (fakeroot; the tests ran in the root build)"""
        work = Path(tempfile.mkdtemp(prefix="seestack-user-build-"))
        self.addCleanup(shutil.rmtree, work, True)
        copy = clean_copy(work / "seestack-systemd")
        host(["chown", "-R", "65534:65534", str(work)])
        done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "-i",
                               "PATH=/usr/bin:/bin", f"HOME={work}", "DEB_BUILD_OPTIONS=nocheck",
                               "SEESTACK_DEB_LINTIAN=0", "make", "-C", str(copy), "deb"],
                              capture_output=True, text=True, timeout=600)
        self.assertEqual(done.returncode, 0, done.stdout[-2000:] + done.stderr[-2000:])
        [deb] = (copy / "dist").glob("seestack-systemd_*_all.deb")
        self.assertEqual(deb.stat().st_uid, 65534)
        self.assertEqual(host(["dpkg-deb", "-f", str(deb), "Package"]).stdout.strip(), PACKAGE)


harness.per_release(Release, globals())
