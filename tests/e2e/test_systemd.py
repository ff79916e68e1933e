"""Real systemd, real units, the installed .deb: every way a run can end reaches the
receiver as exactly one heartbeat with the right status, duration and message.

One container per release (Debian 11, 12, 13), booted in parallel. Each release's
scenarios are all started at once in setUpClass (they are independent units), then
each test checks its own unit; this keeps the wall time near that of the slowest job.
"""

from __future__ import annotations

import os
import re
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List

from seestack_systemd.receiver.receive import Receiver
from tests.e2e import harness
from tests.e2e.package import built_deb

API_KEY = "sk-e2e-4c1f0b9a7d2e-SECRET-KEY"
DEADLINE = 3
CONTAINERS: Dict[str, harness.Container] = {}
RECEIVER: Receiver = None  # type: ignore[assignment]
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHONS = {"debian-11": "3.9", "debian-12": "3.11", "debian-13": "3.13"}

# name -> (unit text, how to start it). %SLUG% is replaced per release.
SERVICE = "[Unit]\nDescription=e2e {name}\nStartLimitIntervalSec=0\n[Service]\nType=oneshot\n{body}\n"
SCENARIOS: Dict[str, str] = {
    "ok": "ExecStart=/bin/sh -c 'echo starting; sleep 0.5; echo Processed 1842 records'",
    "exit1": "ExecStart=/bin/sh -c 'echo step one; echo \"fatal: disk full\" >&2; exit 1'",
    # systemd turns '$$' into '$': '$$$$' reaches the shell as its own pid.
    "sigkill": "ExecStart=/bin/sh -c 'echo about to die; kill -KILL $$$$'",
    "runtime": "Type=simple\nRuntimeMaxSec=1\nExecStart=/bin/sleep 30",
    "noexec": "ExecStart=/nonexistent/bin/job",
    "nobody": "User=nobody\nExecStart=/bin/sh -c 'id -un; sleep 0.2'",
    "dynamic": "DynamicUser=yes\nExecStart=/bin/sh -c 'id -u; sleep 0.2'",
    "sandbox": "ProtectSystem=strict\nPrivateTmp=yes\nExecStart=/bin/sh -c 'touch /tmp/x; sleep 0.2'",
    "ownpre": "ExecStartPre=/bin/true\nExecStart=/bin/sh -c 'sleep 0.2'\nExecStopPost=/bin/true",
    "prefails": "ExecStartPre=/bin/false\nExecStart=/bin/sh -c 'echo never runs'",
    "rsync24": "SuccessExitStatus=24\nExecStart=/bin/sh -c 'echo some files vanished; exit 24'",
    "skipcond": "ExecCondition=/bin/false\nExecStart=/bin/sh -c 'echo never runs'",
    "chatty": "ExecStart=/bin/sh -c 'i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done; echo LAST-LINE; exit 2'",
    # The root hooks ignore SEESTACK_* in the unit: the dead endpoint comes as drop-in flags (ENABLE_FLAGS).
    "down": "ExecStart=/bin/sh -c 'sleep 0.2'",
    "secret": "User=nobody\nExecStart=/bin/sh -c 'env; cat /etc/seestack/api-key /etc/seestack/seestack.conf 2>&1; true'",
}
ENABLE_FLAGS: Dict[str, List[str]] = {"down": ["--endpoint", "http://127.0.0.1:9", "--deadline", "2"]}
TEMPLATE = "[Unit]\nDescription=e2e template %i\n[Service]\nType=oneshot\nExecStart=/bin/sh -c 'sleep 1; echo instance %i'\n"
TIMED = ("[Unit]\nDescription=e2e timed\n[Service]\nType=oneshot\nExecStart=/bin/echo fired by timer\n",
         "[Unit]\nDescription=e2e timer\n[Timer]\nOnActiveSec=2s\nAccuracySec=100ms\n")


