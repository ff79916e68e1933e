"""The local ingest server: contract checks, scripted replies and its records, over real loopback sockets."""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import tempfile
import time
import unittest
import uuid
from urllib.parse import urlsplit

from seestack_systemd.contract import INGEST_PATH as HEARTBEAT_PATH
from seestack_systemd.receiver.printer import Request, format_line
from seestack_systemd.receiver.receive import Receiver
from seestack_systemd.receiver.replies import parse_replies
from seestack_systemd.receiver.validator import validate

API_KEY = "sk-test-0123456789abcdef"


def heartbeat(**fields) -> dict:
    """A valid heartbeat body with a fresh runId; ``fields`` override or add (None deletes)."""
    body = {
        "slug": "daily-report",
        "status": "failed",
        "durationMs": 1234,
        "message": "exit-code: exited with status 1",
        "runId": str(uuid.uuid4()),
        "startedAt": "2026-11-24T23:43:44.889Z",
        "finishedAt": "2026-11-24T23:43:46.123Z",
        "host": "web-1",
        "source": {"systemd": {"unit": "daily-report.service"}},
        "sdk": {"name": "seestack-systemd", "version": "0.1.0"},
    }
    body.update(fields)
    return {name: value for name, value in body.items() if value is not None}


def headers_for(body: dict, **overrides: str | None) -> dict:
    """Valid headers for ``body``; keyword names use '_' for '-', and None drops a header."""
    headers = {
        "Authorization": f"Bearer {API_KEY}",
        "Content-Type": "application/json",
        "User-Agent": "seestack-systemd/0.1.0 (python/3.11; linux)",
        "Idempotency-Key": str(body.get("runId", "")),
    }
    for name, value in overrides.items():
        name = name.replace("_", "-")
        headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        if value is not None:
            headers[name] = value
    return headers


def connect(receiver: Receiver, timeout: float = 2.0) -> http.client.HTTPConnection:
    url = urlsplit(receiver.url)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)


def exchange(conn, body=None, headers=None, method="POST", path=HEARTBEAT_PATH, raw: bytes | None = None):
    """Send one request on ``conn``; return (status, response headers, parsed JSON or None)."""
    body = heartbeat() if body is None else body
    data = raw if raw is not None else json.dumps(body).encode("utf-8")
    conn.request(method, path, body=data, headers=headers if headers is not None else headers_for(body))
    response = conn.getresponse()
    payload = response.read()
    is_json = response.getheader("Content-Type") == "application/json"
    return response.status, response, (json.loads(payload) if is_json else payload) if payload else None


def post(receiver: Receiver, body=None, headers=None, method="POST", path=HEARTBEAT_PATH, raw=None):
    """One request on a fresh connection."""
    conn = connect(receiver)
    try:
        return exchange(conn, body, headers, method, path, raw)
    finally:
        conn.close()


