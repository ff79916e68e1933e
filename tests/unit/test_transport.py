"""Delivery against a real loopback receiver: every response class, retries, deadline."""

import socket
import threading
import time
import unittest

from seestack_systemd.config import parse_endpoint
from seestack_systemd.receiver import Receiver
from seestack_systemd.transport import Connection, Target, send

BODY_TEMPLATE = ('{"slug":"job","status":"success","durationMs":5,"runId":"%s",'
                 '"finishedAt":"2026-11-24T23:43:46.123Z","sdk":{"name":"seestack-systemd","version":"0.1.0"}}')
RUN_ID = "6f1c2a4e-8b9d-4c3e-9f1a-2b3c4d5e6f70"
BODY = (BODY_TEMPLATE % RUN_ID).encode()


def connection(url: str, timeout: float = 1.0) -> Connection:
    return Connection(Target(parse_endpoint(url), "key-1234", "environment $SEESTACK_API_KEY", timeout))


class ResponseClasses(unittest.TestCase):
    def deliver(self, replies, deadline=3.0):
        with Receiver(replies=replies) as receiver:
            conn = connection(receiver.url)
            started = time.monotonic()
            result = send(conn, BODY, RUN_ID, "job", started + deadline)
            took = time.monotonic() - started
            conn.close()
            return result, receiver.requests, took

    def test_accepted(self):
        """200, 201, 202 and 204 are delivered after one request"""
        for status in (200, 201, 202, 204):
            with self.subTest(status):
                result, requests, _ = self.deliver([status])
                self.assertEqual((result.outcome, result.status, len(requests)), ("delivered", status, 1))

    def test_duplicate(self):
        """409 means already accepted: done, no retry"""
        result, requests, _ = self.deliver([409])
        self.assertTrue(result.delivered)
        self.assertEqual((result.outcome, len(requests)), ("duplicate", 1))

    def test_permanent(self):
        """400, 401, 403, 404, 413 are not retried and say what to do"""
        expect = {400: "malformed", 401: "$SEESTACK_API_KEY", 403: "rejected the API key", 404: "create it in the SeeStack console",
                  413: "too large"}
        for status, words in expect.items():
            with self.subTest(status):
                result, requests, _ = self.deliver([status])
                self.assertEqual((result.outcome, len(requests)), ("permanent", 1))
                self.assertIn(words, result.detail)
                self.assertNotIn("key-1234", result.detail)

    def test_temporary_then_accepted(self):
        """408, 429, 500, 502, 503, 504 are retried with backoff until accepted"""
        for status in (408, 429, 500, 502, 503, 504):
            with self.subTest(status):
                result, requests, _ = self.deliver([status, status, 202], deadline=6)
                self.assertEqual((result.outcome, result.attempts, len(requests)), ("delivered", 3, 3))
                self.assertEqual({r.headers["idempotency-key"] for r in requests}, {RUN_ID})
                self.assertEqual({r.body for r in requests}, {BODY})

    def test_retry_after_honoured(self):
        """Retry-After that fits in the deadline is waited for"""
        result, requests, took = self.deliver(["429:1", 202], deadline=4)
        self.assertTrue(result.delivered)
        gap = requests[1].received_at - requests[0].received_at
        self.assertGreaterEqual(gap, 0.95)

    def test_retry_after_past_deadline(self):
        """Retry-After beyond the deadline ends the delivery at once as temporary"""
        result, requests, took = self.deliver(["503:30"], deadline=2)
        self.assertEqual((result.outcome, len(requests)), ("temporary", 1))
        self.assertLess(took, 0.5)
        self.assertIn("Retry-After", result.detail)

    def test_reset_is_retried(self):
        """a connection reset is temporary and retried"""
        result, requests, _ = self.deliver(["reset", 202])
        self.assertEqual((result.outcome, len(requests)), ("delivered", 2))

    def test_hang_bounded_by_deadline(self):
        """a server that never answers costs the deadline, not the per-request timeout times retries"""
        result, _, took = self.deliver(["hang"] * 10, deadline=1.5)
        self.assertEqual(result.outcome, "temporary")
        self.assertLess(took, 1.5 + 0.3)

    def test_trickle_bounded_by_deadline(self):
        """a server that trickles a byte a second cannot stretch the deadline"""
        result, _, took = self.deliver(["trickle"] * 5, deadline=1.5)
        self.assertEqual(result.outcome, "temporary")
        self.assertLess(took, 1.5 + 0.3)

    def test_refused(self):
        """connection refused is temporary, retried until the deadline"""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        conn = connection(f"http://127.0.0.1:{port}")
        started = time.monotonic()
        result = send(conn, BODY, RUN_ID, "job", started + 1.2)
        self.assertEqual(result.outcome, "temporary")
        self.assertGreater(result.attempts, 1)
        self.assertIn("refused", result.detail)
        self.assertLess(time.monotonic() - started, 1.5)

    def test_dns_failure_is_temporary(self):
        """a name that does not resolve is temporary, within the deadline"""
        conn = connection("https://no-such-host.invalid")
        started = time.monotonic()
        result = send(conn, BODY, RUN_ID, "job", started + 1.0)
        self.assertEqual(result.outcome, "temporary")
        self.assertLess(time.monotonic() - started, 2.0)

    def test_keep_alive_reuses_connection(self):
        """several posts on one Connection reuse one TCP connection"""
        with Receiver() as receiver:
            conn = connection(receiver.url)
            peers = set()
            for i in range(5):
                run_id = RUN_ID[:-1] + str(i)
                result = send(conn, (BODY_TEMPLATE % run_id).encode(), run_id, "job", time.monotonic() + 2)
                self.assertTrue(result.delivered)
                peers.add(conn.sock.getsockname())
            conn.close()
        self.assertEqual(len(peers), 1)

    def test_base_path_and_headers(self):
        """endpoint base path is kept; headers follow the contract"""
        with Receiver() as receiver:
            conn = connection(receiver.url + "/")
            send(conn, BODY, RUN_ID, "job", time.monotonic() + 2)
            [req] = receiver.requests
        self.assertEqual(req.path, "/v1/cron/heartbeats")
        self.assertTrue(req.headers["user-agent"].startswith("seestack-systemd/0.1.0 (python/"))
        self.assertEqual(req.headers["content-type"], "application/json")

    def test_tls_certificate_error_permanent(self):
        """a TLS certificate that does not verify is permanent, not retried"""
        import shutil
        import ssl
        import subprocess
        import tempfile
        import os

        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp)
        cert, key = os.path.join(tmp, "c.pem"), os.path.join(tmp, "k.pem")
        if not shutil.which("openssl"):
            self.skipTest("needs the openssl command to make a certificate")
        made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                               "-days", "1", "-subj", "/CN=localhost"], capture_output=True)
        if made.returncode:
            self.skipTest("openssl not available")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        accepted = []

        def serve():
            while True:
                try:
                    s, _ = server.accept()
                except OSError:
                    return
                accepted.append(s)
                try:
                    ctx.wrap_socket(s, server_side=True)
                except (ssl.SSLError, OSError):
                    pass

        threading.Thread(target=serve, daemon=True).start()
        conn = connection(f"https://localhost:{port}")
        result = send(conn, BODY, RUN_ID, "job", time.monotonic() + 3)
        server.close()
        self.assertEqual(result.outcome, "permanent")
        self.assertIn("certificate", result.detail)
        self.assertEqual(len(accepted), 1)


if __name__ == "__main__":
    unittest.main()
