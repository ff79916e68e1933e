"""Reliability in real systemd (Debian 12, the installed .deb): an outage whose backlog the
real seestack-flush.timer replays, and a power loss in the middle of a monitored run.

Two containers boot in parallel: a volatile one for the outage and a persistent one (a
throwaway read-write copy of the root filesystem) that is killed and booted again from the
same state. The "backend" is a Receiver on the host's loopback, which the containers share;
while it is "down" its port is bound but not listening, so connections are refused and no
other process can take the port before the backend comes back on it.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Tuple

from seestack_systemd.receiver.receive import Receiver
from tests.e2e import harness
from tests.e2e.harness import reserve_port, rfc3339_to_unix, wait_until
from tests.e2e.package import built_deb

RELEASE = "debian-12"
API_KEY = "sk-e2e-reliab-7e3d9c1a5b-SECRET"
DEADLINE = 2
CONTAINERS: Dict[str, harness.Container] = {}
PORTS: Dict[str, Tuple[socket.socket, int]] = {}
SERVICE = "[Unit]\nDescription=e2e {name}\nStartLimitIntervalSec=0\n[Service]\nType=oneshot\n{body}\n"
# Drop-ins append: an empty OnActiveSec= first resets every trigger the shipped timer has.
FAST_TIMER = "[Timer]\nOnActiveSec=\nOnActiveSec=1s\nRandomizedDelaySec=0\nAccuracySec=100ms\n"




def setUpModule() -> None:
    harness.require_root("the e2e suite boots Debian containers with systemd-nspawn")
    deb = built_deb()
    binds = [(str(deb.parent), "/mnt/dist", True)]
    scratch = Path(tempfile.mkdtemp(prefix="seestack-reboot-", dir="/var/tmp"))
    # Cleanups run last-in first-out: the copied tree goes after its container is off.
    unittest.addModuleCleanup(harness._remove_tree, scratch)
    for name in ("outage", "reboot"):
        PORTS[name] = reserve_port()
        unittest.addModuleCleanup(PORTS[name][0].close)

    def boot(name: str) -> harness.Container:
        persistent = scratch / "root" if name == "reboot" else None
        container = harness.Container(RELEASE, binds=binds, persistent=persistent)
        unittest.addModuleCleanup(container.poweroff)
        container.boot()
        install(container, deb.name, PORTS[name][1])
        return container

    with ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(boot, name) for name in ("outage", "reboot")}
        for name, future in futures.items():
            CONTAINERS[name] = future.result()


def install(c: harness.Container, deb_name: str, port: int) -> None:
    """Install the package as a user would; point it at the (for now refusing) host port."""
    c.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"/mnt/dist/{deb_name}"], timeout=180,
          env={"DEBIAN_FRONTEND": "noninteractive"})
    c.write_file("/etc/seestack/api-key", API_KEY + "\n", 0o600)
    conf = c.read_file("/etc/seestack/seestack.conf")  # its one section, [seestack], comes last
    c.write_file("/etc/seestack/seestack.conf", conf + f"\nendpoint = http://127.0.0.1:{port}\n"
                 f"api_key_file = /etc/seestack/api-key\ndeadline = {DEADLINE}\n", 0o600)


def backend_up(name: str) -> Receiver:
    """Bring the backend up on the port the container has been refused on."""
    sock, port = PORTS[name]
    sock.close()
    receiver = Receiver(port=port, api_key=API_KEY).start()
    unittest.addModuleCleanup(receiver.stop)
    return receiver




def of_slug(receiver: Receiver, slug: str) -> list:
    found = []
    for request in list(receiver.requests):
        try:
            if request.json().get("slug") == slug:
                found.append(request)
        except ValueError:
            pass
    return found




class Reliability(harness.ReleaseTest, unittest.TestCase):
    release = RELEASE

    def spool(self, c: harness.Container) -> List[Tuple[str, str, bytes]]:
        """(file name, run id, body) of each spooled heartbeat, oldest first."""
        names = c.sh("ls /var/lib/seestack/spool 2>/dev/null | grep '[.]heartbeat$' || true").stdout.split()
        found = []
        for name in names:
            key, _, body = c.read_file(f"/var/lib/seestack/spool/{name}").partition("\n")
            found.append((name, key, body.encode("utf-8")))
        return found

    def add_unit(self, c: harness.Container, name: str, body: str, slug: str) -> None:
        c.write_file(f"/etc/systemd/system/e2e-{name}.service", SERVICE.format(name=name, body=body))
        c.systemctl("daemon-reload")
        c.run(["seestack-hook", "enable", f"e2e-{name}.service", "--slug", slug, "--force"])

    def props(self, c: harness.Container, unit: str, *names: str) -> Dict[str, str]:
        out = c.systemctl("show", "-p", ",".join(names), unit).stdout
        return dict(line.partition("=")[::2] for line in out.splitlines())

    def wait_inactive(self, c: harness.Container, unit: str) -> None:
        wait_until(f"{unit} inactive", lambda: c.systemctl("is-active", unit, check=False).stdout.strip()
                   not in ("active", "activating", "deactivating", "reloading"), timeout=30)

    def test_outage_replayed_by_flush_timer(self):
        """backend down for 3 runs, then up: the real seestack-flush.timer fires the flush, which delivers exactly those 3, each once, byte-identical, original finishedAt"""
        c = CONTAINERS["outage"]
        slug, unit = "d12-outage", "e2e-outage.service"
        self.add_unit(c, "outage", "ExecStart=/bin/sh -c 'echo working; sleep 0.3; echo done'", slug)
        windows = []
        for i in range(3):
            before = time.time()
            c.systemctl("start", unit)
            self.wait_inactive(c, unit)
            wait_until(f"run {i + 1} spooled", lambda: len(self.spool(c)) == i + 1)
            windows.append((before, time.time()))
            p = self.props(c, unit, "Result", "ExecMainExitTimestampMonotonic", "InactiveEnterTimestampMonotonic")
            self.assertEqual(p["Result"], "success", "the outage changed the job's result")
            stop_delay = (int(p["InactiveEnterTimestampMonotonic"]) - int(p["ExecMainExitTimestampMonotonic"])) / 1e6
            self.assertLess(stop_delay, DEADLINE + 1.0, "the hook held the unit past its deadline")
        spooled = self.spool(c)
        self.assertEqual(len(spooled), 3)
        for (_, run_id, body), (before, after) in zip(spooled, windows):
            doc = json.loads(body)
            self.assertEqual((doc["slug"], doc["status"], doc["runId"]), (slug, "success", run_id))
            self.assertTrue(before - 0.01 <= rfc3339_to_unix(doc["finishedAt"]) <= after + 0.01, doc["finishedAt"])
            self.assertGreaterEqual(doc["durationMs"], 300)

        receiver = backend_up("outage")
        time.sleep(1.0)  # a visible gap between the runs' finishedAt and the replay
        before_flush = time.time()
        # The shipped timer (OnBootSec=1min, OnUnitActiveSec=5min, RandomizedDelaySec=2min) is too slow
        # for a test; a drop-in makes that same timer fire 1 s after it is restarted.
        c.write_file("/etc/systemd/system/seestack-flush.timer.d/e2e-fast.conf", FAST_TIMER)
        c.systemctl("daemon-reload")
        self.assertEqual(c.systemctl("is-enabled", "seestack-flush.timer").stdout.strip(), "enabled")
        c.systemctl("restart", "seestack-flush.timer")
        wait_until("3 heartbeats replayed", lambda: len(of_slug(receiver, slug)) >= 3, timeout=20)
        self.wait_inactive(c, "seestack-flush.service")
        time.sleep(0.5)  # anything sent twice would arrive now

        requests = of_slug(receiver, slug)
        self.assertEqual([r.body for r in requests], [body for _, _, body in spooled])
        for (_, run_id, body), request in zip(spooled, requests):
            self.assertEqual((request.status, request.error), (202, None))
            self.assertEqual(request.headers["idempotency-key"], run_id)
            self.assertGreaterEqual(request.received_at, before_flush)
            self.assertLess(rfc3339_to_unix(request.json()["finishedAt"]), before_flush - 0.9)
        self.assertEqual(len(receiver.requests), 3)
        self.assertEqual(self.spool(c), [])
        # It was the timer's service that replayed them, started by the timer after the backend came back.
        flush = self.props(c, "seestack-flush.service", "Result", "ExecMainStartTimestamp")
        self.assertEqual(flush["Result"], "success")
        self.assertIn("replayed 3 heartbeat(s)", c.journal("seestack-flush.service", contains="replayed 3"))
        trigger = self.props(c, "seestack-flush.timer", "LastTriggerUSec")["LastTriggerUSec"]
        self.assertNotIn(trigger, ("", "n/a", "0"))

    def test_power_loss_mid_run(self):
        """power loss during a run: the spooled heartbeat survives and is delivered once; the lost run is reported as interrupted; the next finish reports durationMs null or the new run's own duration"""
        c = CONTAINERS["reboot"]
        self.add_unit(c, "spooled", "ExecStart=/bin/sh -c 'echo before the power loss'", "d12-spooled")
        self.add_unit(c, "long", "ExecStart=/bin/sleep 60", "d12-long")
        c.systemctl("start", "e2e-spooled.service")
        [(name, run_id, body)] = wait_until("one heartbeat spooled", lambda: self.spool(c))
        c.systemctl("start", "--no-block", "e2e-long.service")
        records = wait_until("the long run's start record", lambda: c.sh(
            "ls /run/seestack/d12-long/ 2>/dev/null || true").stdout.split())
        [record] = records
        started_at = json.loads(c.read_file(f"/run/seestack/d12-long/{record}"))["startedAt"]
        self.assertEqual(c.systemctl("is-active", "e2e-long.service", check=False).stdout.strip(), "activating")

        time.sleep(2.0)  # so that a duration measured from the lost start would be visibly wrong
        c.kill()
        c.boot()
        rebooted_at = time.time()
        self.assertEqual(self.spool(c), [(name, run_id, body)], "the spooled heartbeat did not survive the power loss")
        self.assertEqual(c.sh("ls -A /run/seestack/d12-long 2>/dev/null || true").stdout, "")
        self.assertEqual(c.systemctl("is-active", "e2e-long.service", check=False).stdout.strip(), "inactive")

        receiver = backend_up("reboot")
        # finish for the slug outside systemd (no INVOCATION_ID): no record of the lost run may be used.
        done = c.run(["seestack-hook", "finish", "d12-long", "--status", "failed"])
        self.assertEqual(done.returncode, 0)
        # The same unit again, now short: its finish reports its own duration, never one from before the reboot.
        c.write_file("/etc/systemd/system/e2e-long.service",
                     SERVICE.format(name="long", body="ExecStart=/bin/sleep 0.3"))
        c.systemctl("daemon-reload")
        c.systemctl("start", "e2e-long.service")
        self.wait_inactive(c, "e2e-long.service")
        wait_until("3 heartbeats of d12-long", lambda: len(of_slug(receiver, "d12-long")) >= 3)
        self.assertEqual(c.run(["seestack-hook", "flush"]).returncode, 0)
        time.sleep(0.5)

        replayed = [r for r in receiver.requests if r.headers.get("idempotency-key") == run_id]
        self.assertEqual([r.body for r in replayed], [body], "the spooled heartbeat was not delivered exactly once")
        self.assertEqual(replayed[0].status, 202)
        # The lost run itself, reported by the first delivery after the boot (its replay step), then the two runs.
        interrupted, manual, rerun = [r.json() for r in of_slug(receiver, "d12-long")]
        self.assertEqual(interrupted["status"], "failed")
        self.assertTrue(interrupted["message"].startswith("interrupted: the host rebooted or lost power"))
        self.assertAlmostEqual(rfc3339_to_unix(interrupted["startedAt"]), started_at, delta=0.002)
        lost_for = (rebooted_at - started_at) * 1000
        self.assertIsNone(manual["durationMs"], f"finish after the reboot reported {manual['durationMs']} ms;"
                          f" the lost run started {lost_for:.0f} ms before the reboot")
        self.assertNotIn("startedAt", manual)
        self.assertIsNotNone(rerun["durationMs"])
        self.assertTrue(250 <= rerun["durationMs"] < 5000, rerun["durationMs"])
        self.assertGreater(rfc3339_to_unix(rerun["startedAt"]), rebooted_at - 1)
        self.assertEqual(self.spool(c), [])
        self.assertEqual(len(receiver.requests), 4)