class ContractTests(unittest.TestCase):
    """Each contract violation gets 400 (404 for a path) naming it; one shared receiver."""

    receiver: Receiver

    @classmethod
    def setUpClass(cls):
        cls.receiver = Receiver().start()

    @classmethod
    def tearDownClass(cls):
        cls.receiver.stop()

    def assertRefused(self, expected: str, body=None, headers=None, status=400, **kwargs):
        got, _, payload = post(self.receiver, body, headers, **kwargs)
        self.assertEqual(got, status, payload)
        self.assertIn(expected, payload["error"])
        recorded = self.receiver.requests[-1]
        self.assertEqual(recorded.status, status)
        self.assertEqual(recorded.error, payload["error"])
        return payload["error"]

    def assertAccepted(self, body, headers=None):
        got, _, payload = post(self.receiver, body, headers)
        self.assertEqual((got, payload), (202, {"accepted": True}), self.receiver.requests[-1].error)

    def test_wrong_method(self):
        """GET on the heartbeat path gets 400 'method must be POST'."""
        self.assertRefused("method must be POST", method="GET")

    def test_wrong_path(self):
        """an unknown path, a doubled slash or a query string gets a text/plain 404 naming the path, not the API's JSON error (so an agent keeps the heartbeat)"""
        for path in ("/v1/cron/heartbeat", "//v1/cron/heartbeats", "/api/v1/cron/heartbeats", HEARTBEAT_PATH + "?x=1"):
            with self.subTest(path=path):
                conn = connect(self.receiver)
                self.addCleanup(conn.close)
                body = heartbeat()
                conn.request("POST", path, body=json.dumps(body).encode(), headers=headers_for(body))
                response = conn.getresponse()
                text = response.read().decode()
                self.assertEqual((response.status, response.getheader("Content-Type")),
                                 (404, "text/plain; charset=utf-8"))
                self.assertIn(f"unknown path {path!r}", text)
                self.assertEqual(self.receiver.requests[-1].status, 404)

    def test_bearer_missing_or_invalid(self):
        """a missing or malformed Authorization header gets 400, without echoing its value"""
        body = heartbeat()
        self.assertRefused("missing Authorization", body, headers_for(body, Authorization=None))
        for value in ("Bearer ", "Bearer", "Basic dXNlcjpwYXNz", API_KEY, "Bearer two words"):
            with self.subTest(value=value):
                error = self.assertRefused("must be 'Bearer <api key>'", body, headers_for(body, Authorization=value))
                self.assertNotIn(API_KEY, error)

    def test_content_type(self):
        """a wrong or missing Content-Type gets 400; a utf-8 charset parameter is fine"""
        body = heartbeat()
        self.assertRefused("Content-Type must be application/json", body, headers_for(body, Content_Type="text/plain"))
        self.assertRefused("Content-Type", body, headers_for(body, Content_Type="application/json; charset=latin-1"))
        self.assertRefused("missing Content-Type", body, headers_for(body, Content_Type=None))
        self.assertAccepted(body, headers_for(body, Content_Type="application/json; charset=UTF-8"))

    def test_user_agent(self):
        """a User-Agent not starting with 'seestack-systemd/<version>' gets 400"""
        body = heartbeat()
        for agent in ("Python-urllib/3.11", "seestack-systemd/"):
            with self.subTest(agent=agent):
                self.assertRefused("User-Agent must start with", body, headers_for(body, User_Agent=agent))

    def test_idempotency_key_missing(self):
        """no Idempotency-Key header gets 400"""
        body = heartbeat()
        self.assertRefused("missing Idempotency-Key", body, headers_for(body, Idempotency_Key=None))

    def test_run_id_differs_from_key(self):
        """a runId other than the Idempotency-Key gets 400, and a non-UUID runId too"""
        body = heartbeat()
        self.assertRefused("differs from the Idempotency-Key", body, headers_for(body, Idempotency_Key=str(uuid.uuid4())))
        body = heartbeat(runId="run-1")
        self.assertRefused("runId must be a UUID", body)

    def test_bad_json(self):
        """a body that is not JSON, NaN, or not an object gets 400"""
        body = heartbeat()
        self.assertRefused("not valid JSON", body, raw=b'{"slug": ')
        self.assertRefused("not valid JSON", body, raw=json.dumps(heartbeat(durationMs=float("nan"))).encode())
        self.assertRefused("must be a JSON object, not an array", body, raw=b"[]")

    def test_bad_utf8(self):
        """a body that is not UTF-8 gets 400 naming the byte"""
        body = heartbeat(message="caf\xe9")
        raw = json.dumps(body, ensure_ascii=False).encode("latin-1")
        self.assertRefused("not valid UTF-8", body, raw=raw)

    def test_bad_slug(self):
        """a slug outside ^[a-z0-9-]+$ gets the slug rule's message"""
        for slug in ("Daily_Report", "", 7):
            with self.subTest(slug=slug):
                self.assertRefused("slug", heartbeat(slug=slug))

    def test_bad_status(self):
        """a status other than success/failed gets 400"""
        for status in ("ok", "FAILED", True):
            with self.subTest(status=status):
                self.assertRefused("status must be 'success' or 'failed'", heartbeat(status=status))

    def test_bad_duration(self):
        """a negative, float, boolean or string durationMs gets 400; null is fine"""
        for duration in (-1, 1.5, 1.0, True, "12"):
            with self.subTest(duration=duration):
                self.assertRefused("durationMs must be an integer >= 0 or null", heartbeat(durationMs=duration))
        body = heartbeat()
        body["durationMs"] = None
        self.assertAccepted(body)

    def test_bad_finished_at(self):
        """finishedAt without milliseconds, with an offset, not UTC or not a real date gets 400; so do such startedAt, nextRunAt"""
        for value in ("2026-11-24T23:43:46Z", "2026-11-24T23:43:46.123+00:00", "2026-11-24T23:43:46.123456Z",
                      "2026-11-24 23:43:46.123Z", "2026-02-30T23:43:46.123Z", 1764027826123):
            with self.subTest(value=value):
                self.assertRefused("finishedAt", heartbeat(finishedAt=value))
        body = heartbeat()
        del body["finishedAt"]
        self.assertRefused("missing required field 'finishedAt'", body)
        self.assertRefused("startedAt must be RFC 3339", heartbeat(startedAt="yesterday"))
        self.assertRefused("nextRunAt must be RFC 3339", heartbeat(nextRunAt="tomorrow"))
        self.assertAccepted(heartbeat(nextRunAt="2026-11-25T02:30:00.000Z"))

    def test_message_too_long(self):
        """a message over 4096 UTF-8 bytes gets 400; exactly 4096 bytes of multi-byte text is fine"""
        self.assertRefused("4097 bytes", heartbeat(message="x" * 4097))
        self.assertRefused("message must be a string", heartbeat(message=["x"]))
        self.assertAccepted(heartbeat(message="é" * 2048))

    def test_sdk_missing_or_wrong(self):
        """a missing sdk, a wrong sdk.name or a missing sdk.version gets 400"""
        body = heartbeat()
        del body["sdk"]
        self.assertRefused("missing required field 'sdk'", body)
        self.assertRefused("sdk.name must be 'seestack-systemd'", heartbeat(sdk={"name": "seestack-python", "version": "1"}))
        self.assertRefused("sdk.version", heartbeat(sdk={"name": "seestack-systemd"}))

    def test_optional_field_types(self):
        """host must be a string and source an object; unknown fields are allowed"""
        self.assertRefused("host must be a string", heartbeat(host=1))
        self.assertRefused("source must be an object", heartbeat(source="cron"))
        self.assertAccepted(heartbeat(newField={"a": 1}, message=None, startedAt=None, host=None, source=None))

    def test_validate_function(self):
        """validate() returns None for a valid request, any header-name case, and a sentence otherwise"""
        body = heartbeat()
        raw = json.dumps(body).encode()
        lower = {name.lower(): value for name, value in headers_for(body).items()}
        self.assertIsNone(validate("POST", HEARTBEAT_PATH, lower, raw))
        self.assertIsNone(validate("POST", HEARTBEAT_PATH, headers_for(body), raw))
        self.assertEqual(validate("PUT", HEARTBEAT_PATH, lower, raw), "method must be POST, not 'PUT'")


