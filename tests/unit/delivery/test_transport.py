"""Delivery against a real loopback receiver: every response class, retries, deadline.
Retries run on a fake clock (tests/unit/delivery/test_raw_answers.py, FakeTime): none sleeps through backoff."""

import os
import socket
import time
import unittest

from seestack_systemd.settings.config import parse_endpoint
from seestack_systemd.receiver.receive import Receiver
from seestack_systemd.delivery.report import send
from seestack_systemd.delivery.transport import Client, Target

BODY_TEMPLATE = ('{"slug":"job","status":"success","durationMs":5,"runId":"%s",'
                 '"finishedAt":"2026-11-24T23:43:46.123Z","sdk":{"name":"seestack-systemd","version":"0.1.0"}}')
RUN_ID = "6f1c2a4e-8b9d-4c3e-9f1a-2b3c4d5e6f70"
BODY = (BODY_TEMPLATE % RUN_ID).encode()


def connection(url: str, timeout: float = 1.0) -> Client:
    return Client(Target(parse_endpoint(url), "key-1234", "environment $SEESTACK_API_KEY", timeout))


def fake_send(conn, deadline: float):
    """send() on a fake clock: returns the Delivery and the delays it waited."""
    from .test_raw_answers import FakeTime

    fake = FakeTime()
    result = send(conn, BODY, RUN_ID, "job", fake.clock() + deadline, sleep=fake.sleep, clock=fake.clock)
    return result, fake.sleeps


class ResponseClasses(unittest.TestCase):
    def deliver(self, replies, deadline=3.0):
        with Receiver(replies=replies) as receiver:
            conn = connection(receiver.url)
            started = time.monotonic()
            result, self.sleeps = fake_send(conn, deadline)
            took = time.monotonic() - started
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

    def test_dropped(self):
        """the API's own 400, 404, 413 (JSON with an error field) drop the heartbeat, not retried, saying what to do"""
        expect = {400: "malformed", 404: "create it in the SeeStack console", 413: "too large"}
        for status, words in expect.items():
            with self.subTest(status):
                result, requests, _ = self.deliver([status])
                self.assertEqual((result.outcome, len(requests)), ("permanent", 1))
                self.assertIn(words, result.detail)
                self.assertNotIn("key-1234", result.detail)

    def test_key_refused_kept(self):
        """401 and 403 keep the heartbeat for replay, not retried now, naming the key's source but never the key"""
        for status in (401, 403):
            with self.subTest(status):
                result, requests, _ = self.deliver([status])
                self.assertEqual((result.outcome, len(requests), self.sleeps), ("temporary", 1, []))
                self.assertIn("rejected the API key from environment $SEESTACK_API_KEY", result.detail)
                self.assertNotIn("key-1234", result.detail)

    def test_unknown_status_kept(self):
        """a status the API never sends (418, 501, 203) is kept, not retried, saying to check endpoint"""
        for status in (418, 501, 203):
            with self.subTest(status):
                result, requests, _ = self.deliver([status])
                self.assertEqual((result.outcome, len(requests), self.sleeps), ("temporary", 1, []))
                self.assertIn("check endpoint", result.detail)

    def test_temporary_then_accepted(self):
        """408, 429, 500, 502, 503, 504 are retried with backoff until accepted"""
        for status in (408, 429, 500, 502, 503, 504):
            with self.subTest(status):
                result, requests, _ = self.deliver([status, status, 202], deadline=6)
                self.assertEqual((result.outcome, result.attempts, len(requests)), ("delivered", 3, 3))
                self.assertEqual(len(self.sleeps), 2)
                self.assertLess(self.sleeps[0], self.sleeps[1])  # backoff grows
                self.assertEqual({r.headers["idempotency-key"] for r in requests}, {RUN_ID})
                self.assertEqual({r.body for r in requests}, {BODY})

    def test_retry_after_honoured(self):
        """Retry-After that fits in the deadline is waited for"""
        result, requests, took = self.deliver(["429:2", 202], deadline=4)
        self.assertTrue(result.delivered)
        self.assertEqual(self.sleeps, [2.0])

    def test_retry_after_past_deadline(self):
        """Retry-After beyond the deadline ends the delivery at once as temporary"""
        result, requests, took = self.deliver(["503:30"], deadline=2)
        self.assertEqual((result.outcome, len(requests), self.sleeps), ("temporary", 1, []))
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
        result, sleeps = fake_send(conn, 3.0)
        self.assertEqual(result.outcome, "temporary")
        self.assertGreater(result.attempts, 1)
        self.assertLess(sum(sleeps), 3.0)
        self.assertIn("refused", result.detail)

    def test_dns_failure_is_temporary(self):
        """a name that does not resolve is temporary, within the deadline"""
        conn = connection("https://no-such-host.invalid")
        started = time.monotonic()
        result, _ = fake_send(conn, 1.0)
        self.assertEqual(result.outcome, "temporary")
        self.assertIn("cannot resolve no-such-host.invalid", result.detail)
        self.assertLess(time.monotonic() - started, 2.0)

    def test_environment_proxy_ignored(self):
        """the environment's proxy variables are never used: only https_proxy from the configuration"""
        names = ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
        saved = {name: os.environ.get(name) for name in names + ("no_proxy", "NO_PROXY")}
        self.addCleanup(lambda: [os.environ.pop(n, None) if v is None else os.environ.__setitem__(n, v)
                                 for n, v in saved.items()])
        for name in names:
            os.environ[name] = "http://127.0.0.1:9"  # the discard port: nothing listens
        os.environ.pop("no_proxy", None), os.environ.pop("NO_PROXY", None)
        result, requests, _ = self.deliver([202])
        self.assertEqual((result.outcome, len(requests)), ("delivered", 1))

    def test_base_path_and_headers(self):
        """endpoint base path is kept; headers follow the contract"""
        with Receiver() as receiver:
            conn = connection(receiver.url + "/")
            send(conn, BODY, RUN_ID, "job", time.monotonic() + 2)
            [req] = receiver.requests
        self.assertEqual(req.headers["authorization"], "Bearer key-1234")
        self.assertEqual(req.headers["idempotency-key"], RUN_ID)
        self.assertEqual(req.body, BODY)
        self.assertEqual(req.path, "/v1/cron/heartbeats")
        self.assertTrue(req.headers["user-agent"].startswith("seestack-systemd/0.1.0 (python/"))
        self.assertEqual(req.headers["content-type"], "application/json")


if __name__ == "__main__":
    unittest.main()
