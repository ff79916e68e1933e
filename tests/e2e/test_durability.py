"""No run goes unreported, in booted Debian 11, 12 and 13 with the installed .deb: a stop
timeout shorter than the delivery deadline, a SIGKILL of the unit while its finish hook
waits on a silent backend, a clean poweroff while the job runs, and a power loss (the
container's PID 1 killed) while the job runs. Each ends in one delivery by the real
seestack-flush.service, with the run's own runId and finishedAt.

One persistent container per release (a throwaway read-write copy of the root filesystem,
so that it can be powered off or killed and booted again from the same disk). The backend
is on the host's loopback, which the containers share: a silent one (it takes the
connection and the request, and never answers), a refusing one (a bound port that does not
listen), and a Receiver that answers 202.
"""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Tuple

from seestack_systemd.receiver.receive import Receiver
from tests.e2e import harness
from tests.e2e.harness import reserve_port, rfc3339_to_unix, wait_until
from tests.e2e.package import built_deb

API_KEY = "sk-e2e-durable-4b1d7e9c2a-SECRET"
DEADLINE = 4  # the delivery deadline in the config file; the short stop timeout is 2 s
CONTAINERS: Dict[str, harness.Container] = {}
SERVICE = "[Unit]\nDescription=e2e {name}\nStartLimitIntervalSec=0\n[Service]\nType=oneshot\n{body}\n"


