"""The spool: heartbeats kept on disk after a temporary failure, replayed oldest first against a
real loopback Receiver, byte for byte, once each even with two flushers at once.

Bodies are built by heartbeat.body so the receiver accepts them; every delay is short.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from typing import List, Tuple

from seestack_systemd import heartbeat, state
from seestack_systemd.settings import config
from seestack_systemd.delivery import report
from seestack_systemd.delivery import spool
from seestack_systemd.heartbeat import Run
from seestack_systemd.receiver.receive import Receiver
from seestack_systemd.delivery.transport import Client, Target

from .. import support

KEY = "sk-test-spool-0123456789"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
BASE = 1_764_000_000.0  # a fixed finishedAt to count from


def make_run(slug: str = "nightly-backup", finished_at: float = BASE, status: str = "failed") -> Run:
    return Run(slug, status, state.new_run_id(), finished_at, 1234, finished_at - 1.234, "exit status 1", "web-1",
               {"systemd": {"unit": f"{slug}.service"}})


def read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class SpoolCase(unittest.TestCase):
    """A temporary data directory whose spool does not exist yet; a log that records lines."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="seestack-spool-")
        self.addCleanup(shutil.rmtree, self.root, True)
        self.spool_dir = os.path.join(self.root, "spool")
        self.logged: List[Tuple[str, str]] = []

    def log(self, level: str, line: str) -> None:
        self.logged.append((level, line))

    def put(self, run: Run, max_files: int = 1000, max_bytes: int = 10 << 20) -> int:
        return spool.put(self.spool_dir, run.run_id, heartbeat.body(run), run.finished_at, max_files, max_bytes)

    def fill(self, n: int, slug: str = "nightly-backup") -> List[Run]:
        """Spool ``n`` runs finished one second apart, oldest first."""
        runs = [make_run(slug, BASE + i) for i in range(n)]
        for run in runs:
            self.put(run)
        return runs

    def receiver(self, replies=()) -> Receiver:
        r = Receiver(replies=replies).start()
        self.addCleanup(r.stop)
        return r

    def connect(self, receiver: Receiver, timeout: float = 2.0) -> Client:
        return Client(Target(config.parse_endpoint(receiver.url), KEY, "test key", timeout))

    def flush(self, receiver: Receiver, seconds: float = 5.0, timeout: float = 2.0) -> spool.FlushResult:
        return report.replay_dir(self.spool_dir, self.connect(receiver, timeout), time.monotonic() + seconds, self.log)

    def spooled_ids(self) -> List[str]:
        return [name[14:-len(spool.SUFFIX)] for name in spool.entries(self.spool_dir)]

    def keys(self, receiver: Receiver) -> List[str]:
        return [req.headers["idempotency-key"] for req in receiver.requests]


