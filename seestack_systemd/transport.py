"""Delivery of one heartbeat body to the ingest endpoint, as the contract says.

A small HTTP/1.1 client on a raw socket rather than http.client or urllib:
they import the whole ``email`` package, which would triple the hook's start-up
cost, and their reads cannot be bounded by one overall deadline (a server that
trickles a byte a second never trips a per-read timeout). Here every connect,
send and read is given the time left before the deadline, no more.
"""

from __future__ import annotations

import os
import socket
import sys
import time

from . import __version__
from .config import Endpoint, parse_endpoint
from .record import Record

INGEST_PATH = "/v1/cron/heartbeats"
BACKOFF_FIRST_S = 0.5  # first retry waits up to this long...
BACKOFF_CAP_S = 4.0  # ...doubling each time up to this
MIN_ATTEMPT_S = 0.05  # no attempt starts with less time left than this
MAX_RESPONSE_BYTES = 64 * 1024  # we only need the status and a short error
SYSTEM_CA_DIR = "/etc/ssl/certs"  # Debian's hashed trust store (ca-certificates)
ACCEPTED = (200, 201, 202, 204)
TEMPORARY = (408, 429, 500, 502, 503, 504)

USER_AGENT = "seestack-systemd/{} (python/{}.{}; {} {})".format(
    __version__, sys.version_info[0], sys.version_info[1], os.uname().sysname, os.uname().release
)


class HTTPError(OSError):
    """The server's answer could not be read as HTTP (a temporary failure)."""


class CertificateError(Exception):
    """The server's TLS certificate did not verify (a permanent failure)."""


class Delivery(Record):
    """How a delivery ended: ``delivered``, ``duplicate`` (already accepted),
    ``permanent`` (do not retry) or ``temporary`` (worth sending again later)."""

    outcome: str
    detail: str
    status: int | None = None
    attempts: int = 0

    @property
    def delivered(self) -> bool:
        return self.outcome in ("delivered", "duplicate")


class Target(Record):
    """Where and how to send: the checked endpoint plus TLS, proxy and key settings."""

    endpoint: Endpoint
    api_key: str
    key_source: str
    timeout: float
    ca_file: str | None = None
    https_proxy: str | None = None
    no_proxy: str | None = None

    def __repr__(self) -> str:
        return f"Target({self.endpoint}, key from {self.key_source})"  # never the key itself


