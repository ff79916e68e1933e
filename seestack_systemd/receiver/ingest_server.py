"""The HTTP server under ``Receiver``: sockets, Content-Length, and the misbehaving replies.

``IngestServer`` knows its live connections so that ``Receiver.stop()`` can release
them; ``IngestHandler`` reads one request, lets the receiver decide the answer, and
sends it, or hangs, resets or trickles as the reply script says.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any, Protocol

from seestack_systemd.receiver.printer import Request
from seestack_systemd.receiver.replies import Reply
from seestack_systemd.receiver.validator import show, small_int

# Far above any real heartbeat (the message is capped at 4 KiB); a bigger body gets 413 unread.
MAX_BODY_BYTES = 1 << 20
TRICKLE_INTERVAL = 1.0
# Idle keep-alive connections and stalled uploads free their thread after this.
_SOCKET_TIMEOUT = 30.0


class Answerer(Protocol):
    """What the server asks of whoever decides the answers (``Receiver``): the server never imports it."""

    stopping: threading.Event

    def answer(self, method: str, path: str, headers: dict, body: bytes,
               received_at: float) -> tuple[Request, Reply | None, dict | str | None]: ...

    def record(self, request: Request) -> None: ...


class IngestServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its live connections, so stop() can release them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], receiver: Answerer) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.receiver = receiver
        self._live: dict = {}
        self._live_lock = threading.Lock()
        self._closing = False
        super().__init__(address, IngestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(), a reverse DNS lookup that can take
        # seconds in a container without DNS; nothing here needs the name.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = self.host_port()

    def host_port(self) -> tuple[str, int]:
        """The address bound: an AF_INET or AF_INET6 socket's is always (str, int, ...)."""
        host, port = self.server_address[:2]
        return str(host), int(port)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
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


class IngestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = _SOCKET_TIMEOUT
    # Headers and body go out in two writes; Nagle would hold the body back for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: IngestServer

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
            receiver.record(request)
            self._send(status, {"error": error})
            return
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True  # the client gave up mid-upload; nobody to answer
            return
        request, reply, payload = receiver.answer(self.command, path, headers, body, received_at)
        kind = reply.kind if reply else "status"
        if kind == "hang":
            self.close_connection = True
            receiver.stopping.wait()
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

    def _content_length(self, headers: Mapping[str, str]) -> tuple[int, tuple[int, str] | None]:
        """The body's length, or a (status, error) refusal when it cannot or should not be read."""
        if "transfer-encoding" in headers:
            return 0, (411, "Transfer-Encoding is not supported: send the body with a Content-Length")
        size = small_int(headers.get("content-length", "0").strip())
        if size is None:
            return 0, (400, f"invalid Content-Length header {show(headers['content-length'])}")
        if size > MAX_BODY_BYTES:
            return 0, (413, f"body of {size} bytes is larger than the {MAX_BODY_BYTES} allowed")
        return size, None

    def _send(self, status: int, payload: dict | str | None, extra: Iterable[tuple[str, str]] = ()) -> None:
        """Send ``payload``: a dict as JSON, text as text/plain, None as no body."""
        if isinstance(payload, str):
            body, media_type = payload.encode("utf-8"), "text/plain; charset=utf-8"
        else:
            body = b"" if payload is None else json.dumps(payload).encode("utf-8")
            media_type = "" if payload is None else "application/json"
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

    def _trickle(self, payload: dict | str | None) -> None:
        body = json.dumps(payload).encode("utf-8")
        rest = b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        try:
            self.wfile.write(b"HTTP/1.1 202 Accepted\r\n")
            for i in range(len(rest)):
                if self.server.receiver.stopping.wait(TRICKLE_INTERVAL):
                    return
                self.wfile.write(rest[i:i + 1])
        except OSError:
            pass  # the client gave up, which is what trickle is for