class PutTests(SpoolCase):
    """spool.put and its bounds."""

    def test_file_layout(self):
        """put writes one 0600 file per heartbeat in a new 0700 dir, holding run id, newline, exact body"""
        run = make_run()
        body = heartbeat.body(run)
        old = os.umask(0)
        try:
            self.assertEqual(spool.put(self.spool_dir, run.run_id, body, run.finished_at, 10, 1 << 20), 0)
        finally:
            os.umask(old)
        self.assertEqual(stat.S_IMODE(os.lstat(self.spool_dir).st_mode), 0o700)
        names = os.listdir(self.spool_dir)
        self.assertEqual(len(names), 1)
        self.assertTrue(names[0].endswith(spool.SUFFIX))
        self.assertIn(run.run_id, names[0])
        path = os.path.join(self.spool_dir, names[0])
        self.assertEqual(stat.S_IMODE(os.lstat(path).st_mode), 0o600)
        self.assertEqual(read(path), run.run_id.encode() + b"\n" + body)

    def test_entries_oldest_first(self):
        """entries lists spooled files by finishedAt, oldest first, whatever order they were spooled in"""
        runs = [make_run(finished_at=BASE + s) for s in (5, 1, 900, 0.001, 30)]
        for run in runs:
            self.put(run)
        expected = [r.run_id for r in sorted(runs, key=lambda r: r.finished_at)]
        self.assertEqual(self.spooled_ids(), expected)

    def test_entries_ignore_other_files(self):
        """entries skips files without the .heartbeat suffix (temporaries, strays) and [] without a spool"""
        self.assertEqual(spool.entries(self.spool_dir), [])
        self.fill(1)
        with open(os.path.join(self.spool_dir, ".x.heartbeat.abc.tmp"), "w"):
            pass
        self.assertEqual(len(spool.entries(self.spool_dir)), 1)

    def test_max_files_drops_oldest(self):
        """beyond max_files the oldest heartbeats are dropped and put returns how many"""
        runs = [make_run(finished_at=BASE + i) for i in range(6)]
        dropped = [self.put(run, max_files=3) for run in runs]
        self.assertEqual(dropped, [0, 0, 0, 1, 1, 1])
        self.assertEqual(self.spooled_ids(), [r.run_id for r in runs[3:]])
        # Lowering the bound drops several at once.
        self.assertEqual(self.put(make_run(finished_at=BASE + 10), max_files=1), 3)
        self.assertEqual(len(spool.entries(self.spool_dir)), 1)

    def test_max_bytes_drops_oldest(self):
        """beyond max_bytes the oldest heartbeats are dropped and put returns how many"""
        runs = [make_run(finished_at=BASE + i) for i in range(5)]
        size = len(runs[0].run_id) + 1 + len(heartbeat.body(runs[0]))
        limit = 2 * size + size // 2  # room for two files, not three
        dropped = [self.put(run, max_bytes=limit) for run in runs]
        self.assertEqual(dropped, [0, 0, 1, 1, 1])
        self.assertEqual(self.spooled_ids(), [r.run_id for r in runs[3:]])

    def test_newest_kept_when_alone_too_big(self):
        """a single heartbeat larger than max_bytes is kept, the older ones are dropped"""
        runs = self.fill(2)
        newest = make_run(finished_at=BASE + 99)
        self.assertEqual(self.put(newest, max_bytes=10), 2)
        self.assertEqual(self.spooled_ids(), [newest.run_id])
        self.assertNotIn(runs[0].run_id, self.spooled_ids())

    def test_stats(self):
        """stats gives the count and the oldest heartbeat's age, and (0, None) for an empty spool"""
        self.assertEqual(spool.stats(self.spool_dir), (0, None))
        now = time.time()
        self.put(make_run(finished_at=now - 50))
        self.put(make_run(finished_at=now - 100))
        count, age = spool.stats(self.spool_dir, now=now)
        self.assertEqual(count, 2)
        self.assertAlmostEqual(age, 100, delta=0.01)
        count, age = spool.stats(self.spool_dir)
        self.assertGreaterEqual(age, 100)


