"""policy.decide, the one decision table, and endpoint parsing: pure functions, no network."""

from __future__ import annotations

import email.utils
import http.client
import socket
import ssl
import unittest

from seestack_systemd.delivery import policy
from seestack_systemd.settings.endpoint import parse_endpoint
from seestack_systemd.errors import ConfigError
from seestack_systemd.delivery.policy import DONE, DROP, KEEP, RETRY, Answer, decide, retry_after

URL = "https://ingest.example.com/v1/cron/heartbeats"
JSON = {"content-type": "application/json; charset=utf-8"}
NOW = 1_800_000_000.0


def status(code: int, body: bytes = b"", headers=None) -> Answer:
    return Answer(URL, code, dict(headers if headers is not None else JSON), body)


class DecisionTable(unittest.TestCase):
    def test_statuses(self):
        """every row of the contract's table: done, drop (API JSON only), keep, retry"""
        api = b'{"error": "why"}'
        expect = {200: DONE, 201: DONE, 202: DONE, 204: DONE, 409: DONE, 400: DROP, 404: DROP, 413: DROP,
                  401: KEEP, 403: KEEP, 408: RETRY, 429: RETRY, 500: RETRY, 502: RETRY, 503: RETRY, 504: RETRY,
                  100: KEEP, 103: KEEP, 301: KEEP, 302: KEEP, 307: KEEP, 308: KEEP, 203: KEEP, 418: KEEP,
                  501: KEEP, 599: KEEP, 999: KEEP}
        for code, action in expect.items():
            with self.subTest(code):
                self.assertEqual(decide(status(code, api), 1, 10.0, NOW).action, action)

    def test_drop_needs_the_apis_json_error(self):
        """400/404/413 drop only with application/json holding an error field; otherwise kept, naming the URL"""
        for body, headers in ((b"<html>", {"content-type": "text/html"}), (b'{"error": "x"}', {}),
                              (b'{"message": "x"}', JSON), (b'["error"]', JSON), (b"{bad", JSON),
                              (b"\xff\xfe", JSON), (b"[" * 100000, JSON)):
            for code in (400, 404, 413):
                with self.subTest(code=code, body=body[:10]):
                    decision = decide(status(code, body, headers), 1, 10.0, NOW)
                    self.assertEqual(decision.action, KEEP)
                    self.assertIn(URL, decision.detail)
                    self.assertIn("check endpoint", decision.detail)

    def test_failures(self):
        """exceptions in place of an answer: TLS verification keeps; the rest retry"""
        tls = ssl.SSLCertVerificationError(1, "certificate verify failed")
        self.assertEqual(decide(Answer(URL, error=tls), 1, 10.0, NOW).action, KEEP)
        for error in (ConnectionRefusedError(111, "refused"), ConnectionResetError(104, "reset"), TimeoutError(),
                      socket.gaierror(-2, "Name or service not known"), http.client.BadStatusLine("x"),
                      ValueError("chunk"), OSError(113, "No route to host")):
            with self.subTest(error=type(error).__name__):
                self.assertEqual(decide(Answer(URL, error=error), 1, 10.0, NOW).action, RETRY)

    def test_backoff_capped_and_floored(self):
        """backoff doubles to the cap, never below the floor, and attempt 10,000 does not overflow"""
        delays = [decide(status(503), n, 1e9, NOW, jitter=0.0).delay for n in (1, 2, 3, 4, 5, 10_000)]
        self.assertEqual(delays, [0.25, 0.5, 1.0, 2.0, 2.0, 2.0])
        self.assertEqual(decide(status(503), 10_000, 1e9, NOW, jitter=0.999).delay, policy.BACKOFF_CAP_S * 0.9995)

    def test_retry_after(self):
        """Retry-After: delay-seconds or an HTTP-date; garbage is None; a wait past the time left keeps"""
        self.assertEqual(retry_after("3", NOW), 3.0)
        self.assertEqual(retry_after(email.utils.formatdate(NOW + 30, usegmt=True), NOW), 30.0)
        self.assertEqual(retry_after(email.utils.formatdate(NOW - 30, usegmt=True), NOW), 0.0)
        for garbage in ("", "soon", "-1", "1.5", "2\u00b2", "\u0663", "9" * 5000, "Mon, 99 Xyz 2026 99:99:99 GMT"):
            with self.subTest(garbage=garbage[:12]):
                self.assertIsNone(retry_after(garbage, NOW))
        waits = decide(status(429, b"", {"retry-after": "3"}), 1, 10.0, NOW)
        self.assertEqual((waits.action, waits.delay), (RETRY, 3.0))
        late = decide(status(429, b"", {"retry-after": "30"}), 1, 10.0, NOW)
        self.assertEqual(late.action, KEEP)
        self.assertIn("Retry-After 30s is past the deadline", late.detail)

    def test_log_lines_are_one_clean_line(self):
        """a server's error text and Location reach the log as one printable line of bounded length"""
        body = b'{"error": "bad\\n\\u001b[31mred\\u0007 ' + b"x" * 5000 + b'"}'
        detail = decide(status(400, body), 1, 10.0, NOW).detail
        self.assertNotIn("\n", detail)
        self.assertNotIn("\x1b", detail)
        self.assertLess(len(detail), 500)
        moved = decide(status(302, b"", {"location": "https://evil.example/\r\nX: y"}), 1, 10.0, NOW)
        self.assertEqual(moved.detail.count("\n"), 0)


class EndpointParsing(unittest.TestCase):
    def test_full_ingest_url_is_its_base(self):
        """an endpoint ending in /v1/cron/heartbeats is taken as its base, with a warning saying what to set"""
        for url, base in (("https://x.example/v1/cron/heartbeats", ""), ("https://x.example/a/v1/cron/heartbeats/", "/a")):
            with self.subTest(url=url):
                ep = parse_endpoint(url)
                self.assertEqual(ep.path, base)
                self.assertEqual(ep.ingest_url, f"https://x.example:443{base}/v1/cron/heartbeats")
                self.assertIn(f"using https://x.example{base} as its base", ep.warning)
        self.assertEqual(parse_endpoint("https://x.example/a").warning, "")

    def test_configuration_errors(self):
        """CR/LF, spaces, a fragment, a query or credentials in an endpoint are configuration errors"""
        for url, words in (("https://x.example/a\r\nX-Evil: 1", "control character"), ("https://x.example/\n", "control"),
                           ("https://x.example/a b", "space"), ("https://x.example/#frag", "fragment"),
                           ("https://x.example/?q=1", "query"), ("https://x.example/?", "query"),
                           ("https://u:p@x.example", "credentials"), ("https://x.example\t/a", "control"),
                           ("http://[::1", "not a URL")):
            with self.subTest(url=url), self.assertRaises(ConfigError) as cm:
                parse_endpoint(url)
            self.assertIn(words, str(cm.exception))


if __name__ == "__main__":
    unittest.main()
