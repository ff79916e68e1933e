"""Debian's own checks on the built .deb (root): piuparts on bookworm, an upgrade from the
previous build, debian/tests run by autopkgtest, and a reproducible build.

- piuparts installs the .deb in a minimal bookworm chroot, removes it, purges it and
  fails on files left behind or changed, on maintainer-script errors and on processes
  left running. Its base is a debootstrap --variant=minbase tarball built once and kept
  in /var/cache/seestack-e2e (keyed like the harness's root filesystems); the Debian
  mirror is the host's (harness.host_mirror()), as for the containers.

- The upgrade: in a booted Debian 12 container, the previous build is installed, a job is
  monitored with its `seestack-hook enable` and run while the backend is down, so its
  heartbeat is spooled; then apt upgrades to this build. The old drop-in must still report
  a run of the job to the receiver on the host's loopback, and the flush must deliver the
  spooled heartbeat, once. "The previous build" is the .deb built from the last commit that
  landed on main: the merge-base of HEAD and main when HEAD is not on main, else HEAD's first
  parent (SEESTACK_PREVIOUS_REF names another commit). It is built from `git archive` of that
  commit with `make deb` (nocheck, no lintian: it was checked when it landed) and kept in
  /var/cache/seestack-e2e/previous-debs/<commit>/. When it carries this build's version, its
  Version field alone is lowered to VERSION~prev.<commit> (dpkg-deb -R/-b), so that apt
  performs a real upgrade (prerm upgrade, postinst configure OLD-VERSION) and not a reinstall.
- autopkgtest: Debian's own runner, inside a booted container of each release, with the
  `null` virtualisation server: the testbed is that container (systemd as PID 1, its own
  PID, mount and IPC namespaces; the network is the host's, as in the whole suite, and a
  test binds loopback port 0). Run as root, null offers root-on-testbed, and up to
  autopkgtest 5.47 (Debian 11: 5.16, Debian 12: 5.28) it advertises isolation-machine, so
  the tests' "needs-root, isolation-container" restrictions are met and the tests run; the
  check demands exit 0 and PASS for every test listed in debian/tests/control (a SKIP or a
  FAIL fails it). Debian 11 and 12 only: Debian 13's autopkgtest 5.49 has null advertise no
  isolation, and declaring the container's with --fake-capability=isolation-container makes
  its null server crash (AssertionError in VirtSubproc.downtmp_mktemp, "assert
  downtmp_prefix is None"; exit 16, testbed failure), while without it the test is skipped.
  autopkgtest is installed in the (volatile) container from the release's own archive on
  the host's mirror. The source tree given to it is laid out as build-deb.sh lays it out:
  a clean copy of the checkout with packaging/debian as debian/.
- Reproducibility: `make deb` again, from another clean copy (so in another build path), with
  another umask, time zone and host name (a UTS namespace) and the clock 398 days ahead, must
  give a byte-identical .deb. build-deb.sh runs
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

import ast
import datetime
import difflib
import email.utils
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import unittest
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from seestack_systemd.receiver.receive import Receiver
from tests.e2e import harness
from tests.e2e.harness import reserve_port
from tests.e2e.package import ROOT, built_deb, clean_copy

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
OTHER_HOST = "seestack-repro-second-build"
RELEASE = "debian-12"
API_KEY = "sk-e2e-upgrade-4b1f0c9d2e-SECRET"
JOB = "e2e-upgrade-job"
DROPIN = f"/etc/systemd/system/{JOB}.service.d/seestack.conf"
SPOOL = "/var/lib/seestack/spool"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def host(argv: Sequence[Union[str, Path]], timeout: float = 600, env: Optional[Dict[str, str]] = None,
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


def git(*args: str) -> str:
    return host(["git", "-C", str(ROOT), *args]).stdout.strip()


def previous_commit() -> str:
    """The commit of the previous build: SEESTACK_PREVIOUS_REF, else the last commit that landed
    on main (merge-base of HEAD and main, or HEAD's first parent when HEAD is on main)."""
    wanted = os.environ.get("SEESTACK_PREVIOUS_REF")
    if wanted:
        return git("rev-parse", "--verify", f"{wanted}^{{commit}}")
    head = git("rev-parse", "--verify", "HEAD^{commit}")
    for main in ("main", "origin/main"):
        found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "-q", f"{main}^{{commit}}"],
                               capture_output=True, text=True, env=HOST_ENV)
        if found.returncode == 0:
            base = git("merge-base", "HEAD", main)
            if base != head:
                return base
            break
    parent = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "-q", "HEAD^1^{commit}"],
                            capture_output=True, text=True, env=HOST_ENV)
    if parent.returncode:
        raise AssertionError(f"HEAD ({head[:12]}) has no parent in this clone (a shallow clone?): fetch more"
                             " history (git fetch --deepen=1) or set SEESTACK_PREVIOUS_REF to the previous"
                             " build's commit")
    return parent.stdout.strip()


