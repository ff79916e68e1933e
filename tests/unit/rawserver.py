"""A scripted raw-byte HTTP server: it answers each request with exact bytes.

Written for the tests and separate from ``receiver/receive.py`` (which is built on
http.server and answers as the backend would): here each connection gets the
next item of a script, byte for byte, so the client meets what real servers and
proxies send, malformed or endless answers included.

An item is ``bytes`` (sent, then the connection is closed), or a callable taking
the socket (it writes what it likes, e.g. forever, until the client goes away).
"""

from __future__ import annotations

import socket
import threading
from typing import Callable, List, Sequence, Tuple, Union

Item = Union[bytes, Callable[[socket.socket], None]]


def response(status: str, body: bytes = b"", *headers: str, media_type: str = "application/json") -> bytes:
    """A well-formed HTTP/1.1 answer with a Content-Length (``status`` like '202 Accepted')."""
    lines = [f"HTTP/1.1 {status}", *headers]
    if media_type and body:
        lines.append(f"Content-Type: {media_type}")
    lines += [f"Content-Length: {len(body)}", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1") + body


def endless(head: bytes, piece: bytes) -> Callable[[socket.socket], None]:
    """Send ``head`` then ``piece`` over and over until the client stops reading."""
    def write(sock: socket.socket) -> None:
        sock.sendall(head)
        while True:
            sock.sendall(piece)
    return write


class RawServer:
    """Listens on 127.0.0.1; records each request's (request line + headers, body)."""

    def __init__(self, script: Sequence[Item], repeat_last: bool = False, host: str = "127.0.0.1") -> None:
        self.script: List[Item] = list(script)
        self.repeat_last = repeat_last
        self.requests: List[Tuple[bytes, bytes]] = []
        self._lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def paths(self) -> List[str]:
        return [head.split(b" ")[1].decode("latin-1") for head, _ in self.requests]

    def close(self) -> None:
        # close() alone leaves a thread blocked in accept() listening on the port (Linux),
        # still answering whoever connects there next: shutdown wakes it first.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def __enter__(self) -> "RawServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self) -> Item:
        with self._lock:
            if len(self.script) > 1 or (self.script and not self.repeat_last):
                return self.script.pop(0)
            return self.script[0] if self.script else response("202 Accepted", b'{"accepted": true}')

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(body) < length:
                    body += conn.recv(65536)
                with self._lock:
                    self.requests.append((head, body))
                item = self._next()
                if callable(item):
                    item(conn)
                else:
                    conn.sendall(item)
                    conn.shutdown(socket.SHUT_WR)
                    conn.recv(1)  # the client closes once it has read the answer
            except OSError:
                pass  # the client went away: that is how endless answers end