class FlushTests(SpoolCase):
    """spool.flush against a real Receiver."""

    def test_delivers_oldest_first_byte_identical(self):
        """flush sends oldest first with the spooled body byte for byte and Idempotency-Key = run id, then empties"""
        runs = [make_run(finished_at=BASE + s) for s in (3, 1, 2)]
        for run in runs:
            self.put(run)
        r = self.receiver()
        result = self.flush(r)
        self.assertEqual((result.sent, result.dropped, result.left, result.stopped_by), (3, 0, 0, ""))
        ordered = sorted(runs, key=lambda run: run.finished_at)
        self.assertEqual(self.keys(r), [run.run_id for run in ordered])
        for req, run in zip(r.requests, ordered):
            self.assertEqual(req.body, heartbeat.body(run))
            self.assertEqual(req.status, 202, req.error)
            self.assertEqual(req.headers["authorization"], f"Bearer {KEY}")
        self.assertEqual(spool.entries(self.spool_dir), [])

    def test_empty_spool(self):
        """flush of a missing or empty spool sends nothing and reports nothing left"""
        r = self.receiver()
        result = self.flush(r)
        self.assertEqual((result.sent, result.left, result.stopped_by), (0, 0, ""))
        self.assertEqual(r.requests, [])

    def test_conflict_counts_as_delivered(self):
        """a 409 (already accepted) counts as sent and removes the file"""
        runs = self.fill(2)
        r = self.receiver([409])
        result = self.flush(r)
        self.assertEqual((result.sent, result.dropped, result.left), (2, 0, 0))
        self.assertEqual([req.status for req in r.requests], [409, 202])
        self.assertEqual(self.keys(r), [run.run_id for run in runs])
        self.assertEqual(spool.entries(self.spool_dir), [])

    def test_stops_at_first_temporary_failure(self):
        """flush stops at the first 503 and keeps that heartbeat and the rest, counting them as left"""
        runs = self.fill(4)
        r = self.receiver([202, 503, 202, 202])
        result = self.flush(r)
        self.assertEqual((result.sent, result.dropped, result.left), (1, 0, 3))
        self.assertIn("503", result.stopped_by)
        self.assertEqual(len(r.requests), 2)
        self.assertEqual(self.spooled_ids(), [run.run_id for run in runs[1:]])

    def test_refused_heartbeats_dropped(self):
        """a 404 or 400 drops that heartbeat with a logged reason and flush goes on with the next"""
        runs = self.fill(3)
        r = self.receiver([404, 400])
        result = self.flush(r)
        self.assertEqual((result.sent, result.dropped, result.left, result.stopped_by), (1, 2, 0, ""))
        self.assertEqual(self.keys(r), [run.run_id for run in runs])
        self.assertEqual(spool.entries(self.spool_dir), [])
        errors = [line for level, line in self.logged if level == "error"]
        self.assertEqual(len(errors), 2, self.logged)
        self.assertIn("nightly-backup", errors[0])
        self.assertIn("console", errors[0])

    def test_unauthorized_keeps_everything(self):
        """a 401 stops the flush and keeps every heartbeat for when the key is fixed"""
        runs = self.fill(3)
        r = self.receiver([401])
        result = self.flush(r)
        self.assertEqual((result.sent, result.dropped, result.left), (0, 0, 3))
        self.assertIn("401", result.stopped_by)
        self.assertIn("test key", result.stopped_by)
        self.assertEqual(len(r.requests), 1)
        self.assertEqual(self.spooled_ids(), [run.run_id for run in runs])

    def test_reset_keeps_files(self):
        """a connection reset stops the flush with every heartbeat kept"""
        runs = self.fill(3)
        r = self.receiver(["reset"] * 3)
        result = self.flush(r)
        self.assertEqual((result.sent, result.left), (0, 3))
        self.assertIn("connection reset", result.stopped_by)
        self.assertEqual(self.spooled_ids(), [run.run_id for run in runs])

    def test_hang_stops_within_deadline(self):
        """a backend that never answers stops the flush within its deadline with every heartbeat kept"""
        runs = self.fill(3)
        r = self.receiver(["hang"] * 3)
        started = time.monotonic()
        result = self.flush(r, seconds=0.8, timeout=5.0)
        took = time.monotonic() - started
        self.assertLess(took, 1.3)
        self.assertGreaterEqual(took, 0.7)  # it did wait for an answer, up to the deadline
        self.assertEqual((result.sent, result.left), (0, 3))
        self.assertEqual(self.spooled_ids(), [run.run_id for run in runs])

    def test_out_of_time_before_start(self):
        """a deadline already past sends nothing and leaves everything"""
        self.fill(2)
        r = self.receiver()
        result = report.replay_dir(self.spool_dir, self.connect(r), time.monotonic() - 1, self.log)
        self.assertEqual((result.sent, result.left, result.stopped_by), (0, 2, "out of time"))
        self.assertEqual(r.requests, [])

    def test_connection_refused_keeps_files(self):
        """a closed port stops the flush with every heartbeat kept"""
        self.fill(2)
        r = Receiver()
        url = r.url
        r.stop()  # the port is free again and nothing listens
        conn = Client(Target(config.parse_endpoint(url), KEY, "test key", 1.0))
        result = report.replay_dir(self.spool_dir, conn, time.monotonic() + 2, self.log)
        self.assertEqual((result.sent, result.left), (0, 2))
        self.assertEqual(len(spool.entries(self.spool_dir)), 2)

    def test_corrupt_file_removed(self):
        """corrupt spool files (empty, no newline, short run id) are removed and the good ones sent"""
        runs = self.fill(2)
        for name, content in (("0000000000001-a", b""), ("0000000000002-b", b"no newline at all"),
                              ("0000000000003-c", b"short-id\n{}")):
            with open(os.path.join(self.spool_dir, name + spool.SUFFIX), "wb") as f:
                f.write(content)
        r = self.receiver()
        result = self.flush(r)
        self.assertEqual((result.sent, result.dropped, result.left), (2, 3, 0))
        self.assertEqual(self.keys(r), [run.run_id for run in runs])
        self.assertEqual(spool.entries(self.spool_dir), [])

    def test_planted_symlink_not_followed(self):
        """a symlink in the spool named like a spool file is not read, sent or removed through"""
        runs = self.fill(1)
        outside = tempfile.mkdtemp(prefix="seestack-outside-")
        self.addCleanup(shutil.rmtree, outside, True)
        planted = make_run(finished_at=BASE - 100)  # sorts first
        target = os.path.join(outside, "secret")
        content = planted.run_id.encode() + b"\n" + heartbeat.body(planted)
        with open(target, "wb") as f:
            f.write(content)
        os.symlink(target, os.path.join(self.spool_dir, f"{int(planted.finished_at * 1000):013d}-{planted.run_id}{spool.SUFFIX}"))
        r = self.receiver()
        result = self.flush(r)
        self.assertEqual(self.keys(r), [runs[0].run_id])
        self.assertEqual(result.sent, 1)
        self.assertEqual(read(target), content)
        self.assertEqual(spool.entries(self.spool_dir), [])

    def test_untrusted_spool_dir_not_replayed(self):
        """a spool directory others can write to is not replayed: nothing sent, all left, reason logged"""
        self.fill(2)
        os.chmod(self.spool_dir, 0o777)
        r = self.receiver()
        result = self.flush(r)
        self.assertEqual((result.sent, result.left), (0, 2))
        self.assertIn("chmod 700", result.stopped_by)
        self.assertEqual(r.requests, [])
        self.assertEqual(len(spool.entries(self.spool_dir)), 2)

    def test_directory_entry_does_not_crash_flush(self):
        """a directory named like a spool file does not crash flush, and the real heartbeats are sent"""
        runs = self.fill(1)
        os.mkdir(os.path.join(self.spool_dir, f"0000000000001-{state.new_run_id()}{spool.SUFFIX}"), 0o700)
        r = self.receiver()
        result = self.flush(r)
        self.assertEqual(result.sent, 1)
        self.assertEqual(self.keys(r), [runs[0].run_id])

    def test_fifo_entry_does_not_stall_flush(self):
        """a FIFO named like a spool file does not hold flush past its deadline"""
        self.fill(1)
        fifo = os.path.join(self.spool_dir, f"0000000000001-{state.new_run_id()}{spool.SUFFIX}")
        os.mkfifo(fifo, 0o600)
        r = self.receiver()
        conn = self.connect(r)
        done = threading.Event()

        def flusher():
            report.replay_dir(self.spool_dir, conn, time.monotonic() + 0.5, self.log)
            done.set()

        thread = threading.Thread(target=flusher, daemon=True)
        thread.start()
        finished = done.wait(1.5)
        if not finished:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # release the blocked open()
            thread.join(5)
        self.assertTrue(finished, "flush blocked on a FIFO past its 0.5 s deadline")