def previous_deb(commit: str) -> Path:
    """The .deb `make deb` builds from `git archive COMMIT` (nocheck, no lintian), built once per commit."""
    dest = harness.CACHE_DIR / "previous-debs" / commit
    found = sorted(dest.glob(f"{PACKAGE}_*_all.deb"))
    if found:
        return found[0]
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / f".{commit}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = sorted(dest.glob(f"{PACKAGE}_*_all.deb"))
        if found:
            return found[0]
        work = Path(tempfile.mkdtemp(prefix=f".{commit}.tmp-", dir=dest.parent))
        try:
            tree = work / "seestack-systemd"
            tree.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit],
                                     capture_output=True, check=True, env=HOST_ENV).stdout
            subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True, env=HOST_ENV)
            host(["make", "-C", tree, "deb"], env={"DEB_BUILD_OPTIONS": "nocheck", "SEESTACK_DEB_LINTIAN": "0"})
            [deb] = (tree / "dist").glob(f"{PACKAGE}_*_all.deb")
            (work / "out").mkdir()
            shutil.copy2(deb, work / "out" / deb.name)
            (work / "out").chmod(0o755)
            os.rename(work / "out", dest)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return next(dest.glob(f"{PACKAGE}_*_all.deb"))


def deb_version(deb: Path) -> str:
    return host(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()


def lowered(deb: Path, version: str, dest: Path) -> Path:
    """``deb`` with only its Version field changed to ``version`` (dpkg-deb -R, then -b)."""
    tree = dest / "tree"
    host(["dpkg-deb", "-R", str(deb), str(tree)])
    control = tree / "DEBIAN" / "control"
    old = deb_version(deb)
    text = control.read_text()
    control.write_text(text.replace(f"\nVersion: {old}\n", f"\nVersion: {version}\n"))
    out = dest / f"{PACKAGE}_{version}_all.deb"
    host(["dpkg-deb", "-b", str(tree), str(out)])
    shutil.rmtree(tree)
    return out




def setUpModule() -> None:
    harness.require_root("Debian's package checks run piuparts and boot containers")
    built_deb()


class Piuparts(unittest.TestCase):
    """piuparts on bookworm: the .deb installs, removes and purges cleanly in a minimal chroot."""

    def test_install_remove_purge(self):
        """piuparts (bookworm, minbase chroot): install, remove, install over the conffiles, remove, purge; no leftovers, PASS"""
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
        # The steps it took, in order: install the .deb, remove it, install it again over its
        # conffiles, remove it (with its dependencies), purge it (from its "Command ok: [argv]" lines).
        steps: List[str] = []
        for argv_text in re.findall(r"Command ok: (\[.*\])$", said, re.M):
            ran = ast.literal_eval(argv_text)
            if any(a.startswith("./tmp/seestack-systemd_") for a in ran) and "install" in ran:
                steps.append("install")
            elif PACKAGE in ran and ("remove" in ran or "--purge" in ran):
                steps.append("remove" if "remove" in ran else "purge")
        collapsed = [step for i, step in enumerate(steps) if i == 0 or steps[i - 1] != step]
        self.assertEqual(collapsed, ["install", "remove", "install", "remove", "purge"], said[-6000:])


class Upgrade(harness.ReleaseTest, unittest.TestCase):
    """apt upgrades the previous build to this one with a drop-in and a spool in place."""

    release = RELEASE

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 30.0,
             detail: Callable[[], str] = lambda: "") -> Any:
        """Poll ``check`` until it returns something true, and return that; fail after ``timeout``."""
        return harness.wait_until(what, check, timeout, detail=detail)

    def test_upgrade_from_previous_build(self):
        """upgrade from the previous build (last landed commit): its drop-in reports a run to the host receiver, the spooled heartbeat is flushed once"""
        deb = built_deb()
        commit = previous_commit()
        previous = previous_deb(commit)
        current_version, previous_version = deb_version(deb), deb_version(previous)
        scratch = Path(tempfile.mkdtemp(prefix="seestack-upgrade-"))
        self.addCleanup(shutil.rmtree, scratch, True)
        scratch.chmod(0o755)  # apt fetches local files as _apt where it can
        if previous_version == current_version:
            previous_version = f"{current_version}~prev.{commit[:12]}"
            previous = lowered(previous, previous_version, scratch)
        else:
            previous = Path(shutil.copy2(previous, scratch / previous.name))
        self.assertEqual(host(["dpkg", "--compare-versions", previous_version, "lt", current_version]).returncode, 0)

        sock, port = reserve_port()
        self.addCleanup(sock.close)
        binds: List[harness.Bind] = [(str(deb.parent), "/mnt/dist", True), (str(scratch), "/mnt/prev", True)]
        c = harness.Container(self.release, binds=binds)
        c.boot()
        self.addCleanup(c.poweroff)

        def apt_install(path: str) -> None:
            done = c.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", path], check=False,
                         timeout=180, env=APT_ENV)
            self.assertEqual(done.returncode, 0, f"apt-get install {path}:\n{done.stdout}{done.stderr}")

        def installed() -> str:
            return c.run(["dpkg-query", "-W", "-f", "${Version} ${db:Status-Abbrev}", PACKAGE]).stdout.strip()

        def spooled() -> List[str]:
            return c.sh(f"ls {SPOOL} 2>/dev/null | grep '[.]heartbeat$' || true").stdout.split()

        def spooled_run_ids() -> List[str]:
            """The runId of each spooled heartbeat (a spool file: the Idempotency-Key line, then the body)."""
            return [json.loads(c.read_file(f"{SPOOL}/{name}").partition("\n")[2])["runId"] for name in spooled()]

        # The previous build, configured, monitoring a job, with a heartbeat spooled while the backend is down.
        apt_install(f"/mnt/prev/{previous.name}")
        self.assertEqual(installed(), f"{previous_version} ii")
        c.write_file("/etc/seestack/api-key", API_KEY + "\n", 0o600)
        conf = c.read_file("/etc/seestack/seestack.conf")
        c.write_file("/etc/seestack/seestack.conf", conf + f"\nendpoint = http://127.0.0.1:{port}\n"
                     "api_key_file = /etc/seestack/api-key\ndeadline = 2\n", 0o600)
        c.write_file(f"/etc/systemd/system/{JOB}.service", "[Unit]\nDescription=e2e upgrade job\n[Service]\n"
                     "Type=oneshot\nExecStart=/bin/echo upgrade job ran\n")
        c.write_file(f"/etc/systemd/system/{JOB}.timer", "[Unit]\nDescription=e2e upgrade job timer\n[Timer]\n"
                     "OnCalendar=daily\n[Install]\nWantedBy=timers.target\n")
        c.systemctl("daemon-reload")
        c.run(["seestack-hook", "enable", f"{JOB}.timer"])
        dropin = c.read_file(DROPIN)
        c.systemctl("start", f"{JOB}.service")
        self.wait("the previous build's finish hook spooled the run's heartbeat", lambda: len(spooled()) == 1)
        [first] = spooled_run_ids()

        # The upgrade to this build keeps both.
        apt_install(f"/mnt/dist/{deb.name}")
        self.assertEqual(installed(), f"{current_version} ii")
        self.assertEqual(c.read_file(DROPIN), dropin)
        self.assertEqual(spooled_run_ids(), [first], "the upgrade lost the spooled heartbeat")

        # The backend comes up: the flush delivers the spooled heartbeat, then a run is reported.
        sock.close()
        receiver = Receiver(port=port, api_key=API_KEY).start()
        self.addCleanup(receiver.stop)

        def by_run(run_id: str) -> list:
            """(request, body) of each heartbeat the receiver got with runId ``run_id``."""
            return [(r, r.json()) for r in list(receiver.requests) if r.json().get("runId") == run_id]

        def others() -> List[str]:
            return [r.json()["runId"] for r in list(receiver.requests) if r.json().get("runId") != first]

        c.systemctl("start", "seestack-flush.service")
        self.wait("the flush delivered the spooled heartbeat", lambda: by_run(first),
                  detail=lambda: f"received: {[r.body for r in receiver.requests]}; spool: {spooled()}; "
                  f"the flush's journal:\n{c.journal('seestack-flush.service')}")
        self.assertEqual(spooled(), [])
        self.assertEqual(others(), [])
        c.systemctl("start", f"{JOB}.service")
        [second] = self.wait("the old drop-in reported a run of the upgraded package", others)
        c.systemctl("start", "seestack-flush.service")  # a second flush finds nothing to send
        c.journal(f"{JOB}.service", contains="heartbeat delivered")

        for run_id in (first, second):
            got = by_run(run_id)
            self.assertEqual(len(got), 1, f"heartbeat {run_id} received {len(got)} times, not once "
                                          f"(answers {[r.status for r, _ in got]})")
            [(request, body)] = got
            self.assertEqual((request.status, request.error), (202, None), body)
            self.assertEqual((body["slug"], body["status"]), (JOB, "success"))
            self.assertEqual(body["source"]["systemd"]["unit"], f"{JOB}.service")
        self.assertEqual(len(receiver.requests), 2, [r.body for r in receiver.requests])


