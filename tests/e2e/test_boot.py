"""Smoke test of the container harness: each Debian release boots as the e2e suite assumes.

The three containers are booted once, in parallel, for the whole module (setUpModule) and
powered off by module cleanups, which also run when a boot fails half-way.
"""

import http.server
import tempfile
import threading
import unittest
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict

from tests.e2e import harness

PYTHON_VERSIONS = {"debian-11": "3.9", "debian-12": "3.11", "debian-13": "3.13"}
MARKER = "written on the host\n"
GREETING = "hello from the host"

CONTAINERS: Dict[str, harness.Container] = {}
URL = ""  # the host-side HTTP server, set by setUpModule


class _Greeter(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = GREETING.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass  # keep the runner's one line per test free of access logs


def setUpModule() -> None:
    global URL
    harness.require_root("the e2e suite boots Debian containers")
    shared = tempfile.TemporaryDirectory()
    unittest.addModuleCleanup(shared.cleanup)
    Path(shared.name, "marker.txt").write_text(MARKER)
    # Port 0: containers share the host's network, so a fixed port could collide.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Greeter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    unittest.addModuleCleanup(server.server_close)
    unittest.addModuleCleanup(server.shutdown)  # cleanups run last-in first-out
    URL = f"http://127.0.0.1:{server.server_address[1]}/"
    for release in harness.RELEASES:
        container = harness.Container(release, binds=[(shared.name, "/mnt/host", True)])
        CONTAINERS[release] = container
        unittest.addModuleCleanup(container.poweroff)
    # In parallel: three boots take about as long as one (and so do three cold builds).
    with ThreadPoolExecutor(len(CONTAINERS)) as pool:
        futures = [pool.submit(c.boot) for c in CONTAINERS.values()]
    for future in futures:
        future.result()


class _ReleaseChecks(harness.ReleaseTest):
    """The checks for one release."""

    @property
    def c(self) -> harness.Container:
        return CONTAINERS[self.release]

    def test_system_state(self) -> None:
        """systemd reports running or degraded"""
        state = self.c.systemctl("is-system-running", check=False).stdout.strip()
        self.assertIn(state, ("running", "degraded"))

    def test_no_failed_units(self) -> None:
        """systemctl --failed lists nothing"""
        self.assertEqual(self.c.systemctl("--failed", "--plain", "--no-legend").stdout.strip(), "")

    def test_python_version(self) -> None:
        """python3 is the release's version"""
        out = self.c.run(["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]).stdout
        self.assertEqual(out.strip(), PYTHON_VERSIONS[self.release])

    def test_host_loopback_reachable(self) -> None:
        """a server on the host's 127.0.0.1 answers from inside"""
        fetch = "import sys, urllib.request as u; print(u.urlopen(sys.argv[1], timeout=10).read().decode())"
        self.assertEqual(self.c.run(["python3", "-c", fetch, URL]).stdout.strip(), GREETING)

    def test_read_only_bind(self) -> None:
        """a read-only bind-mounted host directory is visible and not writable"""
        self.assertEqual(self.c.read_file("/mnt/host/marker.txt"), MARKER)
        self.assertNotEqual(self.c.sh("echo x > /mnt/host/new", check=False).returncode, 0)

    def test_hostname(self) -> None:
        """the hostname is the container's unique name"""
        self.assertEqual(self.c.run(["hostname"]).stdout.strip(), self.c.name)

    def test_write_file(self) -> None:
        """write_file creates parent directories, sets the mode, keeps bytes exact"""
        self.c.write_file("/etc/seestack-e2e/nested/file", "a\nb: ü\n", mode=0o600)
        self.assertEqual(self.c.read_file("/etc/seestack-e2e/nested/file"), "a\nb: ü\n")
        mode = self.c.run(["stat", "-c", "%a", "/etc/seestack-e2e/nested/file"]).stdout.strip()
        self.assertEqual(mode, "600")


harness.per_release(_ReleaseChecks, globals())
