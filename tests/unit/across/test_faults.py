"""Faults caused for real on this machine, with the CLI run as a real process each time.

Servers that refuse, hang, trickle, reset or answer 503/429 (with Retry-After) and then
recover; a full tmpfs and a read-only bind mount (as root) or a directory without write
permission as the state and data/spool directories; symlinks and foreign-owned files
planted in them; hostile slugs and invocation ids; 1 MB, invalid UTF-8 and NUL messages.

For each fault the tests check what the job saw (exit code and output unchanged), what the
backend finally received (each heartbeat accepted once, the same body on every attempt) and
how long the hook took. Set SEESTACK_FAULT_TIMINGS=1 to print the measured hook durations
when the module ends.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence, Tuple

from seestack_systemd.jobs import api
from seestack_systemd.contract import MESSAGE_LIMIT_BYTES, TRUNCATION_MARK
from seestack_systemd.receiver.receive import Receiver

from ..support import API_KEY, INVOCATION, ROOT, HookTestCase, hook_argv, spool_files

PREFIX = "seestack-hook: "
NOBODY = 65534
# (test, what, seconds): every hook run the tests time; printed by tearDownModule on request.
TIMINGS: List[Tuple[str, str, float]] = []


def tearDownModule() -> None:
    if os.environ.get("SEESTACK_FAULT_TIMINGS") and TIMINGS:
        width = max(len(what) for _, what, _ in TIMINGS)
        sys.stdout.write("hook durations under each fault:\n")
        for test, what, took in TIMINGS:
            sys.stdout.write(f"  {what:<{width}}  {took * 1000:7.0f} ms  ({test})\n")
        sys.stdout.flush()


class Hook:
    """One finished hook process: exit code, raw output, and how long it took."""

    def __init__(self, argv: Sequence[str], proc: subprocess.CompletedProcess, took: float) -> None:
        self.argv = list(argv)
        self.returncode = proc.returncode
        self.stdout_bytes: bytes = proc.stdout
        self.stderr_bytes: bytes = proc.stderr
        self.stdout = proc.stdout.decode("utf-8", "replace")
        self.stderr = proc.stderr.decode("utf-8", "replace")
        self.took = took

    @property
    def own_lines(self) -> List[str]:
        """The agent's own log lines (a job's stderr passed through by ``run`` is not ours)."""
        return [line for line in self.stderr.splitlines() if line.startswith(PREFIX)]

    @property
    def problems(self) -> List[str]:
        """The agent's error and warning lines."""
        return [line for line in self.own_lines if line.startswith((PREFIX + "error:", PREFIX + "warning:"))]

    def __repr__(self) -> str:
        return f"<{' '.join(self.argv[3:])} exit {self.returncode} in {self.took:.2f}s stderr={self.stderr[-1500:]!r}>"


