"""One POST of a heartbeat with urllib.request, bounded in time and in memory.

The opener is built from explicit handlers only: no redirect handler (the key
never follows a ``Location``), no error processor (every status comes back as
an answer for ``policy.decide``), no environment proxy handler (``https_proxy``
and ``no_proxy`` come from our configuration alone), and a TLS context of our
own (the system store, or ``ca_file``). The deadline is total: a watchdog shuts
the connection's socket down when it comes, so a trickling or silent server
cannot stretch it. Name resolution is bounded by the time left and every address
is tried; a response body is read up to a cap.
"""

from __future__ import annotations

import functools
import http.client
import os
import socket
import ssl
import sys
import _thread  # not threading: its import is a millisecond of every finish, and a lock does the job
import time
import urllib.error
import urllib.request
from collections.abc import Callable  # not typing: that is milliseconds of every finish

from seestack_systemd.contract import SDK_NAME, VERSION
from seestack_systemd.settings.endpoint import Endpoint, parse_endpoint
from seestack_systemd.errors import ConfigError
from seestack_systemd.delivery.policy import Answer
from seestack_systemd.record import Record

MAX_RESPONSE_BYTES = 64 * 1024  # we only need the status and a short error
MAX_INTERIM_LINES = 100  # header lines of a 1xx answer, as http.client allows for a final one
MAX_LINE_BYTES = 65537
SYSTEM_CA_DIR = "/etc/ssl/certs"  # Debian's hashed trust store (ca-certificates)

USER_AGENT = "{}/{} (python/{}.{}; {} {})".format(
    SDK_NAME, VERSION, sys.version_info[0], sys.version_info[1], os.uname().sysname, os.uname().release
)


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


class Client:
    """Posts heartbeats to one target; each post is one request on a fresh connection."""

    def __init__(self, target: Target) -> None:
        self.target = target
        ep = target.endpoint
        proxy = None
        # On Linux proxy_bypass is proxy_bypass_environment: no_proxy's rules, given our own value.
        if ep.scheme == "https" and target.https_proxy and not urllib.request.proxy_bypass(
                ep.host, {"no": target.no_proxy or ""}):
            proxy = parse_endpoint(target.https_proxy, allow_insecure_http=True, setting="https_proxy").authority
        self._watchdog: _Watchdog | None = None
        self._opener = urllib.request.OpenerDirector()
        self._opener.addheaders = []  # no Python-urllib User-Agent behind our back
        self._opener.add_handler(_HTTPHandler(self._connection))
        if ep.scheme == "https":
            self._opener.add_handler(_HTTPSHandler(self._connection, tls_context(target.ca_file), proxy))

    def post(self, body: bytes, run_id: str, left: float) -> Answer:
        """POST ``body`` once, taking at most ``left`` seconds in all. Never raises for
        what the network or the server does: that is in the Answer."""
        url = self.target.endpoint.ingest_url
        if left <= 0:
            return Answer(url, error=TimeoutError("no time left before the deadline"))
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Authorization": f"Bearer {self.target.api_key}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": run_id,
        })
        watchdog = self._watchdog = _Watchdog(time.monotonic() + left)
        error: BaseException
        try:
            with self._opener.open(request, timeout=min(self.target.timeout, left)) as response:
                status = response.status
                headers = {name.lower(): value for name, value in response.headers.items()}
                try:
                    data = response.read(MAX_RESPONSE_BYTES)
                except (OSError, http.client.HTTPException, ValueError):
                    data = b""  # the status stands; a body cut short is nobody's error text
            if not watchdog.fired:  # else the head may be cut short too: an answer not had in time
                return Answer(url, status, headers, data)
            error = TimeoutError()
        except urllib.error.URLError as e:
            error = e.reason if isinstance(e.reason, BaseException) else e
        except (OSError, http.client.HTTPException, ValueError) as e:
            error = e
        finally:
            watchdog.stop()
            self._watchdog = None
        if watchdog.fired:
            error = TimeoutError(f"the deadline passed while waiting for {url}")
        return Answer(url, error=error)

    def _connection(self, cls: type, host: str, **kwargs: object) -> http.client.HTTPConnection:
        """An http.client connection whose sockets come from ``_connect``."""
        conn = cls(host, **kwargs)
        conn._create_connection = self._connect  # type: ignore[attr-defined]
        return conn

    def _connect(self, address: tuple, timeout: object = None, source_address: object = None) -> socket.socket:
        """Every address the name resolves to, in order, within the time left; each socket
        is watched so the deadline can shut it down."""
        watchdog = self._watchdog
        assert watchdog is not None, "a connection is only made inside post()"
        host, port = address
        last: OSError = TimeoutError(f"no time left to connect to {host}")
        for family, kind, proto, _, sockaddr in resolve(host, port, watchdog.deadline_at):
            left = watchdog.deadline_at - time.monotonic()
            if left <= 0:
                break
            sock = socket.socket(family, kind, proto)
            try:
                watchdog.watch(sock)
                sock.settimeout(min(self.target.timeout, left))
                sock.connect(sockaddr)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except OSError as e:
                sock.close()
                last = e
        raise last


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, connection: Callable[..., http.client.HTTPConnection]) -> None:
        super().__init__()
        self._new = connection

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(self._new, _HTTPConnection), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, connection: Callable[..., http.client.HTTPConnection], context: ssl.SSLContext,
                 proxy: str | None) -> None:
        super().__init__(context=context)
        self._new, self._tls, self._proxy = connection, context, proxy

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        if self._proxy:
            req.set_proxy(self._proxy, "https")  # here, after the Host header names the endpoint
        return self.do_open(functools.partial(self._new, _HTTPSConnection), req, context=self._tls)


