"""Delivery against a scripted raw-byte server (tests/unit/rawserver.py): the answers
real servers and proxies send, malformed and endless ones included. Retries run on a
fake clock: no test sleeps through backoff."""

from __future__ import annotations

import email.utils
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from seestack_systemd.settings import config
from seestack_systemd.delivery import policy
from seestack_systemd.delivery import report
from seestack_systemd.settings.endpoint import parse_endpoint
from seestack_systemd.heartbeat import Run
from seestack_systemd.delivery.transport import Client, Target

from ..rawserver import RawServer, endless, response
from ..support import ROOT

RUN_ID = "6f1c2a4e-8b9d-4c3e-9f1a-2b3c4d5e6f70"
BODY = json.dumps({"slug": "job", "status": "success", "durationMs": 5, "runId": RUN_ID,
                   "finishedAt": "2026-11-24T23:43:46.123Z", "sdk": {"name": "seestack-systemd", "version": "0.1.0"}}).encode()
OK = response("202 Accepted", b'{"accepted": true}')
NOW = 1_800_000_000  # the wall clock the fake time starts at


# The interpreter's own peak RSS differs by release (Python 3.13's is about 40 MiB with
# these imports): what must stay bounded is what an endless answer adds, during the send.
# An unbounded reader grows by tens of MiB a second on loopback.
GROWTH_LIMIT_KIB = 8 * 1024

