"""The library's ``monitor`` on every kind of Python callable, against a real loopback receiver.

Each run must be reported when the work really ends (a generator exhausted or raising, a
coroutine returning or raising), with its real duration, and ``failed`` with the
exception's message when it raises. In async code the delivery must not block the loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import threading
import time
import unittest

from seestack_systemd import monitor
from seestack_systemd.jobs import api
from seestack_systemd.receiver.receive import Receiver

from ..support import API_KEY

WORK_S = 0.15  # how long each monitored piece of work runs: its heartbeat's durationMs must cover it
WORK_MS = int(WORK_S * 1000)


class LibraryCase(unittest.TestCase):
    def setUp(self) -> None:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.config = os.path.join(self.dir, "seestack.conf")
        with open(self.config, "w") as f:
            f.write("[seestack]\n")
        os.chmod(self.config, 0o600)
        self.receiver = Receiver(api_key=API_KEY).start()
        self.addCleanup(self.receiver.stop)
        self.addCleanup(api.configure)
        api.configure(endpoint=self.receiver.url, api_key=API_KEY, deadline=3, config=self.config,
                      data_dir=os.path.join(self.dir, "data"))

    def heartbeat(self) -> dict:
        """The one heartbeat the receiver got."""
        [request] = self.receiver.wait_for(1)
        self.assertEqual(len(self.receiver.requests), 1)
        return request.json()

    def assertFailed(self, body: dict, slug: str, message: str) -> None:
        self.assertEqual((body["slug"], body["status"], body["message"]), (slug, "failed", message))
        self.assertGreaterEqual(body["durationMs"], WORK_MS)
        self.assertLess(body["durationMs"], WORK_MS + 2000)

    def assertSucceeded(self, body: dict, slug: str) -> None:
        self.assertEqual((body["slug"], body["status"]), (slug, "success"))
        self.assertGreaterEqual(body["durationMs"], WORK_MS)


class Generators(LibraryCase):
    def test_generator_reported_when_exhausted(self):
        """@monitor on a generator: nothing at creation; success with the whole iteration's duration when exhausted"""
        @monitor("gen-ok")
        def numbers():
            for i in range(3):
                time.sleep(WORK_S / 3)
                yield i

        gen = numbers()
        time.sleep(0.05)
        self.assertEqual(self.receiver.requests, [])
        self.assertEqual(list(gen), [0, 1, 2])
        self.assertSucceeded(self.heartbeat(), "gen-ok")

    def test_generator_raising_is_failed(self):
        """a generator that raises mid-way is failed with its message and real duration; the error reaches the caller"""
        @monitor("gen-bad")
        def rows():
            yield 1
            time.sleep(WORK_S)
            raise RuntimeError("disk full")

        gen = rows()
        self.assertEqual(next(gen), 1)
        self.assertEqual(self.receiver.requests, [])
        with self.assertRaisesRegex(RuntimeError, "disk full"):
            next(gen)
        self.assertFailed(self.heartbeat(), "gen-bad", "RuntimeError: disk full")

    def test_generator_send_and_return_value(self):
        """send() reaches the generator and its return value reaches yield from"""
        @monitor("gen-send")
        def echo():
            got = yield "ready"
            time.sleep(WORK_S)
            return got * 2

        def outer():
            return (yield from echo())

        gen = outer()
        self.assertEqual(next(gen), "ready")
        with self.assertRaises(StopIteration) as stop:
            gen.send(21)
        self.assertEqual(stop.exception.value, 42)
        self.assertSucceeded(self.heartbeat(), "gen-send")


class Coroutines(LibraryCase):
    def test_coroutine_raising_is_failed(self):
        """@monitor on async def: nothing at creation; failed with message and real duration when it raises"""
        @monitor("async-bad")
        async def job():
            await asyncio.sleep(WORK_S)
            raise ValueError("bad row 17")

        coro = job()
        self.assertEqual(self.receiver.requests, [])
        with self.assertRaisesRegex(ValueError, "bad row 17"):
            asyncio.run(coro)
        self.assertFailed(self.heartbeat(), "async-bad", "ValueError: bad row 17")

    def test_coroutine_returns(self):
        """a coroutine's return value passes through; success with its real duration"""
        @monitor("async-ok")
        async def job(n):
            await asyncio.sleep(WORK_S)
            return n + 1

        self.assertEqual(asyncio.run(job(41)), 42)
        self.assertSucceeded(self.heartbeat(), "async-ok")

    def test_async_with(self):
        """async with monitor(): failed with message and real duration; success on a clean exit"""
        async def main():
            with self.assertRaisesRegex(OSError, "no route"):
                async with monitor("block-bad") as handle:
                    self.assertEqual(handle.slug, "block-bad")
                    await asyncio.sleep(WORK_S)
                    raise OSError("no route")

        asyncio.run(main())
        self.assertFailed(self.heartbeat(), "block-bad", "OSError: no route")

    def test_async_generator(self):
        """@monitor on an async generator: failed with message and real duration when it raises; asend reaches it"""
        @monitor("agen-bad")
        async def stream():
            doubled = yield 1
            await asyncio.sleep(WORK_S)
            yield doubled * 2
            raise ConnectionError("feed closed")

        async def main():
            agen = stream()
            self.assertEqual(await agen.__anext__(), 1)
            self.assertEqual(await agen.asend(21), 42)
            self.assertEqual(self.receiver.requests, [])
            with self.assertRaisesRegex(ConnectionError, "feed closed"):
                await agen.__anext__()

        asyncio.run(main())
        self.assertFailed(self.heartbeat(), "agen-bad", "ConnectionError: feed closed")

    def test_async_generator_exhausted(self):
        """an async generator exhausted by async for is a success with its real duration"""
        @monitor("agen-ok")
        async def stream():
            for i in range(3):
                await asyncio.sleep(WORK_S / 3)
                yield i

        async def main():
            return [i async for i in stream()]

        self.assertEqual(asyncio.run(main()), [0, 1, 2])
        self.assertSucceeded(self.heartbeat(), "agen-ok")