class ConcurrencyTests(SpoolCase):
    """Two flushers at once send each heartbeat exactly once."""

    N = 50

    def check_once_each(self, r: Receiver, runs: List[Run]) -> None:
        keys = self.keys(r)
        self.assertEqual([req.status for req in r.requests if req.status == 409], [], "a heartbeat was sent twice")
        self.assertEqual(len(keys), self.N, "a heartbeat was sent twice or not at all")
        self.assertEqual(set(keys), {run.run_id for run in runs})
        self.assertEqual(spool.entries(self.spool_dir), [])

    def test_two_threads(self):
        """two threads flushing one spool of 50 at once deliver each run id exactly once"""
        runs = self.fill(self.N)
        r = self.receiver()
        conns = [self.connect(r), self.connect(r)]
        barrier = threading.Barrier(2)
        results: List[spool.FlushResult] = []

        def flusher(conn):
            barrier.wait()
            results.append(report.replay_dir(self.spool_dir, conn, time.monotonic() + 10, self.log))

        threads = [threading.Thread(target=flusher, args=(c,)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        self.assertEqual(sum(res.sent for res in results), self.N)
        self.check_once_each(r, runs)

    def test_two_processes(self):
        """two processes flushing one spool of 50 at once deliver each run id exactly once"""
        runs = self.fill(self.N)
        r = self.receiver()
        script = (
            "import json, sys, time\n"
            "sys.path.insert(0, sys.argv[1])\n"
            "from seestack_systemd.settings import config\nfrom seestack_systemd.delivery import report\n"
            "from seestack_systemd.delivery.transport import Client, Target\n"
            "conn = Client(Target(config.parse_endpoint(sys.argv[2]), sys.argv[4], 'test key', 5.0))\n"
            "sys.stdin.read(1)\n"  # wait for the go, so that both start together
            "res = report.replay_dir(sys.argv[3], conn, time.monotonic() + 10, lambda level, line: None)\n"
            "print(json.dumps([res.sent, res.dropped, res.left]))\n"
        )
        procs = [
            subprocess.Popen([sys.executable, "-c", script, ROOT, r.url, self.spool_dir, KEY],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        for p in procs:
            p.stdin.write(b"g")
            p.stdin.flush()
        outputs = []
        for p in procs:
            out, err = p.communicate(timeout=20)
            self.assertEqual(p.returncode, 0, err.decode())
            outputs.append(json.loads(out))
        self.assertEqual(sum(sent for sent, _, _ in outputs), self.N)
        self.check_once_each(r, runs)


class DeliverTests(SpoolCase):
    """report.deliver spools on a temporary failure and replays first next time."""

    def config_for(self, receiver: Receiver) -> config.Config:
        return config.load({
            "SEESTACK_CONFIG": "/dev/null",
            "SEESTACK_ENDPOINT": receiver.url,
            "SEESTACK_API_KEY": KEY,
            "SEESTACK_DATA_DIR": self.root,
            "SEESTACK_STATE_DIR": os.path.join(self.root, "state"),
            "SEESTACK_DEADLINE": "1.2",
            "SEESTACK_TIMEOUT": "0.5",
        })

    def test_spooled_then_replayed_first(self):
        """a heartbeat met by 503s until the deadline is spooled, and the next deliver replays it first, unchanged"""
        down = self.receiver(["503"] * 50)
        cfg = self.config_for(down)
        self.assertEqual(cfg.spool_dir, self.spool_dir)
        first = make_run(finished_at=time.time())
        started = time.monotonic()
        delivery = report.deliver(cfg, first, self.log)
        self.assertLess(time.monotonic() - started, 1.2 + 0.5)
        self.assertEqual(delivery.outcome, "temporary")
        self.assertGreaterEqual(len(down.requests), 1)
        self.assertTrue(all(req.status == 503 for req in down.requests))
        self.assertEqual(self.spooled_ids(), [first.run_id])
        spooled = read(os.path.join(self.spool_dir, spool.entries(self.spool_dir)[0]))
        self.assertEqual(spooled, first.run_id.encode() + b"\n" + down.requests[0].body)
        self.assertTrue(any("spooled" in line for _, line in self.logged), self.logged)

        up = self.receiver()
        second = make_run(finished_at=time.time())
        delivery = report.deliver(self.config_for(up), second, self.log)
        self.assertTrue(delivery.delivered)
        self.assertEqual(self.keys(up), [first.run_id, second.run_id])
        self.assertEqual(up.requests[0].body, down.requests[0].body)  # the real finishedAt, byte for byte
        self.assertEqual([req.status for req in up.requests], [202, 202])
        self.assertEqual(spool.entries(self.spool_dir), [])


if __name__ == "__main__":
    unittest.main()


class ReplayUpdatesList(support.HookTestCase):
    """A flush that delivers a spooled heartbeat makes `list` say delivered, not spooled."""

    def test_list_after_flush_says_delivered(self):
        done = self.hook("ping", "stale", "--status", "success", "--deadline", "1",
                         env={"SEESTACK_ENDPOINT": "http://127.0.0.1:1"})
        self.assertIn("spooled", done.stderr)
        self.assertIn("spooled", self.hook("list").stdout)
        r = Receiver().start()
        self.addCleanup(r.stop)
        done = self.hook("flush", env={"SEESTACK_ENDPOINT": r.url})
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("replayed 1", done.stderr)
        listed = self.hook("list").stdout
        line = next(line for line in listed.splitlines() if "stale" in line)
        self.assertIn("delivered", line)
        self.assertNotIn("spooled", line)
        with open(os.path.join(self.data_dir, "last", "stale.json")) as f:
            self.assertEqual(json.load(f)["outcome"], "delivered")

    def test_replay_of_an_older_run_keeps_the_newer_record(self):
        down = {"SEESTACK_ENDPOINT": "http://127.0.0.1:1"}
        self.hook("ping", "stale", "--status", "failed", "--deadline", "1", env=down)
        self.hook("ping", "stale", "--status", "success", "--deadline", "1", env=down)
        with open(os.path.join(self.data_dir, "last", "stale.json")) as f:
            newest = json.load(f)
        r = Receiver(replies="202,503").start()  # the older run is delivered, the newer one stays spooled
        self.addCleanup(r.stop)
        self.hook("flush", env={"SEESTACK_ENDPOINT": r.url})
        with open(os.path.join(self.data_dir, "last", "stale.json")) as f:
            after = json.load(f)
        self.assertEqual(len(r.requests), 2)
        self.assertEqual(after, newest)
        self.assertEqual(after["outcome"], "temporary")