class Connection:
    """One keep-alive connection to the endpoint, reopened when the server closes it."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.sock: socket.socket | None = None
        self._buffer = b""

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None
                self._buffer = b""

    def post(self, body: bytes, run_id: str, deadline_at: float) -> tuple[int, dict[str, str], bytes]:
        """POST one heartbeat; return (status, lowercased headers, response body)."""
        ep = self.target.endpoint
        host_header = f"[{ep.host}]" if ":" in ep.host else ep.host
        if ep.port != (443 if ep.scheme == "https" else 80):
            host_header += f":{ep.port}"
        head = (
            f"POST {ep.path}{INGEST_PATH} HTTP/1.1\r\n"
            f"Host: {host_header}\r\n"
            f"Authorization: Bearer {self.target.api_key}\r\n"
            "Content-Type: application/json\r\n"
            f"User-Agent: {USER_AGENT}\r\n"
            f"Idempotency-Key: {run_id}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n"
        ).encode("latin-1")
        reused = self.sock is not None
        if not reused:
            self.sock = self._connect(deadline_at)
        try:
            self._timed(deadline_at)
            self.sock.sendall(head + body)
            status, headers, data = self._read_response(deadline_at)
        except (OSError, TimeoutError) as e:
            self.close()
            # A kept-alive connection the server closed meanwhile is not a failure of the server.
            if reused and isinstance(e, (ConnectionError, HTTPError)):
                return self.post(body, run_id, deadline_at)
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, data

    def _timed(self, deadline_at: float) -> None:
        left = deadline_at - time.monotonic()
        if left <= 0:
            raise TimeoutError("no time left before the deadline")
        self.sock.settimeout(min(self.target.timeout, left))

    def _connect(self, deadline_at: float) -> socket.socket:
        target = self.target
        ep = target.endpoint
        host, port = ep.host, ep.port
        proxy = _proxy_for(target) if ep.scheme == "https" else None
        if proxy:
            host, port = proxy.host, proxy.port
        address = _resolve(host, port, deadline_at)
        left = deadline_at - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no time left to connect to {host}")
        sock = socket.socket(address[0], socket.SOCK_STREAM)
        try:
            sock.settimeout(min(target.timeout, left))
            sock.connect(address[4])
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if proxy:
                self.sock = sock
                self._tunnel(deadline_at)
            if ep.scheme == "https":
                sock = _wrap_tls(sock, ep.host, target.ca_file)
        except BaseException:
            sock.close()
            self.sock = None
            raise
        return sock

    def _tunnel(self, deadline_at: float) -> None:
        ep = self.target.endpoint
        authority = f"[{ep.host}]:{ep.port}" if ":" in ep.host else f"{ep.host}:{ep.port}"
        self.sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode("latin-1"))
        status, _ = self._read_head(deadline_at)
        if status != 200:
            raise HTTPError(f"the proxy refused to connect to {authority} (HTTP {status})")
        self._buffer = b""

    def _recv(self, deadline_at: float) -> bytes:
        self._timed(deadline_at)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise HTTPError("the server closed the connection")
        return chunk

    def _read_head(self, deadline_at: float) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > MAX_RESPONSE_BYTES:
                raise HTTPError("response headers too large")
            self._buffer += self._recv(deadline_at)
        head, _, self._buffer = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise HTTPError(f"not an HTTP response: {lines[0][:60]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if parts[0] == "HTTP/1.0":
            headers.setdefault("connection", "close")
        return int(parts[1]), headers

    def _read_response(self, deadline_at: float) -> tuple[int, dict[str, str], bytes]:
        status, headers = self._read_head(deadline_at)
        if status == 204 or status == 304 or 100 <= status < 200:
            return status, headers, b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return status, headers, self._read_chunked(deadline_at)
        if "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise HTTPError("bad Content-Length in response") from None
            while len(self._buffer) < min(length, MAX_RESPONSE_BYTES):
                self._buffer += self._recv(deadline_at)
            if length > MAX_RESPONSE_BYTES:
                headers["connection"] = "close"
            data, self._buffer = self._buffer[:length], self._buffer[length:]
            return status, headers, data
        headers["connection"] = "close"  # body runs to the end of the connection
        try:
            while len(self._buffer) < MAX_RESPONSE_BYTES:
                self._buffer += self._recv(deadline_at)
        except HTTPError:
            pass
        return status, headers, self._buffer

    def _read_chunked(self, deadline_at: float) -> bytes:
        data = b""
        while True:
            while b"\r\n" not in self._buffer:
                self._buffer += self._recv(deadline_at)
            size_line, _, self._buffer = self._buffer.partition(b"\r\n")
            try:
                size = int(size_line.split(b";")[0], 16)
            except ValueError:
                raise HTTPError("bad chunk in response") from None
            while len(self._buffer) < size + 2:
                self._buffer += self._recv(deadline_at)
            data += self._buffer[:size]
            self._buffer = self._buffer[size + 2 :]
            if size == 0 or len(data) > MAX_RESPONSE_BYTES:
                return data


def _proxy_for(target: Target) -> Endpoint | None:
    if not target.https_proxy:
        return None
    host = target.endpoint.host
    for entry in (target.no_proxy or "").replace(" ", "").split(","):
        entry = entry.lstrip(".").lower()
        if entry == "*" or (entry and (host == entry or host.endswith("." + entry))):
            return None
    return parse_endpoint(target.https_proxy, allow_insecure_http=True, setting="https_proxy")


def _resolve(host: str, port: int, deadline_at: float) -> tuple:
    """getaddrinfo, bounded by the deadline: a resolver that hangs must not hold a unit."""
    # An ASCII name as bytes: a str would load the idna codec (and with it re) first.
    name = host.encode("ascii") if host.isascii() else host
    try:
        return socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)[0]
    except socket.gaierror:
        pass  # a name, not an address literal
    import threading

    result: list = []

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0])
        except OSError as e:
            result.append(e)

    worker = threading.Thread(target=lookup, name="seestack-dns", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline_at - time.monotonic()))
    if not result:
        raise TimeoutError(f"looking up {host} took longer than the deadline")
    if isinstance(result[0], OSError):
        raise OSError(f"cannot resolve {host}: {result[0]}")
    return result[0]


def _wrap_tls(sock: socket.socket, host: str, ca_file: str | None) -> socket.socket:
    import ssl

    # PROTOCOL_TLS_CLIENT verifies certificates and host names. The system store is
    # read as a hashed directory, looked up per certificate: create_default_context()
    # would parse the whole bundle first, some 20 ms on every stop.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    elif os.path.isdir(SYSTEM_CA_DIR):
        context.load_verify_locations(capath=SYSTEM_CA_DIR)
    else:
        context.load_default_certs()
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except ssl.SSLCertVerificationError as e:
        hint = f"check ca_file ({ca_file})" if ca_file else "for a private CA set ca_file in the config"
        raise CertificateError(f"the TLS certificate of {host} could not be verified ({e.verify_message}); {hint}") from None


def classify(status: int, data: bytes, slug: str, key_source: str) -> Delivery:
    """What an HTTP answer means, per the contract's response table."""
    if status in ACCEPTED:
        return Delivery("delivered", f"delivered (HTTP {status})", status)
    if status == 409:
        return Delivery("duplicate", "already accepted earlier (HTTP 409, a replay)", status)
    error = _error_text(data)
    if status in TEMPORARY or status >= 500:
        return Delivery("temporary", f"the backend answered HTTP {status}{error}", status)
    if status in (401, 403):
        detail = f"the backend rejected the API key from {key_source} (HTTP {status}): check that it is current and not revoked"
    elif status == 404:
        detail = f"no monitor '{slug}' in this project (HTTP 404): create it in the SeeStack console first"
    elif status == 413:
        detail = f"the backend refused the heartbeat as too large (HTTP 413){error}"
    elif status == 400:
        detail = f"the backend refused the heartbeat as malformed (HTTP 400){error}"
    elif 300 <= status < 400:
        detail = f"the endpoint redirects (HTTP {status}): set endpoint to the final URL"
    else:
        detail = f"the backend refused the heartbeat (HTTP {status}){error}"
    return Delivery("permanent", detail, status)