# A line tests/run.py prints as a test ends ("ok   NAME (0.1s)", "FAIL ...", "skip ...: why"), or
# its closing count: whatever it prints between two of them belongs to the first (a traceback).
RUN_PY_LINE = re.compile(r"(?:(?:ok  |FAIL|skip) .*\(\d+\.\ds\)|\d+ passed, \d+ failed(?:, \d+ skipped)?$)")


def failure_reports(output: str) -> str:
    """Each FAIL line of tests/run.py's ``output`` with the traceback printed under it, in full."""
    reports: List[List[str]] = []
    current = None
    for line in output.splitlines():
        if RUN_PY_LINE.match(line):
            current = [line] if line.startswith("FAIL") else None
            if current is not None:
                reports.append(current)
        elif current is not None:
            current.append(line)
    return "\n\n".join("\n".join(lines).rstrip() for lines in reports)


def short(release: str) -> str:
    return "d" + release.split("-")[1]


def setUpModule() -> None:
    global RECEIVER
    harness.require_root("the e2e suite boots Debian containers with systemd-nspawn")
    deb = built_deb()
    RECEIVER = Receiver(api_key=API_KEY).start()
    unittest.addModuleCleanup(RECEIVER.stop)
    binds = [(str(deb.parent), "/mnt/dist", True), (REPO_ROOT, "/mnt/src", True)]

    def boot(release: str) -> harness.Container:
        container = harness.Container(release, binds=binds)
        unittest.addModuleCleanup(container.poweroff)
        container.boot()
        install(container, deb.name)
        return container

    with ThreadPoolExecutor(len(harness.RELEASES)) as pool:
        futures = {r: pool.submit(boot, r) for r in harness.RELEASES}
        for release, future in futures.items():
            CONTAINERS[release] = future.result()


def install(c: harness.Container, deb_name: str) -> None:
    """Install the package as a user would, then configure endpoint and key."""
    c.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"/mnt/dist/{deb_name}"], timeout=180,
          env={"DEBIAN_FRONTEND": "noninteractive"})
    c.write_file("/etc/seestack/api-key", API_KEY + "\n", 0o600)
    conf = c.read_file("/etc/seestack/seestack.conf")  # its one section, [seestack], comes last

    c.write_file("/etc/seestack/seestack.conf",
                 conf + f"\nendpoint = {RECEIVER.url}\napi_key_file = /etc/seestack/api-key\ndeadline = {DEADLINE}\n", 0o600)