def debian_tests() -> List[str]:
    """The test names listed in packaging/debian/tests/control (its Tests: fields)."""
    text = (ROOT / "packaging/debian/tests/control").read_text()
    return [name for field in re.findall(r"^Tests:(.*(?:\n[ \t].*)*)", text, re.M)
            for name in re.split(r"[\s,]+", field) if name]


class Autopkgtest(harness.ReleaseTest):
    """debian/tests run by autopkgtest (null server) inside a booted container of the release."""

    def test_debian_tests_pass(self):
        """autopkgtest runs debian/tests on the built .deb in a booted container (null testbed): exit 0, every test PASS"""
        deb = built_deb()
        tests = debian_tests()
        self.assertTrue(tests, "no Tests: in packaging/debian/tests/control")
        work = Path(tempfile.mkdtemp(prefix="seestack-autopkgtest-"))
        self.addCleanup(shutil.rmtree, work, True)
        work.chmod(0o755)
        source = clean_copy(work / "seestack-systemd")
        shutil.rmtree(source / "debian", ignore_errors=True)
        shutil.copytree(ROOT / "packaging/debian", source / "debian", symlinks=True)
        binds: List[harness.Bind] = [(str(deb.parent), "/mnt/dist", True), (str(source), "/mnt/src", True)]
        c = harness.Container(self.release, binds=binds)
        c.boot()
        self.addCleanup(c.poweroff)
        done = c.sh("apt-get update -q && apt-get install -y -q --no-install-recommends autopkgtest",
                    check=False, timeout=300, env=APT_ENV)
        self.assertEqual(done.returncode, 0, f"installing autopkgtest:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        argv = ["autopkgtest", "--output-dir", "/tmp/autopkgtest-out", f"/mnt/dist/{deb.name}", "/mnt/src/",
                "--", "null"]
        done = c.run(argv, check=False, timeout=600)
        said = f"--- stdout ---\n{done.stdout[-6000:]}\n--- stderr ---\n{done.stderr[-6000:]}"
        # autopkgtest's exit codes: 0 all passed, 2 some skipped, 4 some failed, 8 none ran, 16 testbed failure.
        self.assertEqual(done.returncode, 0, f"autopkgtest exited {done.returncode}\n{said}")
        summary = c.read_file("/tmp/autopkgtest-out/summary")
        results = dict(line.split(None, 1) for line in summary.splitlines() if line.strip())
        self.assertEqual({name: results.get(name, "").split()[0] if results.get(name) else "" for name in tests},
                         {name: "PASS" for name in tests}, f"summary:\n{summary}\n{said}")
        self.assertIn("PASS: heartbeat delivered and recorded", c.read_file("/tmp/autopkgtest-out/heartbeat-stdout"))


