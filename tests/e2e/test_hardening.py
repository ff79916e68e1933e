"""The shipped seestack-flush.service, sandboxed, in booted Debian 11, 12 and 13 with the
installed .deb: ``systemd-analyze security`` rates it at most 2.0, and it still does its
job inside that sandbox.

Each release's container spools heartbeats while the backend is down and then starts
the real seestack-flush.service with the backend up, twice:
- plainly: http://127.0.0.1 and the root-only key file /etc/seestack/api-key;
- through Debian's nginx (TLS with a private CA in the system store) and tinyproxy as
  ``https_proxy`` (CONNECT), the key only as the systemd credential ``seestack-api-key``
  (a drop-in's LoadCredential=).
A lingering user's hardened user unit delivers the user's spooled heartbeat too.

The backends are Receivers on the host's loopback (the containers share it); while one
is "down" its port is bound but not listening, so connections are refused and no other
process takes the port before the backend comes back on it.
"""

from __future__ import annotations

import os
import re
import socket
import time
import unittest
from typing import List, Tuple

from seestack_systemd.receiver.receive import Receiver
from tests.e2e import harness
from tests.e2e.package import built_deb
from tests.e2e.test_delivery import MAKE_CA, NGINX_CONF, PKI, TINYPROXY_CONF, free_port

API_KEY = "sk-e2e-hardening-4f1e9b2c7d-SECRET"
USER_KEY = "sk-e2e-hardening-user-0a8d3e6f-SECRET"
USER = "bob"
CONF = "/etc/seestack/seestack.conf"
KEY_FILE = "/etc/seestack/api-key"
SPOOL = "/var/lib/seestack/spool"
MAX_EXPOSURE = 2.0
# SEESTACK_E2E_RELEASES=debian-12 (comma-separated) runs only those releases, for iterating.
SELECTED = [r for r in os.environ.get("SEESTACK_E2E_RELEASES", ",".join(harness.RELEASES)).split(",") if r]
CREDENTIAL_DROPIN = "/etc/systemd/system/seestack-flush.service.d/e2e-credential.conf"


def reserve_port() -> Tuple[socket.socket, int]:
    """A host loopback port that refuses connections until a Receiver is bound to it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def exposure(text: str) -> float:
    """The overall exposure figure of ``systemd-analyze security UNIT``'s last line."""
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", text)
    if not match:
        raise AssertionError(f"no overall exposure level in:\n{text}")
    return float(match.group(1))


