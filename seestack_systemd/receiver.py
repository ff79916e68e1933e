"""A local SeeStack-compatible heartbeat ingest server.

It checks every request against the ingest contract (docs: seestack-ingest-api)
and answers the way the backend would, or follows a script of replies so a
client's retries, timeouts and error handling can be exercised:

    with Receiver(replies=parse_replies("503,429:2,202")) as receiver:
        ...point an agent's endpoint at receiver.url...
        first = receiver.wait_for(1)[0]

Operators reach it through ``seestack-hook receive``; the unit tests use it as
their loopback backend and the end-to-end suite runs it on the host.
"""

from __future__ import annotations

import hmac
import json
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, Iterable, List, Mapping, Optional, Tuple, Union

from .slug import check_slug

HEARTBEAT_PATH = "/v1/cron/heartbeats"
SDK_NAME = "seestack-systemd"
MAX_MESSAGE_BYTES = 4096
# Far above any real heartbeat (the message is capped at 4 KiB); a bigger body gets 413 unread.
MAX_BODY_BYTES = 1 << 20
TRICKLE_INTERVAL = 1.0
# How often the accept loop looks for a stop request: bounds how long stop() takes.
_POLL_INTERVAL = 0.05
# Bounds how long stop() waits for handler threads after releasing them.
_JOIN_TIMEOUT = 2.0
# Idle keep-alive connections and stalled uploads free their thread after this.
_SOCKET_TIMEOUT = 30.0
_LINE_TEXT_MAX = 100

_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", re.ASCII)
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII | re.IGNORECASE)
# RFC 7235: the scheme is case-insensitive; the token is one run of visible ASCII.
_BEARER_RE = re.compile(r"bearer ([!-~]+)", re.ASCII | re.IGNORECASE)
_TIME_EXAMPLE = "2026-11-24T23:43:46.123Z"
_MISBEHAVIOURS = ("hang", "reset", "trickle")
_TOKEN_HELP = (
    "use an HTTP status 200-599 (e.g. 503), STATUS:SECONDS to add Retry-After (e.g. 429:2),"
    " 'hang', 'reset' or 'trickle'"
)