class HeldAnswer:
    """A raw-socket backend that holds its 202 until ``release`` is set (or ``limit`` passes)."""

    def __init__(self, limit: float = 3.0) -> None:
        self.release = threading.Event()
        self.released_in_time = False
        self.limit = limit
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            while len(body) < length:
                body += conn.recv(65536)
            self.released_in_time = self.release.wait(self.limit)
            conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                         b"Connection: close\r\n\r\n{}")

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


class EventLoop(LibraryCase):
    def test_delivery_does_not_block_the_loop(self):
        """while an async monitor's heartbeat is being delivered, other tasks of the loop run"""
        backend = HeldAnswer()
        self.addCleanup(backend.close)
        api.configure(endpoint=backend.url, api_key=API_KEY, deadline=5, timeout=5, config=self.config,
                      data_dir=os.path.join(self.dir, "held"))

        @monitor("loop-free")
        async def job():
            return "done"

        async def other_task():
            # Runs only if the loop is free while the heartbeat waits for its answer.
            await asyncio.sleep(0.2)
            backend.release.set()

        async def main():
            ticker = asyncio.ensure_future(other_task())
            result = await job()
            await ticker
            return result

        self.assertEqual(asyncio.run(main()), "done")
        self.assertTrue(backend.released_in_time, "the loop was blocked while the heartbeat was delivered")


class Misuse(LibraryCase):
    def test_bare_decorator(self):
        """@monitor without a slug is a TypeError that shows the right spelling"""
        with self.assertRaises(TypeError) as caught:
            @monitor
            def job():
                pass
        self.assertIn('@monitor("my-job")', str(caught.exception))
        self.assertIn("job()", str(caught.exception))
        self.assertNotIn("<function", str(caught.exception))

    def test_bad_values_refused_by_configure(self):
        """configure(deadline=-1) or timeout="soon" raises ValueError at once, naming the argument; nothing is kept"""
        for settings, wanted in ((dict(deadline=-1), "configure(deadline=...)"),
                                 (dict(timeout="soon"), "configure(timeout=...)"),
                                 (dict(allow_insecure_http="perhaps"), "configure(allow_insecure_http=...)"),
                                 (dict(endpoint="ftp://x.example"), "ftp://x.example")):
            with self.subTest(settings):
                api.configure()
                with self.assertRaises(ValueError) as caught:
                    api.configure(**{"endpoint": self.receiver.url, **settings})
                self.assertIn(wanted, str(caught.exception))
                self.assertEqual(api._overrides, {})
        self.assertEqual(self.receiver.requests, [])

    def test_errors_name_configure_arguments(self):
        """a bad configure() value is reported as configure(NAME=...), never as a CLI flag"""
        cases = {
            "api_key_file": (dict(api_key_file=os.path.join(self.dir, "missing-key")), "configure(api_key_file=...)"),
            "config": (dict(config=os.path.join(self.dir, "missing.conf")), "configure(config=...)"),
        }
        for name, (settings, wanted) in cases.items():
            with self.subTest(name):
                api.configure()
                api.configure(endpoint=self.receiver.url, **settings)
                with self.assertLogs("seestack_systemd", logging.ERROR) as logs:
                    with monitor("job"):
                        pass
                text = "\n".join(logs.output)
                self.assertIn(wanted, text)
                self.assertNotIn("--", text)
                # The logger's name says whose line it is; the message starts with the slug.
                self.assertTrue(all(line.startswith("ERROR:seestack_systemd:job: heartbeat not sent: ")
                                    for line in logs.output), logs.output)
        self.assertEqual(self.receiver.requests, [])


if __name__ == "__main__":
    unittest.main()
