"""Every timer a Debian host has, in booted Debian 11/12/13 with the installed .deb:
a lingering user's timer (enable --user) and its spool replayed by the user's flush
timer; a template whose instances are not slugs (--slug 'x-%i'); nextRunAt as systemd
itself schedules the next elapse, for a calendar and a monotonic timer; a disabled
monitored timer shown as NOT SCHEDULED.

One container and one receiver per release, booted in parallel; each release's
scenarios start in setUpClass and each test checks its own.
"""

from __future__ import annotations

import calendar
import os
import re
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Dict, List

from seestack_systemd.receiver.receive import Receiver
from tests.e2e import harness
from tests.e2e.package import built_deb

API_KEY = "sk-e2e-timers-7d0c2b5e9a41-SECRET"
USER_KEY = "sk-e2e-user-51f0aa93c7d2-SECRET"
USER = "alice"
CONTAINERS: Dict[str, harness.Container] = {}
RECEIVERS: Dict[str, Receiver] = {}
USER_RECEIVERS: Dict[str, Receiver] = {}

ONESHOT = ("[Unit]\nDescription=e2e {name}\n[Service]\nType=oneshot\n"
           "ExecStart=/bin/sh -c 'sleep 0.3; echo {name} done'\n")
UNITS = {
    "/etc/systemd/system/x@.service": "[Unit]\nDescription=e2e template %i\n[Service]\nType=oneshot\n"
                                      "ExecStart=/bin/echo instance %i\n",
    "/etc/systemd/system/x@.timer": "[Timer]\nOnCalendar=yearly\n[Install]\nWantedBy=timers.target\n",
    "/etc/systemd/system/cal.service": ONESHOT.format(name="cal"),
    # Every 10 s: the run's heartbeat names the next tick, which systemd schedules after the stop.
    "/etc/systemd/system/cal.timer": "[Timer]\nOnCalendar=*:*:0/10\nAccuracySec=1us\n"
                                     "[Install]\nWantedBy=timers.target\n",
    "/etc/systemd/system/rnd.service": ONESHOT.format(name="rnd"),
    # The random part is drawn when systemd re-arms the timer: nextRunAt is its latest bound.
    "/etc/systemd/system/rnd.timer": "[Timer]\nOnCalendar=*:*:0/10\nRandomizedDelaySec=4\nAccuracySec=1us\n",
    "/etc/systemd/system/mono.service": ONESHOT.format(name="mono"),
    "/etc/systemd/system/mono.timer": "[Timer]\nOnActiveSec=1s\nOnUnitActiveSec=40s\nAccuracySec=1us\n"
                                      "[Install]\nWantedBy=timers.target\n",
}
USER_UNITS = {
    "ubackup.service": ONESHOT.format(name="ubackup"),
    "ubackup.timer": "[Timer]\nOnActiveSec=1s\nAccuracySec=100ms\n",
}
# SEESTACK_E2E_RELEASES=debian-12 (comma-separated) runs only those releases, for iterating.
SELECTED = [r for r in os.environ.get("SEESTACK_E2E_RELEASES", ",".join(harness.RELEASES)).split(",") if r]
# The user's flush timer, made fast for the test: the shipped one waits minutes.
FAST_FLUSH = "[Timer]\nOnActiveSec=1s\nOnUnitActiveSec=2s\nRandomizedDelaySec=0\nAccuracySec=100ms\n"


def setUpModule() -> None:
    harness.require_root("the e2e suite boots Debian containers with systemd-nspawn")
    deb = built_deb()

    def boot(release: str) -> harness.Container:
        RECEIVERS[release] = Receiver(api_key=API_KEY).start()
        USER_RECEIVERS[release] = Receiver(api_key=USER_KEY).start()
        unittest.addModuleCleanup(RECEIVERS[release].stop)
        unittest.addModuleCleanup(USER_RECEIVERS[release].stop)
        container = harness.Container(release, binds=[(str(deb.parent), "/mnt/dist", True)])
        unittest.addModuleCleanup(container.poweroff)
        container.boot()
        container.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"/mnt/dist/{deb.name}"],
                      timeout=180, env={"DEBIAN_FRONTEND": "noninteractive"})
        container.write_file("/etc/seestack/api-key", API_KEY + "\n", 0o600)
        conf = container.read_file("/etc/seestack/seestack.conf")
        container.write_file("/etc/seestack/seestack.conf", conf + f"\nendpoint = {RECEIVERS[release].url}\n"
                             "api_key_file = /etc/seestack/api-key\ndeadline = 3\n", 0o600)
        return container

    with ThreadPoolExecutor(len(harness.RELEASES)) as pool:
        futures = {r: pool.submit(boot, r) for r in SELECTED}
        for release, future in futures.items():
            CONTAINERS[release] = future.result()


