"""A local SeeStack-compatible heartbeat ingest server: ``seestack-hook receive``.

It checks every request against the ingest contract (validator.py) and answers the
way the backend would, or follows a script of replies (replies.py) so a client's
retries, timeouts and error handling can be exercised:

    with Receiver(replies=parse_replies("503,429:2,202")) as receiver:
        ...point an agent's endpoint at receiver.url...
        first = receiver.wait_for(1)[0]

Operators reach it through ``seestack-hook receive``; the unit tests use it as
their loopback backend and the end-to-end suite runs it on the host.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from seestack_systemd.contract import INGEST_PATH
from seestack_systemd.settings.endpoint import parse_endpoint
from seestack_systemd.errors import ConfigError, SeestackError, UsageError
from seestack_systemd.receiver.ingest_server import IngestServer
from seestack_systemd.receiver.printer import Request, format_line, jsonl_entry
from seestack_systemd.receiver.replies import Reply, as_reply, parse_replies, reply_payload
from seestack_systemd.receiver.validator import bearer_token, validate

# How often the accept loop looks for a stop request: bounds how long stop() takes.
_POLL_INTERVAL = 0.05
# Bounds how long stop() waits for handler threads after releasing them.
_JOIN_TIMEOUT = 2.0


def parse_listen(text: str) -> tuple[str, int]:
    """``receive --listen HOST:PORT`` as (host, port); a bare ``:PORT`` is loopback."""
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise UsageError(f"--listen {text!r}: use HOST:PORT, e.g. 127.0.0.1:8099")
    return host.strip("[]") or "127.0.0.1", int(port)


def endpoint_hint(endpoint: str) -> tuple[str, bool]:
    """The config line that points the agent at ``endpoint``, and whether it needs
    allow_insecure_http (plain http:// off loopback, which the agent otherwise refuses)."""
    try:
        parse_endpoint(endpoint)
    except ConfigError:
        return f"endpoint = {endpoint} with allow_insecure_http = yes (plain http:// off loopback)", True
    return f"endpoint = {endpoint}", False


def listen(address: str, replies: str, jsonl: str | None, out: Any) -> Receiver:
    """The ``receive`` server on ``address`` (HOST:PORT), with its ``--reply`` script and
    ``--jsonl`` file; each problem is one line that says what to change."""
    host, port = parse_listen(address)
    try:
        script = parse_replies(replies) if replies else []
    except ValueError as e:
        raise UsageError(f"--reply: {e}") from None
    try:
        return Receiver(host, port, replies=script, jsonl=jsonl, out=out)
    except OSError as e:
        if jsonl and e.filename == jsonl:  # open() names its file; bind() names none
            raise SeestackError(f"cannot open the --jsonl file {jsonl}: {e.strerror or e}; give a file in a"
                                " directory that exists and that you can write") from None
        raise SeestackError(f"cannot listen on {address}: {e.strerror or e}") from None


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
        replies: str | Iterable[Reply | int | str] = (),
        jsonl: str | None = None,
        out: Any = None,
        api_key: str | None = None,
    ) -> None:
        """Bind ``host:port`` (port 0: any free port).

        ``replies`` is a script consumed one token per heartbeat-path request
        (a spec string, or Reply/int/str tokens); ``out`` is a text stream for one
        human line per request; ``jsonl`` a file to append one JSON object per
        request to; ``api_key`` makes a different bearer token get 401.
        """
        if isinstance(replies, str):
            replies = parse_replies(replies)
        self._replies = deque(as_reply(item) for item in replies)
        self._out = out
        self._api_key = api_key
        self.requests: list[Request] = []
        self._lock = threading.Condition()
        self._accepted: set = set()
        self.stopping = threading.Event()
        self._loop_thread: threading.Thread | None = None
        self._stopped = False
        self._server = IngestServer((host, port), self)
        try:
            self._jsonl = open(jsonl, "a", encoding="utf-8") if jsonl is not None else None
        except OSError:
            self._server.server_close()
            raise

    @property
    def url(self) -> str:
        """The base URL to configure as the agent's endpoint, e.g. ``http://127.0.0.1:41234``."""
        host, port = self._server.host_port()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    @property
    def endpoint(self) -> str:
        """The endpoint an agent on this host configures: a wildcard address (0.0.0.0, ::)
        listens on loopback too, and plain http:// is allowed there."""
        host, port = self._server.host_port()
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
        return f"http://{host}:{port}"

    def expect_key(self, api_key: str | None) -> None:
        """From now on answer 401 to a bearer token other than ``api_key`` (None: accept any)."""
        self._api_key = api_key

    def start(self) -> Receiver:
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
        self.stopping.set()
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

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Request]:
        """Block until at least ``n`` requests were recorded and return them all.

        Raises an error that is both AssertionError and TimeoutError after ``timeout`` seconds.
        """
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.requests) >= n, timeout):
                seen = [format_line(req) for req in self.requests]
                raise _WaitTimeout(f"expected {n} request(s) within {timeout}s, got {len(seen)}: {seen}")
            return list(self.requests)

    def answer(self, method: str, path: str, headers: dict, body: bytes,
               received_at: float) -> tuple[Request, Reply | None, dict | str | None]:
        """Decide the answer to one request and record it; the handler then sends it."""
        error = validate(method, path, headers, body)
        payload: dict | str | None
        with self._lock:
            reply = self._replies.popleft() if path == INGEST_PATH and self._replies else None
            if reply is not None:
                status, payload = reply.status, reply_payload(reply.status)
                if 200 <= status < 300 and headers.get("idempotency-key"):
                    self._accepted.add(headers["idempotency-key"])
            elif path != INGEST_PATH:
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
        token = bearer_token(headers.get("authorization", ""))
        expected = self._api_key
        return token is not None and expected is not None and hmac.compare_digest(token.encode(), expected.encode())

    def record(self, request: Request) -> None:
        """Record a request that was refused before it could be answered (e.g. no Content-Length)."""
        with self._lock:
            self._record(request)

    def _record(self, request: Request) -> None:
        """Append, notify waiters and write the outputs; called with the lock held."""
        self.requests.append(request)
        self._lock.notify_all()
        if self._jsonl is not None:
            self._jsonl.write(json.dumps(jsonl_entry(request)) + "\n")
            self._jsonl.flush()
        if self._out is not None:
            line = format_line(request)
            try:
                self._out.write(line + "\n")
            except UnicodeEncodeError:
                self._out.write(line.encode("ascii", "backslashreplace").decode("ascii") + "\n")
            self._out.flush()