class Silent:
    """A backend that accepts, reads the request and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests = 0
        self.held: List[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            conn.settimeout(60)
            try:
                if conn.recv(65536):
                    self.requests += 1
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close alone would not)
        except OSError:
            pass
        self.sock.close()
        for conn in self.held:
            conn.close()




def setUpModule() -> None:
    harness.require_root("the e2e suite boots Debian containers with systemd-nspawn")
    deb = built_deb()
    binds = [(str(deb.parent), "/mnt/dist", True)]
    scratch = Path(tempfile.mkdtemp(prefix="seestack-durable-", dir="/var/tmp"))
    unittest.addModuleCleanup(harness._remove_tree, scratch)

    def boot(release: str) -> harness.Container:
        container = harness.Container(release, binds=binds, persistent=scratch / release)
        unittest.addModuleCleanup(container.poweroff)
        container.boot()
        container.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"/mnt/dist/{deb.name}"],
                      timeout=180, env={"DEBIAN_FRONTEND": "noninteractive"})
        container.write_file("/etc/seestack/api-key", API_KEY + "\n", 0o600)
        return container

    with ThreadPoolExecutor(len(harness.RELEASES)) as pool:
        futures = {release: pool.submit(boot, release) for release in harness.RELEASES}
        for release, future in futures.items():
            CONTAINERS[release] = future.result()






class Durable(harness.ReleaseTest):
    @property
    def c(self) -> harness.Container:
        return CONTAINERS[self.release]

    def slug(self, name: str) -> str:
        return f"d{self.release.split('-')[1]}-{name}"

    def endpoint(self, url: str) -> None:
        """Point the agent's config file at ``url`` (root hooks and the flush read it each run)."""
        self.c.write_file("/etc/seestack/seestack.conf",
                          f"[seestack]\nendpoint = {url}\napi_key_file = /etc/seestack/api-key\n"
                          f"deadline = {DEADLINE}\n", 0o600)

    def add_unit(self, name: str, body: str) -> str:
        unit = f"e2e-{name}.service"
        self.c.write_file(f"/etc/systemd/system/{unit}", SERVICE.format(name=name, body=body))
        self.c.systemctl("daemon-reload")
        self.c.run(["seestack-hook", "enable", unit, "--slug", self.slug(name), "--force"])
        return unit

    def props(self, unit: str, *names: str) -> Dict[str, str]:
        out = self.c.systemctl("show", "-p", ",".join(names), unit).stdout
        return dict(line.partition("=")[::2] for line in out.splitlines())

    def wait_inactive(self, unit: str, timeout: float = 30) -> None:
        wait_until(f"{unit} inactive", lambda: self.c.systemctl("is-active", unit, check=False).stdout.strip()
                   not in ("active", "activating", "deactivating", "reloading"), timeout=timeout)

    def spooled(self, slug: str) -> List[Tuple[str, bytes]]:
        """(run id, body) of each spooled heartbeat of ``slug``, oldest first."""
        names = self.c.sh("ls /var/lib/seestack/spool 2>/dev/null | grep '[.]heartbeat$' || true").stdout.split()
        found = []
        for name in names:
            key, _, body = self.c.read_file(f"/var/lib/seestack/spool/{name}").partition("\n")
            if json.loads(body)["slug"] == slug:
                found.append((key, body.encode("utf-8")))
        return found

    def running(self) -> List[str]:
        """SLUG/RUNID.json of each in-progress record."""
        return self.c.sh("cd /var/lib/seestack/running 2>/dev/null && find . -name '*.json' | cut -c3- || true"
                         ).stdout.split()

    def flush(self) -> None:
        """Start the real seestack-flush.service and wait for it (its start limit of 5 in
        10 s is reset first: the tests start it more often than its timer ever would)."""
        self.c.systemctl("reset-failed", "seestack-flush.service", check=False)
        self.c.systemctl("start", "seestack-flush.service")
        self.wait_inactive("seestack-flush.service")

    def flush_delivers_once(self, slug: str, body: bytes) -> None:
        """The real seestack-flush.service sends the spooled heartbeat byte for byte, once."""
        receiver = Receiver(api_key=API_KEY).start()
        self.addCleanup(receiver.stop)
        self.endpoint(receiver.url)
        for _ in range(2):  # a second flush must find nothing left to send
            self.flush()
        mine = [r for r in receiver.requests if r.json().get("slug") == slug]
        self.assertEqual([r.body for r in mine], [body], "not delivered exactly once, byte for byte")
        self.assertEqual(mine[0].status, 202)
        self.assertEqual(mine[0].headers["idempotency-key"], json.loads(body)["runId"])
        self.assertEqual(self.spooled(slug), [])
        self.assertEqual(self.props("seestack-flush.service", "Result")["Result"], "success")

    def test_stop_timeout_shorter_than_deadline(self):
        """TimeoutStopSec=2 with a silent backend: the unit stops within 2 s, not killed; the heartbeat is spooled and the flush service delivers it once"""
        silent = Silent()
        self.addCleanup(silent.close)
        self.endpoint(silent.url)
        unit = self.add_unit("tstop", "ExecStart=/bin/sh -c 'echo short job'\nTimeoutStopSec=2")
        before = time.time()
        self.c.systemctl("start", "--no-block", unit)
        self.wait_inactive(unit)
        p = self.props(unit, "Result", "ExecMainExitTimestampMonotonic", "InactiveEnterTimestampMonotonic")
        self.assertEqual(p["Result"], "success", "the hook changed the job's result")
        took = (int(p["InactiveEnterTimestampMonotonic"]) - int(p["ExecMainExitTimestampMonotonic"])) / 1e6
        self.assertLess(took, 2.0, "the stop took as long as systemd's timeout")
        self.assertGreaterEqual(silent.requests, 1)
        journal = self.c.journal(unit, contains="stop timeout (2 s)")
        self.assertNotIn("timed out", journal)
        [(run_id, body)] = self.spooled(self.slug("tstop"))
        finished = rfc3339_to_unix(json.loads(body)["finishedAt"])
        self.assertTrue(before <= finished <= time.time(), "finishedAt is not the run's end")
        self.flush_delivers_once(self.slug("tstop"), body)

    def test_sigkill_of_unit_while_finish_waits(self):
        """systemctl kill --signal=SIGKILL while the finish hook waits on a silent backend: spooled, delivered once by the flush service"""
        silent = Silent()
        self.addCleanup(silent.close)
        self.endpoint(silent.url)
        unit = self.add_unit("kill", "ExecStart=/bin/sh -c 'echo killed while reporting'")
        self.c.systemctl("start", "--no-block", unit)
        wait_until("the finish hook sending", lambda: silent.requests >= 1)
        self.assertEqual(self.props(unit, "SubState")["SubState"], "stop-post")
        self.c.systemctl("kill", "--signal=SIGKILL", unit)
        self.wait_inactive(unit)
        [(run_id, body)] = self.spooled(self.slug("kill"))
        self.assertEqual(json.loads(body)["status"], "success")
        self.flush_delivers_once(self.slug("kill"), body)
        self.assertEqual(self.running(), [])

    def test_poweroff_while_job_runs(self):
        """systemctl poweroff while a monitored job runs, backend down: the failed heartbeat is spooled on disk and delivered once after the boot"""
        sock, port = reserve_port()  # bound, not listening: connections are refused
        self.addCleanup(sock.close)
        self.endpoint(f"http://127.0.0.1:{port}")
        unit = self.add_unit("off", "ExecStart=/bin/sleep 120")
        self.c.systemctl("start", "--no-block", unit)
        wait_until("the job running", lambda: self.props(unit, "SubState")["SubState"] == "start")
        self.c.poweroff()
        self.c.boot()
        [(run_id, body)] = self.spooled(self.slug("off"))
        sent = json.loads(body)
        self.assertEqual(sent["status"], "failed")
        self.assertIn("SIGTERM", sent["message"])
        self.flush_delivers_once(self.slug("off"), body)
        self.assertEqual(self.running(), [])

    def test_power_loss_while_job_runs(self):
        """power loss (PID 1 killed) mid-run: after the next boot one failed heartbeat names the reboot, with the run's id and start; it arrives once"""
        sock, port = reserve_port()  # bound, not listening: connections are refused
        self.addCleanup(sock.close)
        self.endpoint(f"http://127.0.0.1:{port}")
        unit = self.add_unit("cut", "ExecStart=/bin/sleep 120")
        self.c.systemctl("start", "--no-block", unit)
        [name] = wait_until("the run's in-progress record", self.running)
        record = json.loads(self.c.read_file(f"/var/lib/seestack/running/{name}"))
        self.assertEqual(record["slug"], self.slug("cut"))
        self.c.kill()
        self.c.boot()
        receiver = Receiver(api_key=API_KEY).start()
        self.addCleanup(receiver.stop)
        self.endpoint(receiver.url)
        for _ in range(2):
            self.flush()
        [got] = [r for r in receiver.requests if r.json().get("slug") == self.slug("cut")]
        sent = got.json()
        self.assertEqual((sent["status"], sent["runId"], sent["durationMs"]), ("failed", record["runId"], None))
        self.assertTrue(sent["message"].startswith("interrupted: the host rebooted or lost power during the run"),
                        sent["message"])
        self.assertAlmostEqual(rfc3339_to_unix(sent["startedAt"]), record["startedAt"], delta=0.002)
        self.assertEqual(got.headers["idempotency-key"], record["runId"])
        self.assertEqual(self.running(), [])
        self.assertIn(f"{self.slug('cut')}: interrupted: the host rebooted or lost power during the run",
                      self.c.journal("seestack-flush.service"))


harness.per_release(Durable, globals())