class FakeTime:
    """A monotonic clock that moves only when ``sleep`` is called, and a fixed wall clock."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.sleeps: list = []

    def clock(self) -> float:
        return time.monotonic() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds

    def wall(self) -> float:
        return NOW + self.offset


def client(url: str, timeout: float = 2.0, ca_file=None) -> Client:
    return Client(Target(parse_endpoint(url), "key-1234", "environment $SEESTACK_API_KEY", timeout, ca_file))


class RawAnswers(unittest.TestCase):
    def send(self, script, deadline: float = 10.0, repeat_last: bool = False, url_of=None):
        server = RawServer(script, repeat_last)
        self.addCleanup(server.close)
        fake = FakeTime()
        started = time.monotonic()
        result = report.send(client(url_of(server) if url_of else server.url), BODY, RUN_ID, "job",
                             fake.clock() + deadline, sleep=fake.sleep, clock=fake.clock, wall=fake.wall,
                             jitter=lambda: 0.5)
        self.took = time.monotonic() - started
        return result, server, fake

    def test_retry_after_zero_forever(self):
        """503 with Retry-After: 0 forever: a handful of requests, no sooner than the backoff floor, within the deadline, then kept"""
        result, server, fake = self.send([response("503 Service Unavailable", b"", "Retry-After: 0")], repeat_last=True)
        self.assertEqual(result.outcome, "temporary")
        self.assertLessEqual(len(server.requests), 8)
        self.assertGreaterEqual(len(server.requests), 3)
        self.assertGreaterEqual(min(fake.sleeps), policy.BACKOFF_FLOOR_S)
        self.assertLess(sum(fake.sleeps), 10.0)

    def test_retry_after_http_date(self):
        """Retry-After as an HTTP-date 7 s ahead is waited for, then the 202 delivers"""
        date = email.utils.formatdate(NOW + 7, usegmt=True)
        result, server, fake = self.send([response("503 Service Unavailable", b"", f"Retry-After: {date}"), OK])
        self.assertEqual((result.outcome, len(server.requests)), ("delivered", 2))
        self.assertEqual(fake.sleeps, [7.0])

    def test_retry_after_garbage_ignored(self):
        """garbage Retry-After values are ignored: the retry waits the backoff, then delivers"""
        for value in ("soon", "-1", "1.5", "2\u00b2", "9" * 5000, "Fri, 99 Foo 2026 25:61:61 GMT", "\u0663"):
            with self.subTest(value=value[:20]):
                header = f"Retry-After: {value}".encode("utf-8")
                bad = OK.replace(b"202 Accepted", b"503 Service Unavailable").replace(b"Connection", header + b"\r\nConnection")
                result, server, fake = self.send([bad, OK])
                self.assertEqual((result.outcome, len(server.requests)), ("delivered", 2))
                self.assertEqual(fake.sleeps, [0.375])  # BACKOFF_FIRST_S * (0.5 + 0.5 / 2)

    def test_bad_status_codes(self):
        """a status of non-ASCII digits or of 5,000 digits is not valid HTTP: retried, then delivered"""
        for status in ("2\u00b22".encode("latin-1"), b"9" * 5000, "２０２".encode("utf-8")):
            with self.subTest(status=status[:10]):
                result, server, _ = self.send([b"HTTP/1.1 " + status + b" OK\r\nContent-Length: 0\r\n\r\n", OK])
                self.assertEqual((result.outcome, result.attempts, len(server.requests)), ("delivered", 2, 2))

    def test_100_then_503_then_202(self):
        """100 Continue then 503 is a 503: retried; the next request's 202 delivers"""
        result, server, fake = self.send([b"HTTP/1.1 100 Continue\r\n\r\n" + response("503 Service Unavailable"), OK])
        self.assertEqual((result.outcome, result.attempts, len(server.requests)), ("delivered", 2, 2))

    def test_103_then_202(self):
        """103 Early Hints is an interim answer: the 202 after it delivers, in one request"""
        result, server, _ = self.send([b"HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n" + OK])
        self.assertEqual((result.outcome, result.status, len(server.requests)), ("delivered", 202, 1))

    def test_final_1xx_kept(self):
        """a 1xx after which the server closes is a final 1xx: kept, saying to check endpoint"""
        result, server, _ = self.send([b"HTTP/1.1 102 Processing\r\n\r\n"])
        self.assertEqual((result.outcome, result.status, len(server.requests)), ("temporary", 102, 1))
        self.assertIn("check endpoint", result.detail)

    def test_redirect_not_followed(self):
        """307 with a Location: kept, the Location is never asked (the key never goes there), the log names it"""
        elsewhere = RawServer([OK])
        self.addCleanup(elsewhere.close)
        location = f"{elsewhere.url}/v1/cron/heartbeats"
        result, server, _ = self.send([response("307 Temporary Redirect", b"", f"Location: {location}")])
        self.assertEqual((result.outcome, result.status, len(server.requests)), ("temporary", 307, 1))
        self.assertEqual(elsewhere.requests, [])
        self.assertIn(location, result.detail)
        self.assertIn("set endpoint", result.detail)

    def test_chunked_202(self):
        """a chunked 202 delivers"""
        result, server, _ = self.send([b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n"
                                       b"Content-Type: application/json\r\n\r\n4\r\n{\"a\"\r\n4\r\n:1}\n\r\n0\r\n\r\n"])
        self.assertEqual((result.outcome, len(server.requests)), ("delivered", 1))

    def test_http10_close_delimited_202(self):
        """an HTTP/1.0 202 whose body ends with the connection delivers"""
        result, server, _ = self.send([b"HTTP/1.0 202 Accepted\r\nContent-Type: application/json\r\n\r\n{\"accepted\": true}"])
        self.assertEqual((result.outcome, len(server.requests)), ("delivered", 1))

    def test_bare_lf_202(self):
        """a 202 with bare LF line ends delivers at once"""
        result, server, _ = self.send([b"HTTP/1.1 202 Accepted\nContent-Length: 2\nConnection: close\n\n{}"])
        self.assertEqual((result.outcome, len(server.requests)), ("delivered", 1))
        self.assertLess(self.took, 1.0)

    def test_401_kept(self):
        """401 keeps the heartbeat (a host problem, not the heartbeat's), naming the key's source, not retried"""
        result, server, fake = self.send([response("401 Unauthorized", b'{"error": "bad key"}')])
        self.assertEqual((result.outcome, result.status, len(server.requests), fake.sleeps), ("temporary", 401, 1, []))
        self.assertIn("$SEESTACK_API_KEY", result.detail)
        self.assertNotIn("key-1234", result.detail)

    def test_404_html_kept_json_dropped(self):
        """a proxy's HTML 404 is kept and names the URL that answered; the API's JSON 404 drops, saying to create the monitor"""
        result, server, _ = self.send([response("404 Not Found", b"<html>nope</html>", media_type="text/html")])
        self.assertEqual((result.outcome, len(server.requests)), ("temporary", 1))
        self.assertIn(f"{server.url}/v1/cron/heartbeats", result.detail)
        self.assertIn("check endpoint", result.detail)
        result, server, _ = self.send([response("404 Not Found", b'{"error": "no such monitor"}')])
        self.assertEqual((result.outcome, len(server.requests)), ("permanent", 1))
        self.assertIn("create it in the SeeStack console", result.detail)

    def test_json_without_error_field_kept(self):
        """a 400 whose JSON has no error field, or JSON sent as text/plain, is not the API's: kept"""
        for body, media in ((b'{"message": "x"}', "application/json"), (b'{"error": "x"}', "text/plain")):
            with self.subTest(media=media):
                result, _, _ = self.send([response("400 Bad Request", body, media_type=media)])
                self.assertEqual(result.outcome, "temporary")

    def test_full_url_endpoint(self):
        """an endpoint pasted as the full ingest URL is delivered to /v1/cron/heartbeats once, with a warning"""
        server = RawServer([OK])
        self.addCleanup(server.close)
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        cfg = config.Config(endpoint=server.url + "/v1/cron/heartbeats/", data_dir=tmp, deadline=3.0)
        cfg.api_key, cfg.api_key_source = "key-1234", "test"
        logged: list = []
        run = Run("job", "success", RUN_ID, time.time(), 5, None, None, "host", {})
        delivery = report.deliver(cfg, run, lambda level, line: logged.append((level, line)))
        self.assertEqual((delivery.outcome, server.paths), ("delivered", ["/v1/cron/heartbeats"]))
        warning = cfg.endpoint_parsed().warning
        self.assertEqual([line for _, line in logged if "full ingest URL" in line], [warning])
        self.assertIn(f"using {server.url} as its base", warning)

    def test_full_url_warning_said_once(self):
        """check --send and run, which check the endpoint first, say the full-URL warning once"""
        server = RawServer([OK, OK])
        self.addCleanup(server.close)
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        env = {"PATH": "/usr/bin:/bin", "SEESTACK_CONFIG": "/dev/null", "SEESTACK_API_KEY": "key-123456789",
               "SEESTACK_ENDPOINT": server.url + "/v1/cron/heartbeats", "SEESTACK_DATA_DIR": tmp,
               "SEESTACK_STATE_DIR": os.path.join(tmp, "state")}
        for argv in (["check", "--send", "job"], ["run", "job", "--", "/bin/true"]):
            with self.subTest(argv[0]):
                done = subprocess.run([sys.executable, "-m", "seestack_systemd", *argv], cwd=ROOT, env=env,
                                      capture_output=True, text=True, timeout=30)
                self.assertEqual(done.returncode, 0, done.stderr)
                self.assertEqual(done.stderr.count("is the full ingest URL"), 1, done.stderr)
        self.assertEqual(server.paths, ["/v1/cron/heartbeats"] * 2)