def wait_bodies(receiver: Receiver, slug: str, count: int = 1, timeout: float = 30) -> List[dict]:
    """The first ``count`` accepted heartbeats of ``slug`` (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in list(receiver.requests) if r.status == 202 and _slug(r) == slug]
        if len(found) >= count:
            return [r.json() for r in found[:count]]
        if time.monotonic() > deadline:
            seen = [(_slug(r), r.status) for r in receiver.requests]
            raise AssertionError(f"{slug}: {len(found)} of {count} heartbeat(s) after {timeout}s; seen {seen}")
        time.sleep(0.1)


def _slug(request) -> str:
    try:
        return request.json().get("slug", "")
    except ValueError:
        return ""


def rfc3339_seconds(text: str) -> float:
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")) + float("0" + text[19:-1])


def systemd_timestamp(text: str) -> float:
    """``Tue 2026-12-01 21:31:00 UTC`` (the containers run in UTC)."""
    words = text.split()
    assert words and words[-1] == "UTC", f"not a UTC timestamp: {text!r}"
    return calendar.timegm(datetime.strptime(" ".join(words[1:3]), "%Y-%m-%d %H:%M:%S").timetuple())


SPAN = {"d": 86400, "h": 3600, "min": 60, "s": 1, "ms": 1e-3, "us": 1e-6}


def systemd_timespan(text: str) -> float:
    """``6min 38.478308s`` -> seconds."""
    return sum(float(n) * SPAN[u] for n, u in re.findall(r"([0-9.]+)([a-z]+)", text))


class Release(harness.ReleaseTest):
    c: harness.Container

    @classmethod
    def setUpClass(cls) -> None:
        if cls.release not in CONTAINERS:
            raise unittest.SkipTest(f"{cls.release} not in SEESTACK_E2E_RELEASES")
        cls.c = CONTAINERS[cls.release]
        cls.receiver = RECEIVERS[cls.release]
        cls.user_receiver = USER_RECEIVERS[cls.release]
        for path, text in UNITS.items():
            cls.c.write_file(path, text)
        cls.c.systemctl("daemon-reload")
        cls.enable_template = cls.c.run(["seestack-hook", "enable", "x@.service", "--slug", "x-%i"])
        cls.c.run(["seestack-hook", "enable", "cal.timer"])
        cls.c.run(["seestack-hook", "enable", "mono.timer"])
        cls.c.run(["seestack-hook", "enable", "rnd.timer"])
        cls.c.systemctl("start", "--no-block", "x@Main_DB.service", "x@db.example.com.service")
        cls.c.systemctl("start", "cal.timer", "mono.timer", "rnd.timer")
        cls.setup_user()

    @classmethod
    def setup_user(cls) -> None:
        """A lingering user with a config of their own, a timer, and enable --user."""
        c = cls.c
        c.run(["useradd", "--create-home", "--shell", "/bin/sh", USER])
        uid = c.run(["id", "-u", USER]).stdout.strip()
        # Debian 13's loginctl cannot enable linger in these containers: the flag file and
        # starting user@UID.service is what it does (see e2e-systemd-containers.md).
        c.run(["mkdir", "-p", "/var/lib/systemd/linger"])
        c.run(["touch", f"/var/lib/systemd/linger/{USER}"])
        c.systemctl("start", f"user@{uid}.service")
        cls.uid = uid
        home = f"/home/{USER}"
        # The user's hooks deliver to their own receiver; first to a closed port (the outage).
        cls.user_write(f"{home}/.config/seestack/api-key", USER_KEY + "\n", 0o600)
        cls.user_config(f"http://127.0.0.1:{closed_port()}")
        for name, text in USER_UNITS.items():
            cls.user_write(f"{home}/.config/systemd/user/{name}", text)
        cls.user_write(f"{home}/.config/systemd/user/seestack-flush.timer.d/e2e-fast.conf", FAST_FLUSH)
        cls.user_enable = cls.as_user("seestack-hook", "enable", "--user", "ubackup.timer")

    @classmethod
    def user_config(cls, endpoint: str) -> None:
        cls.user_write(f"/home/{USER}/.config/seestack/seestack.conf",
                       f"[seestack]\nendpoint = {endpoint}\napi_key_file = /home/{USER}/.config/seestack/api-key\n"
                       "deadline = 2\ntimeout = 1\n", 0o600)

    @classmethod
    def user_write(cls, path: str, text: str, mode: int = 0o644) -> None:
        cls.as_user("mkdir", "-p", path.rsplit("/", 1)[0])
        cls.as_user("sh", "-c", f"cat > {path} && chmod {mode:o} {path}", input=text)

    @classmethod
    def as_user(cls, *argv: str, input: str = None, check: bool = True):
        env = ["env", "-i", f"HOME=/home/{USER}", f"USER={USER}", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
               f"XDG_RUNTIME_DIR=/run/user/{cls.uid}", f"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{cls.uid}/bus"]
        return cls.c.run(["runuser", "-u", USER, "--", *env, *argv], input=input, check=check)

    def wait_inactive(self, unit: str, user: bool = False, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if user:
                state = self.as_user("systemctl", "--user", "is-active", unit, check=False).stdout.strip()
            else:
                state = self.c.systemctl("is-active", unit, check=False).stdout.strip()
            if state not in ("active", "activating", "deactivating"):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{unit} still {state} after {timeout}s")
            time.sleep(0.1)

    def show(self, unit: str, prop: str) -> str:
        return self.c.run(["systemctl", "show", "-P", prop, unit]).stdout.strip()

    def settled(self, name: str, prop: str):
        """(the latest heartbeat of NAME.service, NAME.timer's PROP) with no run in between:
        the timer keeps firing while the other releases' tests run."""
        wait_bodies(self.receiver, name)
        for _ in range(5):
            self.wait_inactive(f"{name}.service")
            before = self.show(f"{name}.service", "InvocationID")
            value = self.show(f"{name}.timer", prop)
            bodies = [r.json() for r in list(self.receiver.requests) if r.status == 202 and _slug(r) == name]
            if self.show(f"{name}.service", "InvocationID") == before and bodies and \
                    bodies[-1]["source"]["systemd"]["invocationId"] == before:
                return bodies[-1], value
            time.sleep(0.5)
        raise AssertionError(f"{name}: no quiet moment between runs to compare with")

    def test_template_instances(self):
        """--slug 'x-%i': x@Main_DB and x@db.example.com report as x-main-db and x-db-example-com"""
        self.assertIn("'x-main-db'", self.enable_template.stdout)
        self.assertIn("'x-db-example-com'", self.enable_template.stdout)
        [main] = wait_bodies(self.receiver, "x-main-db")
        [dotted] = wait_bodies(self.receiver, "x-db-example-com")
        self.assertEqual((main["status"], main["source"]["systemd"]["unit"]), ("success", "x@Main_DB.service"))
        self.assertEqual((dotted["status"], dotted["source"]["systemd"]["unit"]),
                         ("success", "x@db.example.com.service"))
        self.assertEqual(main["message"], "instance Main_DB")
        listing = self.c.run(["seestack-hook", "list"]).stdout
        self.assertRegex(listing, r"x@Main_DB\.service +x-main-db .*success")
        # Two enabled instances whose names give one slug: list says so.
        self.c.systemctl("enable", "x@A_B.timer", "x@a-b.timer")
        done = self.c.run(["seestack-hook", "list", "--all"])
        self.assertIn("instances x@A_B.service, x@a-b.service all report as 'x-a-b'", done.stderr)
        self.assertNotIn("seestack-hook enable 'x@.service'", done.stdout)

    def test_next_run_calendar(self):
        """calendar timer: the run's nextRunAt is the next elapse systemctl show gives once it is re-armed"""
        body, value = self.settled("cal", "NextElapseUSecRealtime")
        scheduled = systemd_timestamp(value)
        self.assertIn("nextRunAt", body)
        self.assertEqual(rfc3339_seconds(body["nextRunAt"]), scheduled, (body["nextRunAt"], scheduled))
        self.assertGreater(scheduled, rfc3339_seconds(body["finishedAt"]))

    def test_next_run_randomized(self):
        """RandomizedDelaySec=4: nextRunAt is the calendar time plus the whole delay, never before systemd's pick"""
        body, value = self.settled("rnd", "NextElapseUSecRealtime")
        scheduled = systemd_timestamp(value)  # whole seconds
        ours = rfc3339_seconds(body["nextRunAt"])
        self.assertEqual(ours % 10, 4, body["nextRunAt"])
        self.assertTrue(0 <= ours - scheduled < 5, (body["nextRunAt"], value))

    def test_next_run_monotonic(self):
        """OnUnitActiveSec= timer: nextRunAt is NextElapseUSecMonotonic as wall time (within 50 ms)"""
        body, value = self.settled("mono", "NextElapseUSecMonotonic")
        # Containers share the host's kernel clocks: its offset turns their monotonic time into wall time.
        mono = systemd_timespan(value)
        expected = time.time() - time.monotonic() + mono
        self.assertIn("nextRunAt", body)
        self.assertLess(abs(rfc3339_seconds(body["nextRunAt"]) - expected), 0.05, (body["nextRunAt"], expected))

    def test_not_scheduled(self):
        """a monitored timer that is disabled shows NOT SCHEDULED in list, and check warns"""
        wait_bodies(self.receiver, "mono")
        self.wait_inactive("mono.service")
        row = next(line for line in self.c.run(["seestack-hook", "list"]).stdout.splitlines()
                   if line.startswith("mono.service"))
        self.assertNotIn("NOT SCHEDULED", row)
        self.c.systemctl("disable", "--now", "mono.timer")
        done = self.c.run(["seestack-hook", "list"])
        row = next(line for line in done.stdout.splitlines() if line.startswith("mono.service"))
        self.assertIn("NOT SCHEDULED (disabled)", row)
        self.assertIn("mono.timer is disabled", done.stderr)
        check = self.c.run(["seestack-hook", "check"])
        self.assertIn("mono.timer is disabled", check.stderr)

    def test_user_timer(self):
        """a lingering user's timer, enabled with enable --user, fires; its spool is replayed by the user flush timer"""
        home = f"/home/{USER}"
        self.assertIn(f"{home}/.config/systemd/user/ubackup.service.d/seestack.conf", self.user_enable.stdout)
        self.assertEqual(self.as_user("systemctl", "--user", "is-enabled", "seestack-flush.timer").stdout.strip(),
                         "enabled")
        # The outage: the endpoint is down when the timer's run ends, so its heartbeat is spooled.
        self.as_user("systemctl", "--user", "start", "ubackup.timer")
        spool = f"{home}/.local/state/seestack/spool"
        deadline = time.monotonic() + 30
        while not self.as_user("sh", "-c", f"ls {spool} 2>/dev/null", check=False).stdout.strip():
            self.assertLess(time.monotonic(), deadline, "the user's heartbeat was never spooled")
            time.sleep(0.2)
        self.assertEqual(self.user_receiver.requests, [])
        # The backend is back: only the user's flush timer can deliver it now.
        self.user_config(self.user_receiver.url)
        [body] = wait_bodies(self.user_receiver, "ubackup")
        self.assertEqual(body["status"], "success")
        self.assertEqual(body["source"]["systemd"]["unit"], "ubackup.service")
        self.assertEqual(body["source"]["systemd"]["trigger"], "ubackup.timer")
        self.assertEqual(self.as_user("sh", "-c", f"ls -A {spool}").stdout.strip(), "")
        flushed = self.c.run(["journalctl", "--no-pager", "-o", "cat", f"_UID={self.uid}"]).stdout
        self.assertIn("replayed 1 heartbeat", flushed)
        # A second run with the backend up arrives at once, and nothing reached root's receiver.
        self.as_user("systemctl", "--user", "start", "ubackup.service")
        wait_bodies(self.user_receiver, "ubackup", 2)
        self.assertFalse([r for r in self.receiver.requests if _slug(r) == "ubackup"])
        listing = self.as_user("seestack-hook", "list", "--user").stdout
        self.assertRegex(listing, r"ubackup\.service +ubackup +ubackup\.timer .*success")
        check = self.as_user("seestack-hook", "check", "--user").stdout
        self.assertIn(f"{home}/.config/seestack/seestack.conf", check)
        self.assertIn(f"/run/user/{self.uid}/seestack", check)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


harness.per_release(Release, globals())