def _error_text(data: bytes) -> str:
    if not data:
        return ""
    try:
        import json

        message = json.loads(data).get("error")
    except (ValueError, AttributeError):
        message = None
    text = str(message) if message else data.decode("utf-8", "replace")
    return ": " + " ".join(text.split())[:300]


def _retry_after(headers: dict[str, str]) -> float | None:
    value = headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def send(
    conn: Connection, body: bytes, run_id: str, slug: str, deadline_at: float, sleep=time.sleep
) -> Delivery:
    """Send ``body`` until it is accepted, refused for good, or ``deadline_at``
    (a ``time.monotonic()`` value) leaves no room for another attempt. Temporary
    failures are retried with capped exponential backoff and jitter, honouring
    ``Retry-After`` when it fits in the time left."""
    attempt = 0
    while True:
        attempt += 1
        retry_after = None
        try:
            status, headers, data = conn.post(body, run_id, deadline_at)
            result = classify(status, data, slug, conn.target.key_source)
            retry_after = _retry_after(headers)
        except CertificateError as e:
            return Delivery("permanent", str(e), None, attempt)
        except (OSError, TimeoutError) as e:
            result = Delivery("temporary", _describe(e, conn.target.endpoint))
        result.attempts = attempt
        if result.outcome != "temporary":
            return result
        backoff = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** (attempt - 1))
        # Jitter spreads a fleet's retries after an outage; half the backoff at least.
        delay = backoff * (0.5 + os.urandom(1)[0] / 510)
        if retry_after is not None:
            delay = retry_after
        left = deadline_at - time.monotonic()
        if delay + MIN_ATTEMPT_S > left:
            if retry_after is not None and retry_after > left:
                result.detail += f" (Retry-After {retry_after:g}s is past the deadline)"
            return result
        sleep(delay)


def _describe(error: BaseException, endpoint: Endpoint) -> str:
    if isinstance(error, (TimeoutError, socket.timeout)):
        return f"no answer from {endpoint} in time (timeout per request, deadline in all)"
    if isinstance(error, ConnectionRefusedError):
        return f"connection refused by {endpoint}"
    if isinstance(error, ConnectionResetError):
        return f"connection reset by {endpoint}"
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return f"cannot reach {endpoint}: {text}"