class Hardening(harness.ReleaseTest):
    c: harness.Container

    @classmethod
    def setUpClass(cls) -> None:
        harness.require_root("the e2e suite boots Debian containers with systemd-nspawn")
        if cls.release not in SELECTED:
            raise unittest.SkipTest(f"{cls.release} not in SEESTACK_E2E_RELEASES")
        deb = built_deb()
        # Down until a test brings it up: the plain backend, the one behind nginx, the user's.
        cls.down = {name: reserve_port() for name in ("plain", "proxied", "user", "elsewhere")}
        for sock, _ in cls.down.values():
            cls.addClassCleanup(sock.close)
        cls.tls_port, cls.proxy_port = free_port(), free_port()
        cls.c = harness.Container(cls.release, binds=[(str(deb.parent), "/mnt/dist", True)])
        cls.addClassCleanup(cls.c.poweroff)
        cls.c.boot()
        cls.c.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"/mnt/dist/{deb.name}"],
                  timeout=180, env={"DEBIAN_FRONTEND": "noninteractive"})
        cls.c.write_file(KEY_FILE, API_KEY + "\n", 0o600)
        cls.c.sh(MAKE_CA)
        cls.c.write_file("/root/e2e-nginx.conf", NGINX_CONF.format(
            port=cls.tls_port, pki=PKI, backend=cls.down["proxied"][1]))
        cls.c.write_file("/root/e2e-tinyproxy.conf", TINYPROXY_CONF.format(port=cls.proxy_port, tls_port=cls.tls_port))
        cls.c.run(["systemd-run", "--unit", "e2e-nginx", "--", "/usr/sbin/nginx", "-c", "/root/e2e-nginx.conf",
                   "-g", "daemon off;"])
        cls.c.run(["systemd-run", "--unit", "e2e-tinyproxy", "--", "/usr/bin/tinyproxy", "-d", "-c",
                   "/root/e2e-tinyproxy.conf"])
        # Both up: nginx answers 404 outside /v1/, through the proxy too.
        cls.c.sh(f"for i in $(seq 100); do curl -s -o /dev/null -p -x http://127.0.0.1:{cls.proxy_port} "
                 f"https://localhost:{cls.tls_port}/ && exit 0; sleep 0.1; done; exit 1")

    def up(self, name: str, api_key: str) -> Receiver:
        """The backend ``name`` comes back, on the port that refused until now."""
        sock, port = self.down[name]
        sock.close()
        receiver = Receiver(port=port, api_key=api_key).start()
        self.addCleanup(receiver.stop)
        return receiver

    def configure(self, *lines: str) -> None:
        self.c.write_file(CONF, "\n".join(["[seestack]", "deadline = 3", "timeout = 1", *lines, ""]), 0o600)

    def spooled(self) -> List[str]:
        return self.c.sh(f"ls {SPOOL} 2>/dev/null | grep '[.]heartbeat$' || true").stdout.split()

    def spool_one(self, slug: str, *flags: str) -> None:
        """A ping while the backend is down: kept in the spool (exit 75)."""
        before = len(self.spooled())
        done = self.c.run(["seestack-hook", "ping", "--status", "success", *flags, slug], check=False, timeout=30)
        self.assertEqual(done.returncode, 75, done.stderr)
        self.assertEqual(len(self.spooled()), before + 1, done.stderr)

    def start_flush(self) -> None:
        """Start the shipped flush service (as its timer does) and wait for its end: it succeeded."""
        self.c.systemctl("reset-failed", "seestack-flush.service", check=False)
        done = self.c.systemctl("start", "seestack-flush.service", check=False)
        result = self.c.run(["systemctl", "show", "-P", "Result", "seestack-flush.service"]).stdout.strip()
        journal = self.c.journal("seestack-flush.service")
        self.assertEqual((done.returncode, result), (0, "success"), f"{done.stderr}\n{journal}")

    def tunnels(self) -> int:
        """How many CONNECTs to nginx tinyproxy has logged (journald can lag: polled briefly)."""
        time.sleep(0.3)
        return self.c.journal("e2e-tinyproxy").count(f"CONNECT localhost:{self.tls_port}")

    def test_exposure(self):
        """systemd-analyze security rates the installed seestack-flush.service at most 2.0"""
        report = self.c.run(["systemd-analyze", "security", "--no-pager", "seestack-flush.service"]).stdout
        level = exposure(report)
        print(f"{self.release}: seestack-flush.service exposure {level}")
        self.assertLessEqual(level, MAX_EXPOSURE, report)
        # The sandbox is the one the service runs in, not just what the file says.
        props = self.c.run(["systemctl", "show", "-p", "ProtectSystem,CapabilityBoundingSet,UMask",
                            "seestack-flush.service"]).stdout
        self.assertIn("ProtectSystem=strict", props)
        self.assertIn("UMask=0077", props)
        if self.release != "debian-11":  # systemd 247's verify cannot start its manager in these containers
            verify = self.c.run(["systemd-analyze", "verify", "seestack-flush.service", "seestack-flush.timer"],
                                check=False)
            self.assertEqual(verify.stderr.strip(), "", verify.stderr)

    def test_flush_delivers_spooled_heartbeats(self):
        """spooled while the backend is down, delivered by the sandboxed flush service: plainly with the
        key file, then through nginx TLS and tinyproxy with the key as a systemd credential"""
        # Plain: http to the host's loopback, the root-only key file.
        self.c.run(["rm", "-rf", SPOOL])
        self.configure(f"endpoint = http://127.0.0.1:{self.down['plain'][1]}", f"api_key_file = {KEY_FILE}")
        self.spool_one("e2e-hardened-plain")
        receiver = self.up("plain", API_KEY)
        self.start_flush()
        self.assertEqual([(r.json()["slug"], r.status) for r in receiver.requests], [("e2e-hardened-plain", 202)])
        self.assertEqual(self.spooled(), [])
        self.assertIn("replayed 1 heartbeat", self.c.journal("seestack-flush.service"))

        # Proxied: TLS by name through tinyproxy's CONNECT; no key in any file the config names.
        self.c.write_file("/root/e2e-credential", API_KEY + "\n", 0o600)
        self.c.write_file(CREDENTIAL_DROPIN, "[Service]\nLoadCredential=seestack-api-key:/root/e2e-credential\n")
        self.c.systemctl("daemon-reload")
        self.configure(f"endpoint = https://localhost:{self.tls_port}",
                       f"https_proxy = http://127.0.0.1:{self.proxy_port}")
        self.spool_one("e2e-hardened-proxy", "--api-key-file", "/root/e2e-credential")
        proxied = self.up("proxied", API_KEY)
        tunnels = self.tunnels()
        self.start_flush()
        self.assertEqual([(r.json()["slug"], r.status) for r in proxied.requests], [("e2e-hardened-proxy", 202)])
        self.assertEqual(self.spooled(), [])
        self.assertGreater(self.tunnels(), tunnels, "the flush did not go through tinyproxy")
        self.assertEqual(len(receiver.requests), 1)

    def test_data_dir_elsewhere_needs_the_dropin(self):
        """data_dir elsewhere: read-only to the sandboxed flush until the drop-in the unit's comment shows adds it"""
        c = self.c
        c.run(["mkdir", "-p", "-m", "0700", "/srv/seestack"])
        self.configure(f"endpoint = http://127.0.0.1:{self.down['elsewhere'][1]}", f"api_key_file = {KEY_FILE}",
                       "data_dir = /srv/seestack")
        done = c.run(["seestack-hook", "ping", "--status", "success", "e2e-elsewhere"], check=False, timeout=30)
        self.assertEqual(done.returncode, 75, done.stderr)
        spool = "ls /srv/seestack/spool | grep -c '[.]heartbeat$' || true"
        self.assertEqual(c.sh(spool).stdout.strip(), "1")
        receiver = self.up("elsewhere", API_KEY)
        c.systemctl("start", "seestack-flush.service", check=False)
        self.assertEqual(c.sh(spool).stdout.strip(), "1", "the flush could write outside /var/lib/seestack")
        self.assertIn("Read-only file system", c.journal("seestack-flush.service"))
        c.write_file("/etc/systemd/system/seestack-flush.service.d/e2e-data-dir.conf",
                     "[Service]\nReadWritePaths=/srv/seestack\n")
        c.systemctl("daemon-reload")
        try:
            self.start_flush()
        finally:
            c.run(["rm", "/etc/systemd/system/seestack-flush.service.d/e2e-data-dir.conf"])
            c.systemctl("daemon-reload")
        self.assertEqual(c.sh(spool).stdout.strip(), "0")
        self.assertEqual({r.json()["slug"] for r in receiver.requests}, {"e2e-elsewhere"})

    def test_user_flush_in_lingering_manager(self):
        """the hardened user unit runs in a lingering user's manager and delivers the user's spooled heartbeat"""
        c = self.c
        c.run(["useradd", "--create-home", "--shell", "/bin/sh", USER])
        uid = c.run(["id", "-u", USER]).stdout.strip()
        # Debian 13's loginctl cannot enable linger in these containers (see e2e-systemd-containers.md).
        c.run(["mkdir", "-p", "/var/lib/systemd/linger"])
        c.run(["touch", f"/var/lib/systemd/linger/{USER}"])
        c.systemctl("start", f"user@{uid}.service")
        env = ["env", "-i", f"HOME=/home/{USER}", f"USER={USER}", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
               f"XDG_RUNTIME_DIR=/run/user/{uid}", f"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{uid}/bus"]

        def as_user(*argv: str, check: bool = True):
            return c.run(["runuser", "-u", USER, "--", *env, *argv], check=check, timeout=60)

        as_user("mkdir", "-p", f"/home/{USER}/.config/seestack")
        as_user("sh", "-c", f"umask 077; echo {USER_KEY} > ~/.config/seestack/api-key; printf '[seestack]\\n"
                f"endpoint = http://127.0.0.1:{self.down['user'][1]}\\napi_key_file = /home/{USER}/.config/seestack/"
                "api-key\\ndeadline = 2\\ntimeout = 1\\n' > ~/.config/seestack/seestack.conf")
        done = as_user("seestack-hook", "ping", "--status", "success", "e2e-hardened-user", check=False)
        self.assertEqual(done.returncode, 75, done.stderr)
        receiver = self.up("user", USER_KEY)
        started = as_user("systemctl", "--user", "start", "seestack-flush.service", check=False)
        result = as_user("systemctl", "--user", "show", "-P", "Result", "seestack-flush.service").stdout.strip()
        logs = c.run(["journalctl", "--no-pager", "-o", "cat", f"_UID={uid}"]).stdout
        self.assertEqual((started.returncode, result), (0, "success"), f"{started.stderr}\n{logs}")
        deadline = time.monotonic() + 10
        while not receiver.requests and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual([(r.json()["slug"], r.status) for r in receiver.requests], [("e2e-hardened-user", 202)])
        # The sandbox was applied: the user manager ran it with the filters of the shipped unit.
        props = as_user("systemctl", "--user", "show", "-p", "NoNewPrivileges,RestrictAddressFamilies",
                        "seestack-flush.service").stdout
        self.assertIn("NoNewPrivileges=yes", props)
        self.assertIn("AF_INET", props)


harness.per_release(Hardening, globals())


if __name__ == "__main__":
    unittest.main()