class _Response(http.client.HTTPResponse):
    """Skips every interim 1xx answer (http.client skips only 100) before the final one;
    a 1xx after which the server closes is taken as the final answer."""

    def _read_status(self):  # type: ignore[no-untyped-def]
        answer = super()._read_status()
        while 100 <= answer[1] < 200 and answer[1] != 101:
            for _ in range(MAX_INTERIM_LINES):
                if self.fp.readline(MAX_LINE_BYTES).strip() == b"":
                    break
            else:
                raise http.client.HTTPException("too many header lines in an interim answer")
            try:
                answer = super()._read_status()
            except http.client.RemoteDisconnected:
                return answer
        return answer


class _HTTPConnection(http.client.HTTPConnection):
    response_class = _Response


class _HTTPSConnection(http.client.HTTPSConnection):
    response_class = _Response


class _Watchdog:
    """Shuts down every watched socket at ``deadline_at`` unless stopped first."""

    def __init__(self, deadline_at: float) -> None:
        self.deadline_at = deadline_at
        self.fired = False
        self._lock = _thread.allocate_lock()
        self._socks: list[socket.socket] = []
        self._stopped = _thread.allocate_lock()
        self._stopped.acquire()  # released by stop(); the watcher waits on it until the deadline
        _thread.start_new_thread(self._watch, (max(0.0, deadline_at - time.monotonic()),))

    def watch(self, sock: socket.socket) -> None:
        # A duplicate descriptor: shutdown() acts on the connection, and the number
        # cannot be reused for another file while we hold it (TLS detaches the original).
        with self._lock:
            if self.fired:
                raise TimeoutError("the deadline passed")
            self._socks.append(sock.dup())

    def _watch(self, seconds: float) -> None:
        if self._stopped.acquire(timeout=seconds):
            return
        with self._lock:
            self.fired = True
            for sock in self._socks:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # not connected yet, or already closed by the server

    def stop(self) -> None:
        self._stopped.release()
        with self._lock:
            for sock in self._socks:
                sock.close()
            self._socks.clear()


def resolve(host: str, port: int, deadline_at: float) -> list:
    """getaddrinfo, bounded by the deadline: a resolver that hangs must not hold a unit."""
    # An ASCII name as bytes: a str would load the idna codec (and with it re) first.
    name: str | bytes = host.encode("ascii") if host.isascii() else host
    try:
        return socket.getaddrinfo(name, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        pass  # a name, not an address literal
    result: list = []

    done = _thread.allocate_lock()
    done.acquire()

    def lookup() -> None:
        try:
            result.append(socket.getaddrinfo(name, port, type=socket.SOCK_STREAM))
        except OSError as e:
            result.append(e)
        finally:
            done.release()

    _thread.start_new_thread(lookup, ())
    done.acquire(timeout=max(0.0, deadline_at - time.monotonic()))
    if not result:
        raise TimeoutError(f"looking up {host} took longer than the deadline")
    if isinstance(result[0], OSError):
        raise result[0]
    return result[0]


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verify certificates and host names against ``ca_file``, else the system store."""
    # The system store is read as a hashed directory, looked up per certificate:
    # create_default_context() would parse the whole bundle first, some 20 ms a stop.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"ca_file {ca_file} is not a readable PEM bundle of CA certificates ({e})") from None
    elif os.path.isdir(SYSTEM_CA_DIR):
        context.load_verify_locations(capath=SYSTEM_CA_DIR)
    else:
        context.load_default_certs()
    return context