class BehaviourTests(unittest.TestCase):
    """Acceptance, idempotency, scripted replies and records; a fresh receiver per test."""

    def serve(self, **kwargs) -> Receiver:
        receiver = Receiver(**kwargs).start()
        self.addCleanup(receiver.stop)
        return receiver

    def test_valid_heartbeat_accepted(self):
        """a valid heartbeat gets 202 {"accepted": true} and is recorded with lowercased headers"""
        receiver = self.serve()
        body = heartbeat()
        status, response, payload = post(receiver, body)
        self.assertEqual((status, payload), (202, {"accepted": True}))
        self.assertEqual(response.getheader("Content-Type"), "application/json")
        [recorded] = receiver.wait_for(1)
        self.assertEqual((recorded.method, recorded.path, recorded.status, recorded.error), ("POST", HEARTBEAT_PATH, 202, None))
        self.assertEqual(recorded.headers["idempotency-key"], body["runId"])
        self.assertEqual(recorded.json(), body)
        self.assertEqual(recorded.reply, "")
        self.assertAlmostEqual(recorded.received_at, time.time(), delta=5)

    def test_duplicate_gets_409(self):
        """the same runId again gets 409 once accepted, on one keep-alive connection"""
        receiver = self.serve()
        body = heartbeat()
        conn = connect(receiver)
        self.addCleanup(conn.close)
        self.assertEqual(exchange(conn, body)[0], 202)
        status, _, payload = exchange(conn, body)
        self.assertEqual(status, 409)
        self.assertIn("duplicate", payload["error"])
        self.assertIsNone(receiver.requests[-1].error)

    def test_scripted_sequence(self):
        """replies '503,503,202' answer a retried heartbeat in order, then normal behaviour (409) resumes"""
        receiver = self.serve(replies="503,503,202")
        body = heartbeat()
        conn = connect(receiver)
        self.addCleanup(conn.close)
        statuses = [exchange(conn, body)[0] for _ in range(4)]
        self.assertEqual(statuses, [503, 503, 202, 409])
        self.assertEqual([r.reply for r in receiver.requests], ["503", "503", "202", ""])

    def test_scripted_replies_still_validated(self):
        """a scripted reply answers an invalid request too, which is recorded with its error"""
        receiver = self.serve(replies=[400, "200"])
        status, _, payload = post(receiver, heartbeat(status="ok"))
        self.assertEqual(status, 400)
        self.assertIn("scripted reply: 400", payload["error"])
        self.assertIn("status must be", receiver.requests[0].error)
        status, _, payload = post(receiver)
        self.assertEqual((status, payload), (200, {"accepted": True}))

    def test_retry_after(self):
        """reply '429:2' is a 429 carrying Retry-After: 2 and a JSON error"""
        receiver = self.serve(replies=parse_replies("429:2"))
        status, response, payload = post(receiver)
        self.assertEqual(status, 429)
        self.assertEqual(response.getheader("Retry-After"), "2")
        self.assertIn("429 Too Many Requests", payload["error"])

    def test_204_has_no_body(self):
        """reply '204' has no body and no Content-Length, and the connection stays usable"""
        receiver = self.serve(replies="204")
        conn = connect(receiver)
        self.addCleanup(conn.close)
        status, response, payload = exchange(conn)
        self.assertEqual((status, payload, response.getheader("Content-Length")), (204, None, None))
        self.assertEqual(exchange(conn)[0], 202)

    def test_hang(self):
        """reply 'hang' never answers: the client times out, and stop() still returns promptly"""
        receiver = self.serve(replies="hang")
        conn = connect(receiver, timeout=0.5)
        self.addCleanup(conn.close)
        with self.assertRaises(socket.timeout):  # TimeoutError from 3.10 on
            exchange(conn)
        self.assertEqual(receiver.wait_for(1)[0].status, 0)
        started = time.monotonic()
        receiver.stop()
        self.assertLess(time.monotonic() - started, 0.5)

    def test_reset(self):
        """reply 'reset' reads the request, then resets the connection"""
        receiver = self.serve(replies="reset")
        with self.assertRaises((ConnectionResetError, http.client.RemoteDisconnected)):
            post(receiver)
        self.assertEqual(receiver.requests[0].reply, "reset")

    def test_trickle(self):
        """reply 'trickle' sends the status line at once, then one byte a second"""
        receiver = self.serve(replies="trickle")
        body = heartbeat()
        data = json.dumps(body).encode()
        head = "".join(f"{k}: {v}\r\n" for k, v in headers_for(body).items())
        request = f"POST {HEARTBEAT_PATH} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(data)}\r\n\r\n".encode() + data
        url = urlsplit(receiver.url)
        with socket.create_connection((url.hostname, url.port), timeout=2) as sock:
            sock.sendall(request)
            started = time.monotonic()
            self.assertEqual(sock.recv(100), b"HTTP/1.1 202 Accepted\r\n")
            self.assertEqual(sock.recv(100), b"C")
            self.assertGreater(time.monotonic() - started, 0.8)
        self.assertEqual(receiver.requests[0].status, 202)

    def test_api_key(self):
        """with api_key set, a different bearer token gets 401 and the right one 202"""
        receiver = self.serve(api_key=API_KEY)
        body = heartbeat()
        status, _, payload = post(receiver, body, headers_for(body, Authorization="Bearer sk-other"))
        self.assertEqual(status, 401)
        self.assertNotIn("sk-other", payload["error"])
        self.assertEqual(post(receiver, body)[0], 202)

    def test_oversized_body(self):
        """a Content-Length over the 1 MiB cap gets 413 without the body being read"""
        receiver = self.serve()
        conn = connect(receiver)
        self.addCleanup(conn.close)
        conn.putrequest("POST", HEARTBEAT_PATH)
        conn.putheader("Content-Length", str(5 << 30))
        conn.endheaders()
        response = conn.getresponse()
        self.assertEqual(response.status, 413)
        self.assertIn("larger than", json.loads(response.read())["error"])

    def test_parse_replies(self):
        """parse_replies accepts statuses, STATUS:SECONDS and the misbehaviours, and names a bad token"""
        self.assertEqual([str(r) for r in parse_replies(" 503, 429:0,HANG,reset,trickle,204")],
                         ["503", "429:0", "hang", "reset", "trickle", "204"])
        self.assertEqual(parse_replies(""), [])
        for spec in ("abc", "99", "600", "429:x", "429:-1", "503,,202", "5O3", "²⁰²"):
            with self.subTest(spec=spec):
                with self.assertRaises(ValueError) as caught:
                    parse_replies(spec)
                self.assertIn("invalid reply", str(caught.exception))
        with self.assertRaises(ValueError):
            Receiver(replies="bogus")

    def test_jsonl_never_stores_key(self):
        """the jsonl file gets one object per request, with the bearer token masked"""
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "heartbeats.jsonl")
            receiver = self.serve(jsonl=path, replies="503")
            body = heartbeat()
            post(receiver, body)
            post(receiver, body)
            post(receiver, body, headers_for(body, Authorization=API_KEY), raw=b"not json")
            receiver.stop()
            with open(path, encoding="utf-8") as f:
                text = f.read()
        self.assertNotIn(API_KEY, text)
        first, second, third = [json.loads(line) for line in text.splitlines()]
        self.assertEqual((first["status"], first["reply"], second["status"], third["status"]), (503, "503", 202, 400))
        self.assertEqual(second["headers"]["authorization"], "Bearer ***")
        self.assertEqual(second["headers"]["idempotency-key"], body["runId"])
        self.assertEqual(second["body"], body)
        self.assertIsNone(second["error"])
        self.assertEqual(third["headers"]["authorization"], "***")
        self.assertEqual(third["body"], "not json")
        self.assertRegex(first["receivedAt"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_out_lines(self):
        """out gets one flushed human line per request, never the key"""
        out = io.StringIO()
        receiver = self.serve(out=out)
        post(receiver, heartbeat(message="first line\nsecond line"))
        post(receiver, path="/nope")
        receiver.stop()
        lines = out.getvalue().splitlines()
        self.assertEqual(len(lines), 2)
        self.assertRegex(lines[0], r"^\d\d:\d\d:\d\d  daily-report  failed   1\.234s  first line$")
        self.assertIn("POST /nope  [404: unknown path", lines[1])
        self.assertNotIn(API_KEY, out.getvalue())

    def test_wait_for_timeout(self):
        """wait_for raises an AssertionError (also a TimeoutError) when too few requests arrive"""
        receiver = self.serve()
        with self.assertRaises(AssertionError):
            receiver.wait_for(1, timeout=0.05)
        with self.assertRaises(TimeoutError):
            receiver.wait_for(1, timeout=0.01)

    def test_url_and_ipv6(self):
        """url is http://host:port, with brackets for an IPv6 ::1 receiver"""
        self.assertRegex(self.serve().url, r"^http://127\.0\.0\.1:\d+$")
        try:
            receiver = self.serve(host="::1")
        except OSError as exc:
            self.skipTest(f"no IPv6 loopback: {exc}")
        self.assertRegex(receiver.url, r"^http://\[::1\]:\d+$")
        self.assertEqual(post(receiver)[0], 202)


class FormatLineTests(unittest.TestCase):
    """format_line(): the human summary of one request."""

    def request(self, body, status=202, error=None, reply="", path=HEARTBEAT_PATH) -> Request:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return Request("POST", path, {}, raw, status, error, 1764027826.5, reply)

    def clock(self) -> str:
        return time.strftime("%H:%M:%S", time.localtime(1764027826.5))

    def test_accepted(self):
        """an accepted heartbeat: time, slug, status, seconds with ms, first message line"""
        line = format_line(self.request(heartbeat()))
        self.assertEqual(line, f"{self.clock()}  daily-report  failed   1.234s  exit-code: exited with status 1")

    def test_null_duration_and_long_message(self):
        """a null duration shows '-', and a long message is cut to about 100 characters"""
        body = heartbeat(status="success", message="m" * 500)
        body["durationMs"] = None
        line = format_line(self.request(body))
        self.assertTrue(line.startswith(f"{self.clock()}  daily-report  success  -  mmm"), line)
        self.assertLess(len(line), 140)
        self.assertTrue(line.endswith("..."))

    def test_outcomes(self):
        """the tail names a scripted reply, a violation, a duplicate or a refused key"""
        body = heartbeat(message=None)
        self.assertTrue(format_line(self.request(body, 503, reply="503")).endswith("1.234s  [replied 503]"))
        self.assertTrue(format_line(self.request(body, 503)).endswith("  [replied 503]"))
        self.assertIn("[replied 429, Retry-After: 2]", format_line(self.request(body, 429, reply="429:2")))
        self.assertIn("[hang: no reply; invalid: bad]", format_line(self.request(body, 0, "bad", reply="hang")))
        self.assertTrue(format_line(self.request(body, 400, "status must be x")).endswith("  [400: status must be x]"))
        self.assertIn("[409: duplicate", format_line(self.request(body, 409)))
        self.assertIn("[401:", format_line(self.request(body, 401)))
        unreadable = format_line(self.request(b"\xff", 400, "body is not valid UTF-8"))
        self.assertEqual(unreadable, f"{self.clock()}  POST {HEARTBEAT_PATH}  [400: body is not valid UTF-8]")

    def test_control_characters(self):
        """terminal control characters from the body are replaced, not printed"""
        line = format_line(self.request(heartbeat(slug="a\x1b[2Jb", message="\x1b]0;pwned\x07hi")))
        self.assertNotIn("\x1b", line)
        self.assertNotIn("\x07", line)


if __name__ == "__main__":
    unittest.main()