def heartbeats(slug: str, count: int = 1, timeout: float = 15) -> List[dict]:
    """Wait for ``count`` heartbeats of ``slug``; fail on more arriving soon after."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in list(RECEIVER.requests) if _slug(r) == slug]
        if len(found) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if len(found) == count:
        time.sleep(0.3)
        found = [r for r in list(RECEIVER.requests) if _slug(r) == slug]
    assert len(found) == count, f"{slug}: expected {count} heartbeat(s), got {len(found)}: {[r.body for r in found]}"
    for r in found:
        assert r.error is None and r.status == 202, f"{slug}: {r.status} {r.error}"
    return [r.json() for r in found]


def _slug(request) -> str:
    try:
        return request.json().get("slug", "")
    except ValueError:
        return ""


class Release(harness.ReleaseTest):
    """The scenarios, run against one release (subclasses set ``release``)."""

    c: harness.Container
    started: Dict[str, float]

    @classmethod
    def setUpClass(cls) -> None:
        cls.c = CONTAINERS[cls.release]
        s = short(cls.release)
        cls.slug = lambda self, name: f"{s}-{name}"  # type: ignore[assignment]
        for name, body in SCENARIOS.items():
            cls.c.write_file(f"/etc/systemd/system/e2e-{name}.service", SERVICE.format(name=name, body=body))
        cls.c.write_file("/etc/systemd/system/e2e-tpl@.service", TEMPLATE)
        cls.c.write_file("/etc/systemd/system/e2e-timed.service", TIMED[0])
        cls.c.write_file("/etc/systemd/system/e2e-timed.timer", TIMED[1])
        # An inactive oneshot nothing references is unloaded at once, and `systemctl show` then
        # says 0 for every timestamp; an active target ordered after them keeps them loaded.
        held = " ".join(f"e2e-{name}.service" for name in SCENARIOS)
        cls.c.write_file("/etc/systemd/system/e2e-hold.target", f"[Unit]\nAfter={held}\n")
        cls.c.systemctl("daemon-reload")
        cls.c.systemctl("start", "e2e-hold.target")
        for name in SCENARIOS:
            cls.c.run(["seestack-hook", "enable", f"e2e-{name}.service", "--slug", f"{s}-{name}", "--no-reload",
                       *ENABLE_FLAGS.get(name, [])])
        cls.c.run(["seestack-hook", "enable", "e2e-tpl@.service", "--slug", f"{s}-tpl", "--no-reload"])
        cls.enable_timed = cls.c.run(["seestack-hook", "enable", "e2e-timed.timer", "--slug", f"{s}-timed"])
        cls.started = {}
        for name in SCENARIOS:
            cls.started[name] = time.monotonic()
            cls.c.systemctl("start", "--no-block", f"e2e-{name}.service")
        cls.c.systemctl("start", "--no-block", "e2e-tpl@a.service", "e2e-tpl@b.service")
        cls.c.systemctl("start", "e2e-timed.timer")

    def unit(self, name: str, *props: str) -> Dict[str, str]:
        out = self.c.systemctl("show", "-p", ",".join(props), f"e2e-{name}.service").stdout
        return dict(line.partition("=")[::2] for line in out.splitlines())

    def wait_inactive(self, unit: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.c.systemctl("is-active", unit, check=False).stdout.strip() in ("active", "activating", "deactivating"):
            if time.monotonic() > deadline:
                raise AssertionError(f"{unit} still running after {timeout}s")
            time.sleep(0.1)

    def check_run(self, name: str, status: str, result: str, words: str = "") -> dict:
        """The common assertions: one heartbeat, status, systemd's result unchanged,
        duration within 250 ms of systemd's own measure, no state record left."""
        [body] = heartbeats(self.slug(name))
        self.wait_inactive(f"e2e-{name}.service")
        props = self.unit(name, "Result", "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic",
                          "InactiveExitTimestampMonotonic", "InactiveEnterTimestampMonotonic")
        self.assertEqual(body["status"], status)
        self.assertEqual(props["Result"], result)
        self.assertRegex(body["runId"], r"^[0-9a-f-]{36}$")
        if words:
            self.assertIn(words, body.get("message", ""))
        # systemd's own clocks bound the duration on both sides, however loaded the machine:
        # our start record is written after the unit leaves "inactive" and before its main
        # process starts; finish measures after the main process exits and before the unit
        # is "inactive" again. (A main process that never started leaves only the upper bound.)
        ms = {k: int(v) / 1000 for k, v in props.items() if k.endswith("Monotonic")}
        whole = ms["InactiveEnterTimestampMonotonic"] - ms["InactiveExitTimestampMonotonic"]
        main = ms["ExecMainExitTimestampMonotonic"] - ms["ExecMainStartTimestampMonotonic"]
        self.assertTrue(ms["InactiveExitTimestampMonotonic"] and whole > 0, props)
        self.assertIsNotNone(body["durationMs"])
        lower = main if ms["ExecMainStartTimestampMonotonic"] and ms["ExecMainExitTimestampMonotonic"] else 0
        self.assertTrue(lower - 1 <= body["durationMs"] <= whole + 1, (body["durationMs"], lower, whole, props))
        self.assertEqual(self.c.sh(f"ls -A /run/seestack/{self.slug(name)} 2>/dev/null || true").stdout, "")
        self.assertEqual(body["source"]["systemd"]["unit"], f"e2e-{name}.service")
        return body

    def test_succeeds(self):
        """succeeding run: success, its last output line as message"""
        body = self.check_run("ok", "success", "success")
        self.assertEqual(body["message"], "Processed 1842 records")
        self.assertGreaterEqual(body["durationMs"], 500)

    def test_exit_1(self):
        """exit 1: failed, 'exit-code: exited with status 1' and the job's last lines"""
        body = self.check_run("exit1", "failed", "exit-code", "exit-code: exited with status 1")
        self.assertIn("fatal: disk full", body["message"])
        self.assertEqual(body["source"]["systemd"]["exitStatus"], "1")

    def test_sigkill(self):
        """killed by SIGKILL: failed, says so in words"""
        self.check_run("sigkill", "failed", "signal", "signal: killed by SIGKILL")

    def test_runtime_max(self):
        """exceeds RuntimeMaxSec=: failed as timeout"""
        body = self.check_run("runtime", "failed", "timeout", "timeout: ")
        self.assertGreaterEqual(body["durationMs"], 900)

    def test_missing_binary(self):
        """missing ExecStart= binary: failed, status 203 explained"""
        self.check_run("noexec", "failed", "exit-code", "status 203 (EXEC")

    def test_users_and_sandbox(self):
        """User=nobody, DynamicUser=yes, ProtectSystem=strict+PrivateTmp=yes: all reported"""
        for name in ("nobody", "dynamic", "sandbox"):
            with self.subTest(name):
                self.check_run(name, "success", "success")

    def test_own_exec_lines(self):
        """the unit's own ExecStartPre=/ExecStopPost= keep working beside ours"""
        self.check_run("ownpre", "success", "success")

    def test_own_pre_fails(self):
        """the unit's own ExecStartPre= fails before ours: failed, duration from systemd"""
        [body] = heartbeats(self.slug("prefails"))
        self.assertEqual(body["status"], "failed")
        self.assertIn("exit-code", body["message"])
        self.assertIsInstance(body["durationMs"], int)
        self.assertEqual(self.unit("prefails", "Result")["Result"], "exit-code")

    def test_exec_condition_skip(self):
        """ExecCondition= skips the run: reported as success 'skipped', never as a failure"""
        [body] = heartbeats(self.slug("skipcond"))
        self.assertEqual(body["status"], "success")
        self.assertIn("skipped", body["message"])
        # systemd's own verdict: a skip (Result=exec-condition) that leaves the unit inactive, not failed.
        self.wait_inactive("e2e-skipcond.service")
        self.assertEqual(self.unit("skipcond", "Result", "ActiveState"),
                         {"Result": "exec-condition", "ActiveState": "inactive"})

    def test_success_exit_status(self):
        """SuccessExitStatus=24 turns exit 24 into success"""
        self.check_run("rsync24", "success", "success")

    def test_chatty_tail_complete(self):
        """3,000 lines then exit 2: the message ends with the job's real last line, within 4096 bytes"""
        body = self.check_run("chatty", "failed", "exit-code", "exited with status 2")
        self.assertTrue(body["message"].endswith("LAST-LINE"), body["message"][-200:])
        self.assertLessEqual(len(body["message"].encode()), 4096)

    def test_backend_down(self):
        """backend down: the unit's result is unchanged, its stop delayed at most the deadline, heartbeat delivered once later"""
        self.wait_inactive("e2e-down.service")
        props = self.unit("down", "Result", "ExecMainExitTimestampMonotonic", "InactiveEnterTimestampMonotonic")
        self.assertEqual(props["Result"], "success")
        delay = (int(props["InactiveEnterTimestampMonotonic"]) - int(props["ExecMainExitTimestampMonotonic"])) / 1e6
        self.assertLess(delay, 2 + 1.0)
        # Another unit's hook may have replayed the spool already (every hook run does): either
        # way the heartbeat must reach the backend exactly once.
        self.c.run(["seestack-hook", "flush"])
        [body] = heartbeats(self.slug("down"))
        self.assertEqual(body["status"], "success")

    def test_key_not_visible_to_job(self):
        """the job never sees the API key: not in its environment, its files unreadable"""
        self.wait_inactive("e2e-secret.service")
        time.sleep(0.3)
        output = self.c.run(["journalctl", "-u", "e2e-secret.service", "-o", "cat", "--no-pager"]).stdout
        self.assertIn("Permission denied", output)
        self.assertNotIn(API_KEY, output)
        self.assertNotIn("SEESTACK", output)

    def test_template_parallel(self):
        """two instances of a template at once under one slug: two heartbeats, two run ids"""
        bodies = heartbeats(self.slug("tpl"), 2)
        self.assertEqual({b["status"] for b in bodies}, {"success"})
        self.assertEqual(len({b["runId"] for b in bodies}), 2)
        self.assertEqual({b["source"]["systemd"]["unit"] for b in bodies}, {"e2e-tpl@a.service", "e2e-tpl@b.service"})
        for b in bodies:
            self.assertGreaterEqual(b["durationMs"], 1000)

    def test_timer(self):
        """a real .timer fires the service: heartbeat carries the trigger and its schedule"""
        self.assertIn("e2e-timed.service", self.enable_timed.stdout)
        [body] = heartbeats(self.slug("timed"))
        self.assertEqual(body["status"], "success")
        self.assertEqual(body["source"]["systemd"]["trigger"], "e2e-timed.timer")
        self.assertIn("OnActiveUSec=2s", body["source"]["systemd"].get("schedule", ""))

    def test_twice_in_a_row(self):
        """started twice in a row: two heartbeats, distinct run ids"""
        heartbeats(self.slug("ok"))
        self.c.systemctl("start", "e2e-ok.service")
        bodies = heartbeats(self.slug("ok"), 2)
        self.assertNotEqual(bodies[0]["runId"], bodies[1]["runId"])

    def test_list_and_disable(self):
        """list shows monitored units and timers, --all the unmonitored; disable removes the drop-in"""
        self.c.write_file("/etc/systemd/system/e2e-spare.service", SERVICE.format(name="spare", body="ExecStart=/bin/true"))
        self.c.write_file("/etc/systemd/system/e2e-spare.timer", "[Timer]\nOnCalendar=daily\n")
        self.c.systemctl("daemon-reload")
        self.c.systemctl("start", "e2e-spare.timer")
        listing = self.c.run(["seestack-hook", "list", "--all"]).stdout
        row = next(line for line in listing.splitlines() if line.startswith("e2e-timed.service"))
        self.assertIn("e2e-timed.timer", row)
        self.assertIn("seestack-hook enable e2e-spare.timer", listing)
        self.c.run(["seestack-hook", "enable", "e2e-spare.timer"])
        if self.release != "debian-11":
            # systemd 247's verify cannot start its manager in these containers ("Failed to
            # determine supported controllers"), so it checks nothing there.
            verify = self.c.run(["systemd-analyze", "verify", "e2e-spare.service", "seestack-flush.service",
                                 "seestack-flush.timer", "/usr/share/seestack-systemd/example-report.service",
                                 "/usr/share/seestack-systemd/example-report.timer"], check=False)
            self.assertEqual(verify.stderr.strip(), "", verify.stderr)
        dropin = self.c.sh("systemctl cat e2e-spare.service").stdout
        self.assertIn("seestack-hook finish --unit %n -- e2e-spare", dropin)
        self.c.run(["seestack-hook", "disable", "e2e-spare.timer"])
        self.assertNotIn("seestack", self.c.sh("systemctl cat e2e-spare.service").stdout)

    def test_unit_tests_under_release_python(self):
        """the unit tests pass under this release's own Python"""
        version = self.c.run(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout.strip()
        self.assertEqual(version, PYTHONS[self.release])
        done = self.c.run(["python3", "/mnt/src/tests/run.py", "/mnt/src/tests/unit"], check=False, timeout=300,
                          env={"PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": "/tmp"})
        # Every failure with its whole traceback, then the tail (the closing count, or how the run died).
        failures = failure_reports(done.stdout) or "(no FAIL line)"
        self.assertEqual(done.returncode, 0,
                         f"{failures}\n--- last lines ---\n{done.stdout[-2000:]}{done.stderr[-1000:]}")


harness.per_release(Release, globals())