def varied_build(dest: Path, umask: int, zone: str) -> Path:
    """`make deb` (nocheck, no lintian) in a clean copy under ``dest``, with ``umask``, the
    time zone ``zone``, the host name OTHER_HOST and the clock SHIFT ahead for every process
    of the build; its .deb."""
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
              'hostname "$3"\n'
              'umask "$4"\n'
              'exec make -C "$5" deb\n')
    host(["unshare", "--mount", "--uts", "--propagation", "private", "sh", "-ec", script, "sh", upper, workdir,
          OTHER_HOST, format(umask, "04o"), copy],
         env={"TZ": zone, "DEB_BUILD_OPTIONS": "nocheck", "SEESTACK_DEB_LINTIAN": "0"}, timeout=900)
    [deb] = (copy / "dist").glob(f"{PACKAGE}_*_all.deb")
    return deb


def sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def deb_differences(a: Path, b: Path) -> str:
    """Where two .debs differ, cheaply: their member listings (modes, owners, sizes, mtimes),
    control files and md5sums, as unified diffs; empty when those all agree."""
    parts: List[str] = []
    for what, args in (("dpkg-deb -c", ["-c"]), ("dpkg-deb -I", ["-I"]), ("md5sums", ["-I", "{}", "md5sums"])):
        texts = [host(["dpkg-deb", *[str(p) if x == "{}" else x for x in args], *([] if "{}" in args else [str(p)])]
                      ).stdout.splitlines() for p in (a, b)]
        parts += difflib.unified_diff(texts[0], texts[1], f"{what} (first)", f"{what} (second)", lineterm="", n=0)
    return "\n".join(parts)