class Endless(unittest.TestCase):
    """Endless answers, in a child process so its peak RSS is its own."""

    CHILD = (
        "import json, resource, sys, time\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from seestack_systemd.delivery import report\n"
        "from seestack_systemd.settings.endpoint import parse_endpoint\n"
        "from seestack_systemd.delivery.transport import Client, Target\n"
        "c = Client(Target(parse_endpoint(sys.argv[2]), 'k', 'test', 5.0))\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t = time.monotonic()\n"
        "d = report.send(c, b'{}', 'r', 'job', t + 1.5)\n"
        "grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak\n"
        "print(json.dumps([d.outcome, d.detail, time.monotonic() - t, grew]))\n"
    )

    def child(self, item) -> list:
        server = RawServer([item], repeat_last=True)
        self.addCleanup(server.close)
        done = subprocess.run([sys.executable, "-c", self.CHILD, ROOT, server.url], capture_output=True, text=True,
                              timeout=30)
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout)

    def test_endless_chunked_body(self):
        """a 202 with an endless chunked body: delivered after reading the cap, fast, in bounded memory"""
        outcome, detail, took, grew_kib = self.child(endless(
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n", b"4000\r\n" + b"x" * 0x4000 + b"\r\n"))
        self.assertEqual(outcome, "delivered", detail)
        self.assertLess(took, 1.0)
        self.assertLess(grew_kib, GROWTH_LIMIT_KIB)

    def test_endless_headers(self):
        """endless headers: not valid HTTP, retried until the 1.5 s deadline, then kept, in bounded memory"""
        outcome, detail, took, grew_kib = self.child(endless(b"HTTP/1.1 202 Accepted\r\n", b"X-Pad: " + b"y" * 1000 + b"\r\n"))
        self.assertEqual(outcome, "temporary", detail)
        self.assertLess(took, 1.5 + 0.5)
        self.assertLess(grew_kib, GROWTH_LIMIT_KIB)


@unittest.skipUnless(shutil.which("openssl"), "needs the openssl command (tests/install-deps.sh installs it)")
class UntrustedCertificate(unittest.TestCase):
    def test_untrusted_certificate_kept(self):
        """a certificate no trusted CA signed: kept after one attempt, saying to install the CA or set ca_file"""
        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                       check=True, capture_output=True)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        self.addCleanup(listener.close)
        handshakes = []

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                handshakes.append(conn)
                try:
                    context.wrap_socket(conn, server_side=True).close()
                except (ssl.SSLError, OSError):
                    conn.close()

        threading.Thread(target=serve, daemon=True).start()
        fake = FakeTime()
        result = report.send(client(f"https://localhost:{listener.getsockname()[1]}"), BODY, RUN_ID, "job",
                             fake.clock() + 5, sleep=fake.sleep, clock=fake.clock)
        self.assertEqual((result.outcome, result.attempts, len(handshakes)), ("temporary", 1, 1))
        self.assertIn("certificate", result.detail)
        self.assertIn("update-ca-certificates", result.detail)


if __name__ == "__main__":
    unittest.main()