@dataclass
class Request:
    """One request the receiver recorded, with what it answered."""

    method: str
    path: str
    headers: dict  # names lowercased
    body: bytes
    status: int  # the status sent, or 0 when nothing was sent (hang, reset, broken upload)
    error: Optional[str]  # the first contract violation, or None
    received_at: float  # time.time()
    reply: str = ""  # the scripted reply token that answered it; "" for normal behaviour

    def json(self) -> Any:
        """Return the body parsed as JSON (raises ValueError when it is not)."""
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status (optionally with Retry-After) or a misbehaviour."""

    kind: str  # "status", "hang", "reset" or "trickle"
    status: int = 0  # what gets sent: 0 for hang and reset
    retry_after: Optional[int] = None

    def __str__(self) -> str:
        if self.kind != "status":
            return self.kind
        if self.retry_after is None:
            return str(self.status)
        return f"{self.status}:{self.retry_after}"


def parse_replies(spec: str) -> List[Reply]:
    """Parse a comma-separated reply script such as ``"503,429:2,hang,202"``.

    Raises ValueError naming the first bad token. An empty spec is an empty script.
    """
    if not spec.strip():
        return []
    return [_parse_token(token.strip()) for token in spec.split(",")]


def _parse_token(token: str) -> Reply:
    word = token.lower()
    if word in _MISBEHAVIOURS:
        return Reply(word, 202 if word == "trickle" else 0)
    status_text, colon, seconds_text = token.partition(":")
    status = _small_int(status_text)
    if status is None or not 200 <= status <= 599:
        raise ValueError(f"invalid reply {token!r}: {_TOKEN_HELP}")
    if not colon:
        return Reply("status", status)
    seconds = _small_int(seconds_text)
    if seconds is None:
        raise ValueError(f"invalid reply {token!r}: Retry-After must be whole seconds >= 0, e.g. 429:2")
    return Reply("status", status, seconds)


def _small_int(text: str) -> Optional[int]:
    # isdigit() alone accepts digits such as '²' that int() rejects; the length cap keeps
    # a 60,000-digit header from reaching int(), which refuses (3.11+) or labours over it.
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None


def _as_reply(item: Union[Reply, int, str]) -> Reply:
    if isinstance(item, Reply):
        return item
    return _parse_token(str(item).strip())


def validate(method: str, path: str, headers: Mapping[str, str], body: bytes) -> Optional[str]:
    """Return the first way a request breaks the ingest contract, as a short sentence, or None.

    ``headers`` may use any case for names. Messages never contain the bearer token.
    """
    if path != HEARTBEAT_PATH:
        return f"unknown path {_show(path)}: heartbeats go to POST {HEARTBEAT_PATH}"
    if method != "POST":
        return f"method must be POST, not {_show(method)}"
    lowered = {name.lower(): value for name, value in headers.items()}
    error = _check_headers(lowered)
    if error:
        return error
    try:
        doc = _parse_json(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"body is not valid UTF-8 ({exc.reason} at byte {exc.start})"
    except ValueError as exc:
        return f"body is not valid JSON: {exc}"
    if not isinstance(doc, dict):
        return f"body must be a JSON object, not {_json_type(doc)}"
    return _check_fields(doc, lowered["idempotency-key"])


def _check_headers(headers: Mapping[str, str]) -> Optional[str]:
    auth = headers.get("authorization")
    if auth is None:
        return "missing Authorization header: send 'Authorization: Bearer <api key>'"
    if _bearer_token(auth) is None:
        # Never echo the value: it may well be the key in a wrong shape.
        return "Authorization header must be 'Bearer <api key>' with a non-empty key"
    content_type = headers.get("content-type")
    if content_type is None:
        return "missing Content-Type header: send 'Content-Type: application/json'"
    mime, *params = [part.strip().lower() for part in content_type.split(";")]
    if mime != "application/json" or any(p.replace(" ", "").replace('"', "") != "charset=utf-8" for p in params):
        return f"Content-Type must be application/json, not {_show(content_type)}"
    agent = headers.get("user-agent", "")
    if not agent.startswith(SDK_NAME + "/") or len(agent) == len(SDK_NAME) + 1:
        return f"User-Agent must start with '{SDK_NAME}/<version>', not {_show(agent)}"
    if not headers.get("idempotency-key", "").strip():
        return "missing Idempotency-Key header: send the heartbeat's runId"
    return None


def _check_fields(doc: dict, idempotency_key: str) -> Optional[str]:
    for name in ("slug", "status", "durationMs", "runId", "finishedAt", "sdk"):
        if name not in doc:
            return f"missing required field {name!r}"
    slug = doc["slug"]
    if not isinstance(slug, str):
        return f"slug must be a string, not {_json_type(slug)}"
    try:
        check_slug(slug)
    except ValueError as exc:
        return str(exc)
    if doc["status"] not in ("success", "failed"):
        return f"status must be 'success' or 'failed', not {_show(doc['status'])}"
    duration = doc["durationMs"]
    # type() rather than isinstance(): JSON true/false arrive as bool, a subclass of int.
    if duration is not None and (type(duration) is not int or duration < 0):
        return f"durationMs must be an integer >= 0 or null, not {_show(duration)}"
    run_id = doc["runId"]
    if not isinstance(run_id, str) or not _UUID_RE.fullmatch(run_id):
        return f"runId must be a UUID string, not {_show(run_id)}"
    if run_id != idempotency_key:
        return f"runId {run_id!r} differs from the Idempotency-Key header {_show(idempotency_key)}"
    error = _check_time("finishedAt", doc["finishedAt"])
    if error:
        return error
    sdk = doc["sdk"]
    if not isinstance(sdk, dict):
        return f"sdk must be an object, not {_json_type(sdk)}"
    if sdk.get("name") != SDK_NAME:
        return f"sdk.name must be {SDK_NAME!r}, not {_show(sdk.get('name'))}"
    if not isinstance(sdk.get("version"), str) or not sdk["version"]:
        return f"sdk.version must be a non-empty string, not {_show(sdk.get('version'))}"
    return _check_optional_fields(doc)


def _check_optional_fields(doc: dict) -> Optional[str]:
    if "message" in doc:
        message = doc["message"]
        if not isinstance(message, str):
            return f"message must be a string, not {_json_type(message)}"
        try:
            size = len(message.encode("utf-8"))
        except UnicodeEncodeError:
            # JSON \ud800-style escapes decode to lone surrogates, which UTF-8 cannot carry.
            return "message contains an unpaired surrogate escape, so it is not valid UTF-8"
        if size > MAX_MESSAGE_BYTES:
            return f"message is {size} bytes of UTF-8, more than the {MAX_MESSAGE_BYTES} allowed"
    if "startedAt" in doc:
        error = _check_time("startedAt", doc["startedAt"])
        if error:
            return error
    if "host" in doc and not isinstance(doc["host"], str):
        return f"host must be a string, not {_json_type(doc['host'])}"
    if "source" in doc and not isinstance(doc["source"], dict):
        return f"source must be an object, not {_json_type(doc['source'])}"
    return None


def _check_time(name: str, value: Any) -> Optional[str]:
    problem = f"{name} must be RFC 3339 UTC with milliseconds like {_TIME_EXAMPLE}, not {_show(value)}"
    if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
        return problem
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return f"{name} {value!r} is not a real date and time"
    return None


def _bearer_token(value: str) -> Optional[str]:
    match = _BEARER_RE.fullmatch(value)
    return match.group(1) if match else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(text: str) -> Any:
    # Python's json accepts NaN and Infinity by default; the backend would not.
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rfc3339(timestamp: float) -> str:
    millis = int(timestamp % 1 * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{millis:03d}Z"


def format_line(req: Request) -> str:
    """Return the one-line human summary of a recorded request, as printed to ``out``.

    e.g. ``23:43:46  daily-report  failed   1.234s  exit-code: exited with status 1``
    followed by ``  [replied 503]`` or ``  [400: <violation>]`` when it was not accepted.
    """
    parts = [time.strftime("%H:%M:%S", time.localtime(req.received_at))]
    try:
        doc = _parse_json(req.body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        doc = None
    if req.path == HEARTBEAT_PATH and isinstance(doc, dict):
        parts.append(_clean(str(doc.get("slug", "?"))))
        parts.append(f"{_clean(str(doc.get('status', '?'))):<7}")
        parts.append(_duration(doc.get("durationMs")))
        message = doc.get("message")
        if isinstance(message, str) and message.strip():
            parts.append(_clean(message.strip().splitlines()[0]))
    else:
        parts.append(_clean(f"{req.method} {req.path}"))
    tail = _outcome(req)
    if tail:
        parts.append(tail)
    return "  ".join(parts)


def _duration(value: Any) -> str:
    if value is None:
        return "-"
    if type(value) is int and value >= 0:
        # Integer arithmetic: a huge bogus value must not overflow a float.
        seconds, millis = divmod(value, 1000)
        return f"{seconds}.{millis:03d}s"
    return "?"


def _outcome(req: Request) -> str:
    if req.reply:
        reply = _parse_token(req.reply)
        if reply.kind == "status":
            said = f"replied {reply.status}"
            if reply.retry_after is not None:
                said += f", Retry-After: {reply.retry_after}"
        elif reply.kind == "trickle":
            said = "replied 202 one byte a second"
        else:
            said = f"{reply.kind}: no reply"
        return f"[{said}; invalid: {req.error}]" if req.error else f"[{said}]"
    if req.status == 401:
        return "[401: bearer token differs from the receiver's API key]"
    status = str(req.status) if req.status else "no reply"
    if req.error:
        return f"[{status}: {req.error}]"
    if req.status == 409:
        return "[409: duplicate, already accepted]"
    if req.status != 202:
        return f"[replied {status}]"
    return ""


def _clean(text: str) -> str:
    # Bodies come from the network: control characters (terminal escapes) must not reach a terminal.
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= _LINE_TEXT_MAX else text[: _LINE_TEXT_MAX - 3] + "..."


def _jsonl_entry(req: Request) -> dict:
    headers = {name: req.headers[name] for name in ("idempotency-key", "user-agent", "content-type") if name in req.headers}
    if "authorization" in req.headers:
        shaped = _bearer_token(req.headers["authorization"]) is not None
        headers["authorization"] = "Bearer ***" if shaped else "***"
    try:
        body = _parse_json(req.body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        body = req.body.decode("utf-8", errors="replace")
    return {
        "receivedAt": _rfc3339(req.received_at),
        "method": req.method,
        "path": req.path,
        "status": req.status,
        "reply": req.reply or None,
        "error": req.error,
        "headers": headers,
        "body": body,
    }


def _reply_payload(status: int) -> Optional[dict]:
    if status in (204, 304):
        return None
    if 200 <= status < 300:
        return {"accepted": True}
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "status"
    return {"error": f"scripted reply: {status} {phrase}"}


class _WaitTimeout(AssertionError, TimeoutError):
    """wait_for() gave up: an assertion failure in tests, a TimeoutError to everyone else."""


class Receiver:
    """A SeeStack-compatible ingest server on a loopback (or given) address.

    The socket is bound on construction so that ``url`` is known before
    ``start()``; use it as a context manager, or call ``stop()``, to release it.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        replies: Union[str, Iterable[Union[Reply, int, str]]] = (),
        jsonl: Optional[str] = None,
        out: Optional[Any] = None,
        api_key: Optional[str] = None,
    ) -> None:
        """Bind ``host:port`` (port 0: any free port).

        ``replies`` is a script consumed one token per heartbeat-path request
        (a spec string, or Reply/int/str tokens); ``out`` is a text stream for one
        human line per request; ``jsonl`` a file to append one JSON object per
        request to; ``api_key`` makes a different bearer token get 401.
        """
        if isinstance(replies, str):
            replies = parse_replies(replies)
        self._replies = deque(_as_reply(item) for item in replies)
        self._out = out
        self._api_key = api_key
        self.requests: List[Request] = []
        self._lock = threading.Condition()
        self._accepted: set = set()
        self._stopping = threading.Event()
        self._loop_thread: Optional[threading.Thread] = None
        self._stopped = False
        self._server = _Server((host, port), self)
        try:
            self._jsonl = open(jsonl, "a", encoding="utf-8") if jsonl is not None else None
        except OSError:
            self._server.server_close()
            raise

    @property
    def url(self) -> str:
        """The base URL to configure as the agent's endpoint, e.g. ``http://127.0.0.1:41234``."""
        host, port = self._server.server_address[:2]
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def endpoint(self) -> str:
        """The endpoint an agent on this host configures: a wildcard address (0.0.0.0, ::)
        listens on loopback too, and plain http:// is allowed there."""
        host, port = self._server.server_address[:2]
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
        return f"http://{host}:{port}"

    def expect_key(self, api_key: Optional[str]) -> None:
        """From now on answer 401 to a bearer token other than ``api_key`` (None: accept any)."""
        self._api_key = api_key

    def start(self) -> "Receiver":
        """Serve in a background daemon thread; return self."""
        self._loop_thread = threading.Thread(
            target=self._server.serve_forever, args=(_POLL_INTERVAL,), name="seestack-receiver", daemon=True
        )
        self._loop_thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until stop() is called from another thread or Ctrl-C.

        Returns normally on KeyboardInterrupt (a SIGTERM handler may raise it too);
        any other exception propagates. Either way the receiver is stopped.
        """
        self._loop_thread = threading.current_thread()
        try:
            self._server.serve_forever(_POLL_INTERVAL)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def stop(self) -> None:
        """Stop serving, release hanging and trickling handlers, close the sockets and the jsonl file."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stopping.set()
        if self._loop_thread is not None:
            # shutdown() only returns once a serve_forever loop has ended, so call it only if one ran;
            # when serve_forever itself is stopping, its loop is already over and this returns at once.
            self._server.shutdown()
            if self._loop_thread is not threading.current_thread():
                self._loop_thread.join(_JOIN_TIMEOUT)
        self._server.server_close()
        self._server.close_connections(_JOIN_TIMEOUT)
        with self._lock:
            if self._jsonl is not None:
                self._jsonl.close()
                self._jsonl = None

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def wait_for(self, n: int, timeout: float = 5.0) -> List[Request]:
        """Block until at least ``n`` requests were recorded and return them all.

        Raises an error that is both AssertionError and TimeoutError after ``timeout`` seconds.
        """
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.requests) >= n, timeout):
                seen = [format_line(req) for req in self.requests]
                raise _WaitTimeout(f"expected {n} request(s) within {timeout}s, got {len(seen)}: {seen}")
            return list(self.requests)

    def _answer(self, method: str, path: str, headers: dict, body: bytes, received_at: float) -> Tuple[Request, Optional[Reply], Optional[dict]]:
        """Decide the answer to one request and record it; the handler then sends it."""
        error = validate(method, path, headers, body)
        with self._lock:
            reply = self._replies.popleft() if path == HEARTBEAT_PATH and self._replies else None
            if reply is not None:
                status, payload = reply.status, _reply_payload(reply.status)
                if 200 <= status < 300 and headers.get("idempotency-key"):
                    self._accepted.add(headers["idempotency-key"])
            elif path != HEARTBEAT_PATH:
                # Not the API's JSON error: like any server's page for a path it does not
                # serve, so an agent keeps the heartbeat and says to check its endpoint.
                status, payload = 404, f"404 not found: {error}\n"
            elif self._api_key is not None and not self._key_matches(headers):
                status, payload = 401, {"error": "invalid API key: the bearer token does not match"}
            elif error:
                status, payload = 400, {"error": error}
            elif headers["idempotency-key"] in self._accepted:
                key = headers["idempotency-key"]
                status, payload = 409, {"error": f"duplicate heartbeat: Idempotency-Key {key} was already accepted"}
            else:
                self._accepted.add(headers["idempotency-key"])
                status, payload = 202, {"accepted": True}
            request = Request(method, path, headers, body, status, error, received_at, str(reply or ""))
            self._record(request)
        return request, reply, payload

    def _key_matches(self, headers: Mapping[str, str]) -> bool:
        token = _bearer_token(headers.get("authorization", ""))
        return token is not None and hmac.compare_digest(token.encode(), self._api_key.encode())

    def _record(self, request: Request) -> None:
        """Append, notify waiters and write the outputs; called with the lock held."""
        self.requests.append(request)
        self._lock.notify_all()
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(_jsonl_entry(request)) + "\n")
            self._jsonl.flush()
        if self._out is not None:
            line = format_line(request)
            try:
                self._out.write(line + "\n")
            except UnicodeEncodeError:
                self._out.write(line.encode("ascii", "backslashreplace").decode("ascii") + "\n")
            self._out.flush()


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its live connections, so stop() can release them."""

    daemon_threads = True

    def __init__(self, address: Tuple[str, int], receiver: Receiver) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.receiver = receiver
        self._live: dict = {}
        self._live_lock = threading.Lock()
        self._closing = False
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(), a reverse DNS lookup that can take
        # seconds in a container without DNS; nothing here needs the name.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        with self._live_lock:
            if self._closing:
                self.shutdown_request(request)
                return
            self._live[request] = threading.current_thread()
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._live_lock:
                del self._live[request]

    def close_connections(self, timeout: float) -> None:
        """Shut every live connection down (unblocking its handler) and wait for the handlers."""
        with self._live_lock:
            self._closing = True
            live = list(self._live.items())
        for connection, _ in live:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler
        deadline = time.monotonic() + timeout
        for _, thread in live:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that goes away mid-exchange is routine here (timeouts, resets); anything else is a bug.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _SOCKET_TIMEOUT
    # Headers and body go out in two writes; Nagle would hold the body back for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr log; ``out`` and ``jsonl`` record requests instead."""

    def _handle(self) -> None:
        receiver = self.server.receiver
        received_at = time.time()
        # parse_request() folds a leading '//' into '/'; the raw target keeps a client's
        # doubled slash (an endpoint with a trailing slash joined badly) visible as a 404.
        path = self.requestline.split()[1]
        headers = {name.lower(): value for name, value in self.headers.items()}
        length, refusal = self._content_length(headers)
        if refusal:
            status, error = refusal
            # The body's end is unknown or it stays unread: the connection cannot carry another request.
            self.close_connection = True
            request = Request(self.command, path, headers, b"", status, error, received_at)
            with receiver._lock:
                receiver._record(request)
            self._send(status, {"error": error})
            return
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True  # the client gave up mid-upload; nobody to answer
            return
        request, reply, payload = receiver._answer(self.command, path, headers, body, received_at)
        kind = reply.kind if reply else "status"
        if kind == "hang":
            self.close_connection = True
            receiver._stopping.wait()
        elif kind == "reset":
            self.close_connection = True
            self._reset()
        elif kind == "trickle":
            self.close_connection = True
            self._trickle(payload)
        else:
            extra = [("Retry-After", str(reply.retry_after))] if reply and reply.retry_after is not None else []
            self._send(request.status, payload, extra)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def _content_length(self, headers: Mapping[str, str]) -> Tuple[int, Optional[Tuple[int, str]]]:
        """The body's length, or a (status, error) refusal when it cannot or should not be read."""
        if "transfer-encoding" in headers:
            return 0, (411, "Transfer-Encoding is not supported: send the body with a Content-Length")
        size = _small_int(headers.get("content-length", "0").strip())
        if size is None:
            return 0, (400, f"invalid Content-Length header {_show(headers['content-length'])}")
        if size > MAX_BODY_BYTES:
            return 0, (413, f"body of {size} bytes is larger than the {MAX_BODY_BYTES} allowed")
        return size, None

    def _send(self, status: int, payload: Union[dict, str, None], extra: Iterable[Tuple[str, str]] = ()) -> None:
        """Send ``payload``: a dict as JSON, text as text/plain, None as no body."""
        if isinstance(payload, str):
            body, media_type = payload.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            body, media_type = (b"", "") if payload is None else (json.dumps(payload).encode("utf-8"), "application/json")
        self.send_response(status)
        for name, value in extra:
            self.send_header(name, value)
        if media_type:
            self.send_header("Content-Type", media_type)
        if status != 204:  # RFC 9110 forbids Content-Length on 204
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _reset(self) -> None:
        # Linger on with timeout 0 makes close() send RST instead of FIN. The socket's fd
        # closes only when the last file object on it does, so close rfile as well.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.connection.close()

    def _trickle(self, payload: Optional[dict]) -> None:
        body = json.dumps(payload).encode("utf-8")
        rest = b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        try:
            self.wfile.write(b"HTTP/1.1 202 Accepted\r\n")
            for i in range(len(rest)):
                if self.server.receiver._stopping.wait(TRICKLE_INTERVAL):
                    return
                self.wfile.write(rest[i : i + 1])
        except OSError:
            pass  # the client gave up, which is what trickle is for