class Reproducible(unittest.TestCase):
    """Two builds of the .deb under different umasks, time zones and clocks are byte-identical."""

    def test_two_builds_identical(self):
        """make deb twice: the run's build, and one with another umask, TZ (UTC+14), host name, build path and the clock 398 days ahead, nocheck: same sha256"""
        first = built_deb()
        own_umask = os.umask(0o022)
        os.umask(own_umask)
        umask = 0o077 if own_umask != 0o077 else 0o002
        own_zone = os.path.realpath("/etc/localtime")
        zone = "Etc/GMT-14" if own_zone != "/usr/share/zoneinfo/Etc/GMT-14" else "Etc/GMT+12"
        work = Path(tempfile.mkdtemp(prefix="seestack-repro-"))
        self.addCleanup(shutil.rmtree, work, True)
        started = time.time()
        second = varied_build(work, umask, zone)
        self.assertEqual(second.name, first.name)
        # The variations reached the build: dpkg-genbuildinfo's clock and zone, cp's umask, the host name.
        [info] = second.parent.glob(f"{PACKAGE}_*.buildinfo")
        found = re.search(r"^Build-Date: (.+)$", info.read_text(), re.M)
        assert found is not None, f"no Build-Date in {info}"
        stamp = found.group(1)
        when = email.utils.parsedate_to_datetime(stamp)
        self.assertEqual(when.utcoffset(), datetime.timedelta(hours=-int(zone[-3:])), stamp)
        self.assertGreater(when.timestamp(), started + 397 * 86400, stamp)
        self.assertEqual(second.stat().st_mode & 0o777, 0o666 & ~umask)
        self.assertNotEqual(socket.gethostname(), OTHER_HOST)
        if sha256(first) != sha256(second):
            self.fail(f"two builds of {first.name} differ: {sha256(first)} (umask {own_umask:04o}, "
                      f"{own_zone}, host {socket.gethostname()}, now) != {sha256(second)} "
                      f"(umask {umask:04o}, {zone}, host {OTHER_HOST}, clock {SHIFT}, nocheck):\n"
                      f"{deb_differences(first, second) or '(listings, control and md5sums agree: run diffoscope)'}")


# Debian 11 and 12 (see the module's docstring for 13), named like harness.per_release names them.
for _release in ("debian-11", "debian-12"):
    _name = "AutopkgtestDebian" + _release.split("-")[1]
    globals()[_name] = type(_name, (Autopkgtest, unittest.TestCase),
                            {"release": _release, "__module__": __name__, "__qualname__": _name})