def rfc3339_to_unix(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def free_port() -> Tuple[socket.socket, int]:
    """A loopback port that refuses connections: bound (so nobody else takes it) but not listening.
    Close the socket and bind a Receiver to the port to bring the "backend" up."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock, sock.getsockname()[1]


def tree(path: str) -> Dict[str, Tuple[int, int, float, bytes]]:
    """Every entry under ``path`` (links not followed): (mode, uid, mtime, content or link target)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            if os.path.islink(full):
                content = os.readlink(full).encode()
            elif os.path.isfile(full):
                with open(full, "rb") as f:
                    content = f.read()
            else:
                content = b""
            found[os.path.relpath(full, path)] = (st.st_mode, st.st_uid, st.st_mtime, content)
    return found


def accepted_bodies(receiver: Receiver, run_id: str) -> List[bytes]:
    """Bodies of the requests for ``run_id`` the receiver accepted (2xx; a 409 is a replay it already has)."""
    return [r.body for r in receiver.requests if r.headers.get("idempotency-key") == run_id and 200 <= r.status < 300]


class FaultCase(HookTestCase):
    """HookTestCase plus: hooks run with bytes output and timed, receivers, mounts, outside files."""

    def run_hook(self, *args: str, env: Optional[Dict[str, str]] = None, as_user: Optional[int] = None,
                 what: str = "", timeout: float = 60) -> Hook:
        full_env = dict(self.env, PYTHONDONTWRITEBYTECODE="1")
        full_env.update(env or {})
        argv = hook_argv(args)
        if as_user is not None:
            argv = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", "--clear-groups", *argv]
        started = time.monotonic()
        proc = subprocess.run(argv, cwd=ROOT, env=full_env, capture_output=True, timeout=timeout)
        hook = Hook(argv, proc, time.monotonic() - started)
        if what:
            TIMINGS.append((self.id().rsplit(".", 1)[-1], what, hook.took))
        return hook

    def assertOneProblem(self, hook: Hook, *words: str, code: int = 0) -> str:
        """Exit ``code``, no traceback, exactly one error/warning line of the agent, holding ``words``."""
        self.assertEqual(hook.returncode, code, hook)
        self.assertNotIn("Traceback", hook.stderr, hook)
        self.assertEqual(len(hook.problems), 1, hook)
        for word in words:
            self.assertIn(word, hook.problems[0], hook)
        return hook.problems[0]

    def assertQuiet(self, hook: Hook) -> None:
        self.assertEqual(hook.returncode, 0, hook)
        self.assertEqual(hook.problems, [], hook)
        self.assertNotIn("Traceback", hook.stderr, hook)

    def receiver(self, replies=(), port: int = 0) -> Receiver:
        receiver = Receiver(port=port, replies=replies, api_key=API_KEY).start()
        self.addCleanup(receiver.stop)
        return receiver

    def outside(self) -> str:
        """A directory elsewhere, holding a file and a subdirectory a hook must never touch."""
        path = tempfile.mkdtemp(prefix="seestack-outside-")
        self.addCleanup(shutil.rmtree, path, True)
        with open(os.path.join(path, "precious"), "wb") as f:
            f.write(b"precious bytes\n")
        os.mkdir(os.path.join(path, "dir"), 0o700)
        return path

    def spooled(self, data_dir: Optional[str] = None) -> List[Tuple[str, bytes]]:
        """(run id, body) of each spooled heartbeat, oldest first."""
        data_dir = data_dir or self.data_dir
        found = []
        for name in spool_files(data_dir):
            with open(os.path.join(data_dir, "spool", name), "rb") as f:
                key, _, body = f.read().partition(b"\n")
            found.append((key.decode(), body))
        return found

    # -- disk faults (root) --

    def require_root(self, what: str) -> None:
        if os.geteuid() != 0:
            self.skipTest(f"{what} needs root (mount)")
        if not shutil.which("mount"):
            self.skipTest(f"{what} needs mount(8)")

    def _mount(self, argv: List[str], path: str, cleanup: bool = True) -> None:
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            self.skipTest(f"cannot mount here ({' '.join(argv)}: {done.stderr.strip()})")
        if cleanup:
            self.addCleanup(self._umount, path)

    @staticmethod
    def _umount(path: str) -> None:
        if subprocess.run(["umount", path], capture_output=True).returncode:
            subprocess.run(["umount", "--lazy", path], capture_output=True)

    def full_tmpfs(self, path: str, size: str = "64k") -> str:
        """Mount a tiny tmpfs (mode 0700, as the agent wants its directories) at ``path`` and fill it."""
        self.require_root("a full disk")
        os.makedirs(path, 0o700, exist_ok=True)
        self._mount(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "seestack-fault", path], path)
        fd = os.open(os.path.join(path, ".filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        finally:
            os.close(fd)
        fd = os.open(os.path.join(path, ".probe"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with self.assertRaises(OSError):
                os.write(fd, b"x")
        finally:
            os.close(fd)
            os.unlink(os.path.join(path, ".probe"))
        return path

    def read_only(self, path: str) -> str:
        """Make ``path`` (created if missing, contents kept) a read-only bind mount of itself."""
        self.require_root("a read-only file system")
        os.makedirs(path, 0o700, exist_ok=True)
        self._mount(["mount", "--bind", path, path], path)
        self._mount(["mount", "-o", "remount,ro,bind", path], path, cleanup=False)
        with self.assertRaises(OSError):
            open(os.path.join(path, ".probe"), "wb").close()
        return path


# --- servers that misbehave ----------------------------------------------------------------

class ServerFaults(FaultCase):
    DEADLINE = 1.5

    def test_each_server_fault_then_recovery(self):
        """refused, hang, trickle, reset, 503, 500, 429 past the deadline: finish delivers no longer than the deadline, exits 0, spools; one flush then delivers it once, same body"""
        faults = {
            "refused": None,
            "hang": ["hang"] * 20,
            "trickle": ["trickle"] * 20,
            "reset": ["reset"] * 50,
            "503": [503] * 50,
            "500": [500] * 50,
            "429 Retry-After 30": ["429:30"] * 5,
        }

        def finish_under(name: str):
            """One fault's start + finish; the faults run at once, as each mostly waits out its deadline."""
            replies = faults[name]
            data_dir = os.path.join(self.dir, "data-" + name.split()[0])
            if replies is None:
                reserve, port = free_port()
                self.addCleanup(reserve.close)
                faulty, url = reserve, f"http://127.0.0.1:{port}"
            else:
                faulty = Receiver(replies=replies, api_key=API_KEY).start()
                self.addCleanup(faulty.stop)
                url = faulty.url
            # A per-request timeout far beyond the deadline: only the deadline may bound the hook.
            env = {"SEESTACK_ENDPOINT": url, "SEESTACK_DATA_DIR": data_dir, "SEESTACK_STATE_DIR": data_dir + "-state",
                   "SEESTACK_DEADLINE": str(self.DEADLINE), "SEESTACK_TIMEOUT": "5"}
            self.run_hook("start", "job", env=env)
            return data_dir, faulty, env, self.run_hook("finish", "job", "--status", "failed", env=env,
                                                        what=f"finish, server {name}")

        with ThreadPoolExecutor(len(faults)) as pool:
            finished = dict(zip(faults, pool.map(finish_under, faults)))
        for name, (data_dir, faulty, env, done) in finished.items():
            with self.subTest(name):
                self.assertOneProblem(done, "not delivered", "spooled")
                # The delivery itself, as the hook measured it, ends at the deadline; the whole
                # process gets room for interpreter start-up on a loaded machine, and still stays
                # far below the 5 s per-request timeout that must not bound it.
                took = re.search(r"attempt\(s\) in ([0-9.]+)s", done.stderr)
                self.assertIsNotNone(took, done)
                self.assertLessEqual(float(took[1]), self.DEADLINE + 0.25, done)
                self.assertLess(done.took, self.DEADLINE + 2.5, done)
                [(run_id, body)] = self.spooled(data_dir)
                if isinstance(faulty, Receiver):
                    faulty.stop()
                    tried = [r for r in faulty.requests if r.headers.get("idempotency-key") == run_id]
                    self.assertGreaterEqual(len(tried), 1)
                    self.assertEqual({r.body for r in tried}, {body}, "a retry changed the body")
                else:
                    faulty.close()
                # Recovery: a backend that answers; one flush delivers the spooled heartbeat once.
                good = self.receiver()
                env["SEESTACK_ENDPOINT"] = good.url
                flushed = self.run_hook("flush", env=env, what=f"flush after {name}")
                self.assertQuiet(flushed)
                self.assertEqual([r.body for r in good.requests], [body])
                self.assertEqual(accepted_bodies(good, run_id), [body])
                self.assertIsInstance(json.loads(body)["durationMs"], int)
                self.assertEqual(self.spooled(data_dir), [])

    def test_retry_after_then_recover_in_one_run(self):
        """503 then 429, each with Retry-After: 1, then 202: one finish delivers it, waiting as told, nothing spooled"""
        receiver = self.receiver(["503:1", "429:1", 202])
        env = {"SEESTACK_ENDPOINT": receiver.url, "SEESTACK_DEADLINE": "5"}
        self.run_hook("start", "job", env=dict(env, INVOCATION_ID=INVOCATION))
        done = self.run_hook("finish", "job", env=dict(env, INVOCATION_ID=INVOCATION, SERVICE_RESULT="success"),
                             what="finish, 503:1 then 429:1 then 202")
        self.assertQuiet(done)
        self.assertIn("delivered (HTTP 202)", done.stderr)
        first, second, third = receiver.requests
        self.assertEqual([r.status for r in receiver.requests], [503, 429, 202])
        self.assertEqual(first.body, second.body)
        self.assertEqual(second.body, third.body)
        self.assertEqual({r.headers["idempotency-key"] for r in receiver.requests}, {third.json()["runId"]})
        self.assertGreaterEqual(second.received_at - first.received_at, 0.95)
        self.assertGreaterEqual(third.received_at - second.received_at, 0.95)
        self.assertLess(done.took, 5 + 1.0)
        self.assertEqual(spool_files(self.data_dir), [])

    def test_never_answering_server_bounded(self):
        """a server that accepts and never answers: finish returns within deadline + 1 s with exit 0, for several deadlines"""
        def finish(deadline: str) -> Hook:
            receiver = self.receiver(["hang"] * 20)
            env = {"SEESTACK_ENDPOINT": receiver.url, "SEESTACK_DEADLINE": deadline, "SEESTACK_TIMEOUT": "30"}
            return self.run_hook("finish", "job", "--status", "success", env=env,
                                 what=f"finish, never-answering server, deadline {deadline}s")

        with ThreadPoolExecutor(2) as pool:  # at once: each only waits
            runs = dict(zip(("1", "3"), pool.map(finish, ("1", "3"))))
        for deadline, done in runs.items():
            with self.subTest(deadline=deadline):
                self.assertEqual(done.returncode, 0, done)
                self.assertLess(done.took, float(deadline) + 1.0, done)
                self.assertGreater(done.took, float(deadline) - 0.2, done)


class OutageThenRecovery(FaultCase):
    def test_three_runs_down_then_one_flush(self):
        """backend down for 3 runs, then up: one flush delivers exactly those 3, each once, byte-identical, original finishedAt"""
        reserve, port = free_port()
        self.addCleanup(reserve.close)
        self.env.update(SEESTACK_ENDPOINT=f"http://127.0.0.1:{port}", SEESTACK_DEADLINE="1")
        windows = []
        for i, result in enumerate(("success", "exit-code", "success")):
            invocation = f"{i + 1:032x}"
            started = self.run_hook("start", "nightly", env={"INVOCATION_ID": invocation})
            self.assertQuiet(started)
            before = time.time()
            done = self.run_hook("finish", "nightly", env={"INVOCATION_ID": invocation, "SERVICE_RESULT": result},
                                 what=f"finish {i + 1}/3, backend refusing")
            windows.append((before, time.time()))
            self.assertOneProblem(done, "spooled")
            self.assertLess(done.took, 1 + 1.0)
        spooled = self.spooled()
        self.assertEqual(len(spooled), 3)
        for (run_id, body), (before, after) in zip(spooled, windows):
            doc = json.loads(body)
            self.assertEqual(doc["runId"], run_id)
            finished = rfc3339_to_unix(doc["finishedAt"])
            self.assertTrue(before - 0.002 <= finished <= after + 0.002, (doc["finishedAt"], before, after))
            self.assertIsInstance(doc["durationMs"], int)

        reserve.close()
        receiver = self.receiver(port=port)
        time.sleep(1.1)  # so "sent later" and "finished then" are far enough apart to tell
        flush_at = time.time()
        flushed = self.run_hook("flush", what="flush of 3 after the outage")
        self.assertQuiet(flushed)
        self.assertEqual([r.body for r in receiver.requests], [body for _, body in spooled])
        for (run_id, body), request in zip(spooled, receiver.requests):
            self.assertEqual((request.status, request.error), (202, None))
            self.assertEqual(request.headers["idempotency-key"], run_id)
            self.assertLess(rfc3339_to_unix(request.json()["finishedAt"]), flush_at - 1.0)
            self.assertEqual(accepted_bodies(receiver, run_id), [body])
        self.assertEqual(len({r.headers["idempotency-key"] for r in receiver.requests}), 3)
        self.assertEqual(self.spooled(), [])
        again = self.run_hook("flush", what="second flush, spool empty")
        self.assertQuiet(again)
        self.assertEqual(len(receiver.requests), 3)


# --- disk faults ---------------------------------------------------------------------------

class DiskFaults(FaultCase):
    def setUp(self):
        super().setUp()
        self.backend = self.receiver()
        self.env["SEESTACK_ENDPOINT"] = self.backend.url

    def check_state_dir_broken(self, label: str, *words: str, as_user: Optional[int] = None) -> None:
        """With only the state directory broken: start says so in one line, finish still delivers."""
        env = {"INVOCATION_ID": INVOCATION}
        started = self.run_hook("start", "job", env=env, as_user=as_user, what=f"start, {label}")
        self.assertOneProblem(started, "start: job:", *words)
        self.assertLess(started.took, 1.5, started)
        done = self.run_hook("finish", "job", env=dict(env, SERVICE_RESULT="success"), as_user=as_user,
                             what=f"finish, {label}")
        self.assertOneProblem(done, "no start record")
        [request] = self.backend.wait_for(1)
        self.assertEqual((request.status, request.json()["status"], request.json()["durationMs"]), (202, "success", None))
        self.assertLess(done.took, 2.0, done)
        # The job's own view under `run`: exit code and output exactly its own.
        ran = self.run_hook("run", "job", "--", "sh", "-c", "echo out; echo err >&2; exit 3", as_user=as_user,
                            what=f"run, {label}")
        self.assertEqual((ran.returncode, ran.stdout), (3, "out\n"), ran)
        self.assertIn("err\n", ran.stderr)
        self.backend.wait_for(2)

    def test_full_state_dir(self):
        """state dir on a full tmpfs: start exits 0 with one 'No space left' line; finish delivers (durationMs null); no temp file left"""
        self.full_tmpfs(self.state_dir)
        self.check_state_dir_broken("state dir on a full tmpfs", "No space left on device")
        self.assertEqual(sorted(tree(self.state_dir)), [".filler", "job"])

    def test_read_only_state_dir(self):
        """state dir on a read-only mount: start exits 0 with one 'Read-only file system' line; finish delivers"""
        self.read_only(self.state_dir)
        self.check_state_dir_broken("state dir read-only", "Read-only file system")

    def test_state_dir_without_write_permission(self):
        """state dir that its owner cannot write (uid 65534 via setpriv as root, else chmod 500): one line, finish delivers"""
        if os.geteuid() == 0 and shutil.which("setpriv"):
            os.chmod(self.dir, 0o755)
            os.mkdir(self.state_dir, 0o500)
            os.mkdir(self.data_dir, 0o700)
            os.chown(self.state_dir, NOBODY, NOBODY)
            os.chown(self.data_dir, NOBODY, NOBODY)
            self.check_state_dir_broken("state dir without write permission", "Permission denied", as_user=NOBODY)
        elif os.geteuid() == 0:
            self.skipTest("as root, a directory without write permission needs setpriv to drop root")
        else:
            os.mkdir(self.state_dir, 0o500)
            self.check_state_dir_broken("state dir without write permission", "Permission denied")

    def test_read_only_state_dir_keeps_old_record(self):
        """a start record that cannot be removed (read-only state dir) is not reused: two finishes, two run ids, both accepted"""
        self.run_hook("start", "job")
        self.read_only(self.state_dir)
        bodies = []
        for i in range(2):
            done = self.run_hook("finish", "job", "--status", "success", what="finish, record on a read-only state dir")
            self.assertEqual(done.returncode, 0, done)
            bodies.append(self.backend.wait_for(i + 1)[-1])
        self.assertNotEqual(bodies[0].json()["runId"], bodies[1].json()["runId"],
                            "the second run reused the first run's id: the backend discards it as a replay")
        self.assertEqual([r.status for r in bodies], [202, 202])

    def check_data_dir_broken(self, label: str, words: str, as_user: Optional[int] = None) -> None:
        """With the data (spool) directory broken: delivery still works; a heartbeat that cannot be
        delivered or spooled is lost with one clear line; the job's exit code is its own."""
        # The in-progress record (for a reboot mid-run) cannot be written: said once, the job starts.
        self.assertOneProblem(self.run_hook("start", "job", as_user=as_user), "would go unreported", words)
        done = self.run_hook("finish", "job", "--status", "success", as_user=as_user, what=f"finish, {label}, backend up")
        self.assertOneProblem(done, "could not record the last heartbeat", words)
        self.assertEqual(self.backend.wait_for(1)[0].status, 202)
        reserve, port = free_port()
        self.addCleanup(reserve.close)
        down = {"SEESTACK_ENDPOINT": f"http://127.0.0.1:{port}", "SEESTACK_DEADLINE": "1"}
        self.assertOneProblem(self.run_hook("start", "job", as_user=as_user), "would go unreported", words)
        lost = self.run_hook("finish", "job", "--status", "failed", env=down, as_user=as_user,
                             what=f"finish, {label}, backend down")
        self.assertEqual(lost.returncode, 0, lost)
        self.assertNotIn("Traceback", lost.stderr)
        # Two faults at once (backend down, disk broken): the loss first, then at most the bookkeeping line.
        self.assertLessEqual(len(lost.problems), 2, lost)
        self.assertIn("could not be spooled, so it is lost", lost.problems[0], lost)
        self.assertIn(words, lost.problems[0], lost)
        self.assertLess(lost.took, 1 + 1.0)
        ran = self.run_hook("run", "job", "--", "sh", "-c", "echo out; exit 7", env=down, as_user=as_user,
                            what=f"run, {label}, backend down")
        self.assertEqual((ran.returncode, ran.stdout), (7, "out\n"), ran)
        self.assertEqual(self.spooled(), [])

    def test_full_data_dir(self):
        """data dir (spool, last) on a full tmpfs: delivered when the backend is up; lost with one clear line when down; run keeps its exit code"""
        self.full_tmpfs(self.data_dir)
        self.check_data_dir_broken("data dir on a full tmpfs", "No space left on device")
        self.assertEqual(sorted(tree(self.data_dir)), [".filler", "last", "running", "running/job", "spool"])

    def test_read_only_data_dir(self):
        """data dir on a read-only mount: delivered when up; lost with one clear line when down; run keeps its exit code"""
        os.makedirs(os.path.join(self.data_dir, "spool"), 0o700)
        os.makedirs(os.path.join(self.data_dir, "last"), 0o700)
        self.read_only(self.data_dir)
        self.check_data_dir_broken("data dir read-only", "Read-only file system")

    def test_data_dir_without_write_permission(self):
        """data dir its owner cannot write (uid 65534 via setpriv as root, else chmod 500): delivered when up, lost with one line when down"""
        os.makedirs(os.path.join(self.data_dir, "spool"), 0o500)
        os.makedirs(os.path.join(self.data_dir, "last"), 0o500)
        os.mkdir(self.state_dir, 0o700)
        if os.geteuid() == 0 and shutil.which("setpriv"):
            os.chmod(self.dir, 0o755)
            for path in (self.state_dir, self.data_dir, *(os.path.join(self.data_dir, d) for d in ("spool", "last"))):
                os.chown(path, NOBODY, NOBODY)
            os.chmod(self.data_dir, 0o500)
            self.check_data_dir_broken("data dir without write permission", "Permission denied", as_user=NOBODY)
        elif os.geteuid() == 0:
            self.skipTest("as root, a directory without write permission needs setpriv to drop root")
        else:
            os.chmod(self.data_dir, 0o500)
            self.check_data_dir_broken("data dir without write permission", "Permission denied")

    def test_read_only_spool_with_waiting_heartbeat(self):
        """a heartbeat spooled before the spool went read-only: delivered once, and the hooks say the spool cannot be emptied"""
        self.require_root("a read-only file system")
        reserve, port = free_port()
        self.addCleanup(reserve.close)
        self.run_hook("finish", "old", "--status", "failed",
                      env={"SEESTACK_ENDPOINT": f"http://127.0.0.1:{port}", "SEESTACK_DEADLINE": "0.5"})
        [(run_id, body)] = self.spooled()
        self.read_only(os.path.join(self.data_dir, "spool"))
        first = self.run_hook("flush", what="flush, read-only spool")
        self.assertEqual(first.returncode, 75, first)  # delivered, but still in the spool
        self.assertEqual(accepted_bodies(self.backend, run_id), [body])
        second = self.run_hook("flush", what="second flush, read-only spool")
        self.assertEqual(second.returncode, 75, second)
        self.assertEqual(accepted_bodies(self.backend, run_id), [body])
        # The file could not be removed: someone must be told, once per run, why it stays.
        self.assertTrue(any("Read-only file system" in line for line in first.problems), first)


# --- bad configuration and corrupt files ---------------------------------------------------

class ConfigFaults(FaultCase):
    CONFIGS = {
        "timeout not a number": b"[seestack]\ntimeout = soon\n",
        "negative deadline": b"[seestack]\ndeadline = -1\n",
        "relative state_dir": b"[seestack]\nstate_dir = run/seestack\n",
        "bad count": b"[seestack]\nspool_max_files = many\n",
        "not INI": b"endpoint: [unclosed\n[seestack\n",
        "no section": b"endpoint = http://127.0.0.1:9\n",
        "binary with NULs": b"\x00\x01\xff\xfe[seestack]\x00\nendpoint=\x00\n",
        "bad endpoint": b"[seestack]\nendpoint = ftp://example.com\n",
    }

    def setUp(self):
        super().setUp()
        self.backend = self.receiver()
        self.env["SEESTACK_ENDPOINT"] = self.backend.url

    def check_config(self, label: str, env: Dict[str, str]) -> None:
        started = self.run_hook("start", "job", env=env, what=f"start, config: {label}")
        self.assertEqual(started.returncode, 0, started)
        self.assertLessEqual(len(started.problems), 1, started)
        self.assertNotIn("Traceback", started.stderr)
        done = self.run_hook("finish", "job", "--status", "success", env=env, what=f"finish, config: {label}")
        self.assertOneProblem(done, "the job is not affected")
        ran = self.run_hook("run", "job", "--", "sh", "-c", "echo out; echo err >&2; exit 3", env=env,
                            what=f"run, config: {label}")
        self.assertEqual((ran.returncode, ran.stdout), (3, "out\n"), ran)
        self.assertIn("err\n", ran.stderr)
        self.assertOneProblem(ran, "runs unmonitored", code=3)

    def test_bad_config_files(self):
        """each bad config file: start and finish exit 0 with at most one clear line, run runs the job unmonitored with its exit code"""
        for label, content in self.CONFIGS.items():
            with self.subTest(label):
                path = os.path.join(self.dir, "seestack.conf")
                with open(path, "wb") as f:
                    f.write(content)
                os.chmod(path, 0o600)
                self.check_config(label, {"SEESTACK_CONFIG": path, "SEESTACK_ENDPOINT": ""})
        self.assertEqual(self.backend.requests, [])

    def test_missing_config_file(self):
        """a config file named but missing: one clear line naming it, exit 0, the job unaffected"""
        missing = os.path.join(self.dir, "nope.conf")
        self.check_config("missing", {"SEESTACK_CONFIG": missing})
        done = self.run_hook("finish", "job", "--status", "success", env={"SEESTACK_CONFIG": missing})
        self.assertIn(missing, done.problems[0])

    def test_bad_environment_values(self):
        """a bad SEESTACK_TIMEOUT or SEESTACK_STATE_DIR: one line naming the variable, exit 0, the job unaffected"""
        for var, value in (("SEESTACK_TIMEOUT", "0"), ("SEESTACK_DEADLINE", "forever"), ("SEESTACK_STATE_DIR", "rel")):
            with self.subTest(var):
                self.check_config(f"${var}={value}", {var: value})
                done = self.run_hook("finish", "job", "--status", "success", env={var: value})
                self.assertIn(var, done.problems[0])


class CorruptFiles(FaultCase):
    def test_truncated_record_and_spool_file(self):
        """a truncated start record: one line, heartbeat with durationMs null; a truncated spool file: one line, dropped, the good one sent"""
        backend = self.receiver()
        self.env["SEESTACK_ENDPOINT"] = backend.url
        self.run_hook("start", "job", env={"INVOCATION_ID": INVOCATION})
        record = os.path.join(self.state_dir, "job", INVOCATION + ".json")
        with open(record, "r+b") as f:
            f.truncate(os.path.getsize(record) // 2)
        done = self.run_hook("finish", "job", env={"INVOCATION_ID": INVOCATION, "SERVICE_RESULT": "success"},
                             what="finish, truncated start record")
        self.assertOneProblem(done, "corrupt start record")
        self.assertIsNone(backend.wait_for(1)[0].json()["durationMs"])
        self.assertFalse(os.path.exists(record))

        reserve, port = free_port()
        self.addCleanup(reserve.close)
        down = {"SEESTACK_ENDPOINT": f"http://127.0.0.1:{port}", "SEESTACK_DEADLINE": "0.5"}
        for _ in range(2):
            self.run_hook("finish", "job", "--status", "failed", env=down)
        (bad_id, _), (good_id, good_body) = self.spooled()
        bad = os.path.join(self.data_dir, "spool", spool_files(self.data_dir)[0])
        with open(bad, "r+b") as f:
            f.truncate(20)  # inside the run id: not even the Idempotency-Key is whole
        flushed = self.run_hook("flush", what="flush, one truncated spool file")
        self.assertOneProblem(flushed, "corrupt spooled heartbeat")
        self.assertEqual(accepted_bodies(backend, good_id), [good_body])
        self.assertEqual(len(backend.requests), 2)
        self.assertEqual(self.spooled(), [])


# --- hostile names -------------------------------------------------------------------------

class HostileNames(FaultCase):
    SLUGS = ("../../etc/passwd", "a/b", "x" * 300, "café", "", "..", "job\nname", "/abs")

    def setUp(self):
        super().setUp()
        self.backend = self.receiver()
        self.env["SEESTACK_ENDPOINT"] = self.backend.url
        # Deep, so that '../..' from the state or data dir still lands inside the walked temp dir.
        self.state_dir = os.path.join(self.dir, "deep", "er", "state")
        self.data_dir = os.path.join(self.dir, "deep", "er", "data")
        self.env.update(SEESTACK_STATE_DIR=self.state_dir, SEESTACK_DATA_DIR=self.data_dir)
        os.makedirs(os.path.join(self.dir, "deep", "er"), 0o700)

    def test_hostile_slugs(self):
        """../../etc/passwd, a/b, 300 chars, café, empty, '..', a newline, '/abs': hooks exit 0 with one line, nothing written anywhere"""
        with open("/etc/passwd", "rb") as f:
            passwd = (f.read(), os.stat("/etc/passwd").st_mtime)
        before = tree(self.dir)
        for slug in self.SLUGS:
            with self.subTest(slug=slug[:40]):
                started = self.run_hook("start", slug, env={"INVOCATION_ID": INVOCATION})
                self.assertOneProblem(started, "invalid slug")
                for env in ({"INVOCATION_ID": INVOCATION, "SERVICE_RESULT": "success"}, {}):
                    done = self.run_hook("finish", "--status", "success", slug, env=env, what=f"finish, slug {slug[:24]!r}")
                    self.assertOneProblem(done, "invalid slug")
                    self.assertLess(done.took, 1.5)
        self.assertEqual(tree(self.dir), before)
        with open("/etc/passwd", "rb") as f:
            self.assertEqual((f.read(), os.stat("/etc/passwd").st_mtime), passwd)
        self.assertEqual(self.backend.requests, [])

    def test_slug_starting_with_dash(self):
        """'-x' matches ^[a-z0-9-]+$: after '--' it is recorded and reported, and writes only in the state and data dirs"""
        before = tree(self.dir)
        started = self.run_hook("start", "--", "-x")
        self.assertQuiet(started)
        done = self.run_hook("finish", "--status", "success", "--", "-x")
        self.assertQuiet(done)
        self.assertEqual([(r.status, r.json()["slug"]) for r in self.backend.requests], [(202, "-x")])
        self.assertIsInstance(self.backend.requests[0].json()["durationMs"], int)
        new = [p for p in tree(self.dir) if p not in before]
        self.assertTrue(new and all(p.startswith(("deep/er/state", "deep/er/data")) for p in new), new)

    def test_slug_starting_with_dash_as_drop_in_passes_it(self):
        """'enable --slug=-x' writes 'start --unit U -- -x' / 'finish --unit U -- -x': those command lines record and report the run"""
        env = {"INVOCATION_ID": INVOCATION}
        started = self.run_hook("start", "--unit", "dash.service", "--", "-x", env=env)
        self.assertEqual(started.returncode, 0, started)
        done = self.run_hook("finish", "--unit", "dash.service", "--", "-x", env=dict(env, SERVICE_RESULT="success"))
        self.assertEqual(done.returncode, 0, done)
        self.assertEqual([r.json()["slug"] for r in self.backend.requests], ["-x"],
                         f"the drop-in's own command line for slug '-x' reports nothing: {done.stderr[-300:]!r}")

    def test_hostile_invocation_ids(self):
        """INVOCATION_ID of ../../x, a/b, 40 chars, non-ASCII, upper case: exit 0, one line, nothing outside the state dir; finish still reports the run"""
        before = tree(self.dir)
        ids = ("../../../victim", "a/b", "f" * 40, "café" * 8, "0123456789ABCDEF0123456789ABCDEF", ".." + "0" * 30)
        unreported = []
        for invocation in ids:
            started = self.run_hook("start", "job", env={"INVOCATION_ID": invocation})
            self.assertOneProblem(started, "INVOCATION_ID")
            sent = len(self.backend.requests)
            done = self.run_hook("finish", "job", env={"INVOCATION_ID": invocation, "SERVICE_RESULT": "success"},
                                 what=f"finish, INVOCATION_ID {invocation[:24]!r}")
            self.assertEqual(done.returncode, 0, done)
            self.assertLessEqual(len(done.problems), 1, done)
            self.assertNotIn("Traceback", done.stderr)
            new = [p for p in tree(self.dir) if p not in before]
            self.assertTrue(all(p.startswith(("deep/er/state", "deep/er/data")) for p in new), new)
            self.assertFalse(os.path.lexists(os.path.join(self.dir, "victim")))
            if len(self.backend.requests) == sent:
                unreported.append((invocation[:40], done.problems))
            else:
                self.assertIsNone(self.backend.requests[-1].json()["durationMs"])
        # The run still ended: the backend must hear of it (duration unknown), as with any other unusable record.
        self.assertEqual(unreported, [], "finish sent no heartbeat for these INVOCATION_IDs")


# --- planted links and foreign files -------------------------------------------------------

class PlantedFiles(FaultCase):
    def setUp(self):
        super().setUp()
        self.backend = self.receiver()
        self.env["SEESTACK_ENDPOINT"] = self.backend.url
        self.elsewhere = self.outside()
        self.target = os.path.join(self.elsewhere, "precious")
        for path in (self.state_dir, self.data_dir, os.path.join(self.data_dir, "spool"),
                     os.path.join(self.data_dir, "last")):
            os.makedirs(path, 0o700, exist_ok=True)

    def assertOutsideUntouched(self, before) -> None:
        self.assertEqual(tree(self.elsewhere), before)

    def spool_name(self, run_id: str, finished_ms: int = 1) -> str:
        return os.path.join(self.data_dir, "spool", f"{finished_ms:013d}-{run_id}.heartbeat")

    def test_symlinks_in_state_dir(self):
        """links planted as records (systemd and manual) and as a slug directory: start/finish never write through them, and still report"""
        os.makedirs(os.path.join(self.state_dir, "rec"), 0o700)
        os.symlink(self.target, os.path.join(self.state_dir, "rec", INVOCATION + ".json"))
        os.symlink(self.target, os.path.join(self.state_dir, "rec", "manual.json"))
        os.symlink(os.path.join(self.elsewhere, "dir"), os.path.join(self.state_dir, "slugdir"))
        before = tree(self.elsewhere)
        for slug in ("rec", "slugdir"):
            for env in ({"INVOCATION_ID": INVOCATION}, {}):
                started = self.run_hook("start", slug, env=env, what="start, planted symlink")
                self.assertEqual(started.returncode, 0, started)
                self.assertOutsideUntouched(before)
                done = self.run_hook("finish", slug, "--status", "success", env=dict(env, SERVICE_RESULT="success"),
                                     what="finish, planted symlink")
                self.assertEqual(done.returncode, 0, done)
                self.assertLessEqual(len(done.problems), 1, done)
                self.assertOutsideUntouched(before)
        self.assertEqual([r.status for r in self.backend.requests], [202] * 4)
        # The record links were replaced by real records on start and those consumed by finish.
        self.assertEqual(os.listdir(os.path.join(self.state_dir, "rec")), [])
        self.assertTrue(os.path.islink(os.path.join(self.state_dir, "slugdir")))

    def test_symlinks_in_data_dir(self):
        """links planted in the spool (as a heartbeat), as last/SLUG.json, and as the spool and last directories: nothing sent from or written through them"""
        run_id = "6f1c2a4e-8b9d-4c3e-9f1a-2b3c4d5e6f70"
        valid = (b'{"slug":"stolen","status":"success","durationMs":1,"runId":"%s","finishedAt":"2026-01-01T00:00:00.000Z",'
                 b'"sdk":{"name":"seestack-systemd","version":"0.1.0"}}' % run_id.encode())
        with open(self.target, "wb") as f:
            f.write(run_id.encode() + b"\n" + valid)  # a valid heartbeat: only the link check can refuse it
        os.symlink(self.target, self.spool_name(run_id))
        os.symlink(self.target, os.path.join(self.data_dir, "last", "job.json"))
        before = tree(self.elsewhere)
        self.assertQuiet(self.run_hook("start", "job"))
        flushed = self.run_hook("flush", what="flush, symlink planted in spool")
        self.assertEqual(flushed.returncode, 0, flushed)
        done = self.run_hook("finish", "job", "--status", "success", what="finish, symlink planted as last/job.json")
        self.assertQuiet(done)
        self.assertOutsideUntouched(before)
        self.assertEqual([r.json()["slug"] for r in self.backend.requests], ["job"])
        self.assertFalse(os.path.islink(os.path.join(self.data_dir, "last", "job.json")))

        # The spool and last directories themselves replaced by links to elsewhere, backend down.
        for name in ("spool", "last"):
            shutil.rmtree(os.path.join(self.data_dir, name))
            os.symlink(os.path.join(self.elsewhere, "dir"), os.path.join(self.data_dir, name))
        before = tree(self.elsewhere)
        reserve, port = free_port()
        self.addCleanup(reserve.close)
        down = {"SEESTACK_ENDPOINT": f"http://127.0.0.1:{port}", "SEESTACK_DEADLINE": "0.5"}
        self.assertQuiet(self.run_hook("start", "job"))
        lost = self.run_hook("finish", "job", "--status", "failed", env=down, what="finish, spool dir is a symlink")
        self.assertEqual(lost.returncode, 0, lost)
        self.assertIn("could not be spooled", lost.problems[0], lost)
        self.assertIn("symlink", lost.problems[0], lost)
        self.assertOutsideUntouched(before)
        self.assertEqual(self.run_hook("flush").returncode, 0)
        self.assertOutsideUntouched(before)

    def test_foreign_owned_files(self):
        """as root: a spool file, a slug dir and a spool dir owned by uid 65534 are neither used nor written through"""
        if os.geteuid() != 0:
            self.skipTest("planting files of another owner needs root")
        run_id = "6f1c2a4e-8b9d-4c3e-9f1a-2b3c4d5e6f71"
        body = (b'{"slug":"forged","status":"success","durationMs":1,"runId":"%s","finishedAt":"2026-01-01T00:00:00.000Z",'
                b'"sdk":{"name":"seestack-systemd","version":"0.1.0"}}' % run_id.encode())
        forged = self.spool_name(run_id)
        with open(forged, "wb") as f:
            f.write(run_id.encode() + b"\n" + body)
        os.chmod(forged, 0o600)
        os.chown(forged, NOBODY, NOBODY)
        flushed = self.run_hook("flush", what="flush, foreign-owned spool file")
        self.assertOneProblem(flushed, "not a spooled heartbeat of ours")
        self.assertEqual(self.backend.requests, [])

        slug_dir = os.path.join(self.state_dir, "job")
        os.mkdir(slug_dir, 0o700)
        os.chown(slug_dir, NOBODY, NOBODY)
        started = self.run_hook("start", "job", what="start, foreign-owned slug dir")
        self.assertOneProblem(started, "owned by uid 65534")
        self.assertEqual(os.listdir(slug_dir), [])
        done = self.run_hook("finish", "job", "--status", "success", what="finish, foreign-owned slug dir")
        self.assertOneProblem(done, "owned by uid 65534")
        self.assertEqual([r.json()["slug"] for r in self.backend.requests], ["job"])

        spool = os.path.join(self.data_dir, "spool")
        os.chown(spool, NOBODY, NOBODY)
        reserve, port = free_port()
        self.addCleanup(reserve.close)
        lost = self.run_hook("finish", "job", "--status", "failed",
                             env={"SEESTACK_ENDPOINT": f"http://127.0.0.1:{port}", "SEESTACK_DEADLINE": "0.5"},
                             what="finish, foreign-owned spool dir, backend down")
        self.assertEqual(lost.returncode, 0, lost)
        self.assertIn("owned by uid 65534", lost.problems[0])
        self.assertEqual(os.listdir(spool), [])


# --- messages ------------------------------------------------------------------------------

class Messages(FaultCase):
    def setUp(self):
        super().setUp()
        self.backend = self.receiver()
        self.env["SEESTACK_ENDPOINT"] = self.backend.url

    def assertCleanMessage(self, request) -> str:
        self.assertEqual((request.status, request.error), (202, None))
        text = request.body.decode("utf-8")  # strict: the body is valid UTF-8
        self.assertNotIn("\\u0000", text)
        message = request.json()["message"]
        self.assertLessEqual(len(message.encode("utf-8")), MESSAGE_LIMIT_BYTES)
        self.assertNotIn("\x00", message)
        self.assertNotIn("\ufffe", message)
        return message

    def test_one_megabyte_of_stderr(self):
        """run: a job writing 1 MB to stderr (one line, then many lines) keeps its output and exit code; the message is <= 4096 bytes"""
        scripts = {
            "one 1 MB line": "import sys; sys.stderr.buffer.write(b'x' * (1 << 20) + b'END'); sys.exit(3)",
            "20,200 lines": "import sys; sys.stderr.buffer.write(b''.join(b'line %05d %s\\n' % (i, b'y' * 40) "
                            "for i in range(20200)) + b'LAST'); sys.exit(3)",
        }
        for i, (label, script) in enumerate(scripts.items()):
            with self.subTest(label):
                ran = self.run_hook("run", "job", "--", sys.executable, "-c", script, what=f"run, job writes {label}")
                self.assertEqual(ran.returncode, 3, ran.stderr[-300:])
                self.assertGreaterEqual(len(ran.stderr_bytes), 1 << 20)
                self.assertIn(b"x" * (1 << 20) if i == 0 else b"line 00000 ", ran.stderr_bytes)
                message = self.assertCleanMessage(self.backend.wait_for(i + 1)[-1])
                self.assertTrue(message.startswith("exited with status 3"), message[:80])
                if i == 0:  # one line over 4096 bytes: cut, marked at the end as the contract says
                    self.assertTrue(message.endswith("\n…[truncated]"), message[-80:])
                    self.assertTrue(message[: -len("\n…[truncated]")].endswith("END"), message[-80:])
                else:  # the last output_lines lines fit whole: nothing cut, no mark
                    self.assertTrue(message.endswith("LAST"), message[-80:])
                self.assertLess(ran.took, 5.0)

    def test_invalid_utf8_and_nuls(self):
        """run: stderr with invalid UTF-8, NULs, escapes and lone surrogates passes through byte for byte; the message is valid UTF-8 without NUL"""
        raw = (b"\x00" * 5000 + b"\nbad \xff\xfe byte\n\x00nul\x00 in line\n\xc3\x28 broken pair \xed\xa0\x80 surrogate\n"
               b"\x1b[31mred\x1b[0m \xf0\x9f\x98 cut emoji\nlast \xe9t\xe9\n")
        script = f"import sys; sys.stderr.buffer.write({raw!r}); sys.exit(1)"
        ran = self.run_hook("run", "job", "--", sys.executable, "-c", script, what="run, invalid UTF-8 and NULs")
        self.assertEqual(ran.returncode, 1)
        self.assertIn(raw, ran.stderr_bytes)
        message = self.assertCleanMessage(self.backend.wait_for(1)[0])
        self.assertIn("nul in line", message)
        self.assertIn("last \ufffdt\ufffd", message)
        self.assertNotIn("\x1b", message)

    def test_ping_message_invalid_utf8_argv(self):
        """ping --message with invalid UTF-8 bytes in argv and 120 KiB of text: accepted, truncated, valid UTF-8"""
        for i, message in enumerate((b"caf\xe9 \xff\xfe done", ("é" * 60000).encode() + b"\xff")):
            with self.subTest(len(message)):
                argv = [sys.executable.encode(), b"-m", b"seestack_systemd", b"ping", b"job", b"--status", b"failed",
                        b"--message", message]
                done = subprocess.run(argv, cwd=ROOT, env=dict(self.env), capture_output=True, timeout=30)
                self.assertEqual(done.returncode, 0, done.stderr)
                sent = self.assertCleanMessage(self.backend.wait_for(i + 1)[-1])
                if len(message) > MESSAGE_LIMIT_BYTES:
                    self.assertTrue(sent.endswith(TRUNCATION_MARK))

    def test_library_one_megabyte_message(self):
        """finish_job with a 1 MB message holding NULs, lone surrogates and control characters: delivered, <= 4096 bytes, valid"""
        self.addCleanup(api.configure)
        api.configure(endpoint=self.backend.url, api_key=API_KEY, deadline=3, config="/dev/null",
                      data_dir=self.data_dir, state_dir=self.state_dir)
        message = ("\x00\udcff\x1b[2J€" * 50000 + "x" * (1 << 20))[: 1 << 20]
        handle = api.start_job("job")
        started = time.monotonic()
        self.assertTrue(api.finish_job(handle, "failed", message))
        TIMINGS.append((self.id().rsplit(".", 1)[-1], "library finish_job, 1 MB message", time.monotonic() - started))
        sent = self.assertCleanMessage(self.backend.wait_for(1)[0])
        self.assertTrue(sent.endswith(TRUNCATION_MARK))
        self.assertNotIn("\udcff", sent)


if __name__ == "__main__":
    unittest.main()
