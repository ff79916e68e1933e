"""No run goes unreported: the heartbeat is in the spool before its first attempt, so a
sender killed mid-delivery (SIGKILL: nothing of ours runs) leaves it for the next flush,
which delivers it once; SIGTERM stops a hook's sending and keeps it; a flush never sends
what a live sender still holds; a run an earlier boot cut off is reported as interrupted.

Real processes and real signals, against a scripted raw-byte server: one that reads the
request and never answers (a silent backend), then one that answers 202.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import List

from seestack_systemd import inflight
from seestack_systemd.delivery import policy

from ..rawserver import RawServer, response
from ..support import API_KEY, ROOT, HookTestCase, hook_argv, spool_files

ACCEPTED = response("202 Accepted", b'{"accepted": true}')


def silent(conn: socket.socket) -> None:
    """Read the request, then never answer: the sender waits until it is stopped."""
    conn.settimeout(30)
    try:
        conn.recv(1)
    except OSError:
        pass


class Durability(HookTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.server = RawServer([silent, ACCEPTED], repeat_last=True)
        self.addCleanup(self.server.close)
        self.env.update(SEESTACK_ENDPOINT=self.server.url, SEESTACK_DEADLINE="20", SEESTACK_TIMEOUT="20")

    def spawn(self, argv: List[str], **env: str) -> subprocess.Popen:
        full = dict(self.env, **env)
        proc = subprocess.Popen(argv, cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def wait_sending(self, proc: subprocess.Popen) -> None:
        """Until the silent backend holds the sender's request (the sender now waits on it)."""
        deadline = time.monotonic() + 20
        while not self.server.requests:
            if proc.poll() is not None:
                self.fail(f"the sender ended early: {proc.communicate()}")
            self.assertLess(time.monotonic(), deadline, "the sender never reached the backend")
            time.sleep(0.02)

    def spooled(self) -> List[bytes]:
        """Each spooled file's content (Idempotency-Key line, then the body)."""
        spool = os.path.join(self.data_dir, "spool")
        out = []
        for name in spool_files(self.data_dir):
            with open(os.path.join(spool, name), "rb") as f:
                out.append(f.read())
        return out

    def running(self) -> List[str]:
        """SLUG/RUNID.json of each in-progress record."""
        top = inflight.running_dir(self.data_dir)
        return sorted(os.path.join(slug, name) for slug in (os.listdir(top) if os.path.isdir(top) else ())
                      for name in os.listdir(os.path.join(top, slug)))

    def flush_delivers_once(self, sent: bytes) -> None:
        """The next flush sends the heartbeat the killed sender had sent, byte for byte, once."""
        [held] = self.spooled()
        key, _, body = held.partition(b"\n")
        self.assertEqual(body, sent)
        done = self.hook("flush")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual([b for _, b in self.server.requests], [sent, sent])
        self.assertIn(b"idempotency-key: " + key, self.server.requests[1][0].lower())
        self.assertEqual(self.spooled(), [])
        self.assertEqual(self.running(), [], "the run's in-progress record outlived its delivery")
        self.assertEqual(self.hook("flush").returncode, 0)
        self.assertEqual(len(self.server.requests), 2, "delivered twice")

    def test_finish_sigkilled_mid_delivery(self):
        """finish SIGKILLed while it waits on a silent backend: the next flush delivers its heartbeat once"""
        self.assertEqual(self.hook("start", "job").returncode, 0)
        self.assertEqual(len(self.running()), 1)
        proc = self.spawn(hook_argv(["finish", "job", "--status", "failed"]))
        self.wait_sending(proc)
        proc.kill()
        proc.wait()
        self.flush_delivers_once(self.server.requests[0][1])

    def test_run_sigkilled_mid_delivery(self):
        """run SIGKILLed while it delivers: the next flush delivers the command's heartbeat once"""
        proc = self.spawn(hook_argv(["run", "job", "--", "sh", "-c", "echo done"]))
        self.wait_sending(proc)
        proc.kill()
        proc.wait()
        sent = self.server.requests[0][1]
        self.assertEqual(json.loads(sent)["message"], "done")
        self.flush_delivers_once(sent)

    def test_library_sigkilled_mid_delivery(self):
        """a library finish_job SIGKILLed while it delivers: the next flush delivers it once"""
        code = ("from seestack_systemd import start_job, finish_job\n"
                "finish_job(start_job('lib-job'), 'success', 'Processed 1,842 records')\n")
        proc = self.spawn([sys.executable, "-c", code])
        self.wait_sending(proc)
        proc.kill()
        proc.wait()
        sent = self.server.requests[0][1]
        self.assertEqual(json.loads(sent)["slug"], "lib-job")
        self.flush_delivers_once(sent)

    def test_sigterm_keeps_and_exits_zero(self):
        """SIGTERM to finish mid-delivery: exit 0 at once, one log line, the heartbeat kept for the flush"""
        self.assertEqual(self.hook("start", "job").returncode, 0)
        proc = self.spawn(hook_argv(["finish", "job", "--status", "success"]))
        self.wait_sending(proc)
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        self.assertLess(time.monotonic() - stopped, 2.0)
        self.assertEqual(proc.returncode, 0, err)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertIn("stopped by SIGTERM", lines[0])
        self.assertIn("spooled in", lines[0])
        self.assertNotIn(API_KEY, err)
        self.flush_delivers_once(self.server.requests[0][1])

    def test_empty_spool_file_does_not_hide_an_interrupted_run(self):
        """an earlier boot's record beside an empty spool file of its run (what a power loss can leave of an unsynced write): the interrupted run is still reported"""
        self.assertEqual(self.hook("start", "job").returncode, 0)
        [name] = self.running()
        run_id = name.split("/")[1][:-len(".json")]
        path = os.path.join(inflight.running_dir(self.data_dir), name)
        with open(path) as f:
            text = f.read()
        with open(path, "w") as f:
            f.write(text.replace(json.loads(text)["bootId"], "0" * 8 + "-0000-4000-8000-" + "0" * 12))
        spool = os.path.join(self.data_dir, "spool")
        os.makedirs(spool, 0o700, exist_ok=True)
        open(os.path.join(spool, f"{int(time.time() * 1000):013d}-{run_id}.heartbeat"), "wb").close()
        backend = RawServer([])
        self.addCleanup(backend.close)
        self.env["SEESTACK_ENDPOINT"] = backend.url
        self.hook("flush")
        self.hook("flush")
        sent = [json.loads(body) for _, body in backend.requests]
        self.assertEqual([(d["runId"], d["status"]) for d in sent], [(run_id, "failed")])
        self.assertEqual(self.running(), [])

    def test_flush_skips_what_a_live_sender_holds(self):
        """a flush while finish still waits on its heartbeat does not send it too"""
        self.assertEqual(self.hook("start", "job").returncode, 0)
        proc = self.spawn(hook_argv(["finish", "job", "--status", "success"]))
        self.wait_sending(proc)
        self.assertEqual(len(self.spooled()), 1, "not written ahead")
        done = self.hook("flush")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(len(self.server.requests), 1, "the flush sent what a live sender holds")
        self.assertEqual(len(self.spooled()), 1)
        proc.kill()
        proc.wait()
        self.flush_delivers_once(self.server.requests[0][1])

    def test_run_of_an_earlier_boot_is_reported_interrupted(self):
        """an in-progress record of an earlier boot becomes one failed 'interrupted' heartbeat; this boot's is untouched"""
        self.assertEqual(self.hook("start", "old").returncode, 0)
        [old] = self.running()
        path = os.path.join(inflight.running_dir(self.data_dir), old)
        with open(path) as f:
            record = json.load(f)
        # What a reboot leaves: the record, written under another boot id.
        text = open(path).read().replace(record["bootId"], "0" * 8 + "-0000-4000-8000-" + "0" * 12)
        with open(path, "w") as f:
            f.write(text)
        self.assertEqual(self.hook("start", "now").returncode, 0)
        backend = RawServer([])  # answers 202
        self.addCleanup(backend.close)
        self.env["SEESTACK_ENDPOINT"] = backend.url
        done = self.hook("flush")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("old: interrupted: the host rebooted or lost power during the run", done.stderr)
        [(head, body)] = backend.requests
        sent = json.loads(body)
        self.assertEqual((sent["slug"], sent["status"], sent["runId"], sent["durationMs"]),
                         ("old", "failed", record["runId"], None))
        self.assertTrue(sent["message"].startswith("interrupted: the host rebooted or lost power during the run"))
        self.assertIn(b"idempotency-key: " + record["runId"].encode(), head.lower())
        self.assertEqual([n.split("/")[0] for n in self.running()], ["now"], "this boot's run was touched")
        self.assertEqual(self.spooled(), [])
        self.hook("flush")
        self.assertEqual(len(backend.requests), 1, "the interrupted run was reported twice")


class Overlap(HookTestCase):
    """A run that starts while another run of its job still goes says so; one after it does not."""

    def setUp(self) -> None:
        super().setUp()
        self.server = RawServer([])  # answers 202
        self.addCleanup(self.server.close)
        self.env["SEESTACK_ENDPOINT"] = self.server.url

    def sent(self) -> List[dict]:
        return [json.loads(body) for _, body in self.server.requests]

    def test_overlapping_hook_runs(self):
        """two starts of one slug before either finishes: the second run's failed heartbeat names the first; later runs do not"""
        first, second = "1" * 32, "2" * 32
        self.assertEqual(self.hook("start", "job", env={"INVOCATION_ID": first}).returncode, 0)
        [record] = [json.load(open(os.path.join(inflight.running_dir(self.data_dir), "job", n)))
                    for n in os.listdir(os.path.join(inflight.running_dir(self.data_dir), "job"))]
        self.assertEqual(self.hook("start", "job", env={"INVOCATION_ID": second}).returncode, 0)
        done = self.hook("finish", "job", env={"INVOCATION_ID": second, "SERVICE_RESULT": "exit-code",
                                               "EXIT_CODE": "exited", "EXIT_STATUS": "3"})
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(self.hook("finish", "job", env={"INVOCATION_ID": first, "SERVICE_RESULT": "success"})
                         .returncode, 0)
        overlapped, alone = self.sent()
        lines = overlapped["message"].split("\n")
        self.assertEqual(lines[0], "exit-code: exited with status 3")
        since = inflight_since(record["startedAt"])
        self.assertEqual(lines[1], f"started while 1 earlier run of this job was still running (since {since})")
        self.assertEqual(overlapped["source"]["overlap"], {"earlierRuns": 1, "since": since})
        self.assertNotIn("overlap", alone.get("source", {}))
        self.assertEqual(self.hook("start", "job", env={"INVOCATION_ID": first}).returncode, 0)
        self.assertEqual(self.hook("finish", "job", env={"INVOCATION_ID": first, "SERVICE_RESULT": "success"})
                         .returncode, 0)
        self.assertNotIn("overlap", self.sent()[2].get("source", {}))

    def test_leftover_of_the_same_unit_is_no_overlap(self):
        """a record of the same unit left on this boot (its finish was killed early) is no overlap: it is reported as a cut-off run"""
        for invocation in ("1" * 32, "2" * 32):
            self.assertEqual(self.hook("start", "--unit", "backup.service", "--", "job",
                                       env={"INVOCATION_ID": invocation}).returncode, 0)
        done = self.hook("finish", "--unit", "backup.service", "--", "job",
                         env={"INVOCATION_ID": "2" * 32, "SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited",
                              "EXIT_STATUS": "1"})
        self.assertEqual(done.returncode, 0, done.stderr)
        cut, sent = self.sent()
        self.assertEqual((cut["status"], cut["durationMs"]), ("failed", None))
        self.assertTrue(cut["message"].startswith("interrupted: the run's report was cut off"), cut["message"])
        self.assertNotEqual(cut["runId"], sent["runId"])
        self.assertNotIn("overlap", sent["source"])
        self.assertNotIn("started while", sent["message"])
        self.assertFalse(os.listdir(os.path.join(inflight.running_dir(self.data_dir), "job")))

    def test_config_error_leaves_no_record(self):
        """finish that cannot send (no endpoint) removes the run's record: no false 'interrupted' after a reboot"""
        self.assertEqual(self.hook("start", "job").returncode, 0)
        done = self.hook("finish", "job", "--status", "success", env={"SEESTACK_ENDPOINT": ""})
        self.assertIn("no endpoint configured", done.stderr)
        self.assertFalse(os.listdir(os.path.join(inflight.running_dir(self.data_dir), "job")))

    def test_overlapping_run(self):
        """run started while an earlier run of the slug still goes: its heartbeat (source and failed message) says so"""
        fifo = os.path.join(self.dir, "go")
        os.mkfifo(fifo)
        long = subprocess.Popen(hook_argv(["run", "job", "--", "sh", "-c", f"read x < {fifo}"]), cwd=ROOT,
                                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: long.poll() is None and long.kill())
        deadline = time.monotonic() + 20
        while not os.path.isdir(os.path.join(inflight.running_dir(self.data_dir), "job")) or \
                not os.listdir(os.path.join(inflight.running_dir(self.data_dir), "job")):
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)
        done = self.hook("run", "job", "--", "sh", "-c", "echo disk full >&2; exit 1")
        self.assertEqual(done.returncode, 1)
        [sent] = self.sent()
        self.assertEqual(sent["source"]["overlap"]["earlierRuns"], 1)
        self.assertIn("\nstarted while 1 earlier run of this job was still running (since ", sent["message"])
        with open(fifo, "w") as f:  # the first run ends only now
            f.write("x\n")
        self.assertEqual(long.wait(20), 0)
        self.assertNotIn("overlap", self.sent()[1]["source"])


class RunsInProgress(HookTestCase):
    def test_list_shows_runs_in_progress(self):
        """list (table and --output=json) shows the runs going on now, the second one overlapping the first"""
        backend = RawServer([])
        self.addCleanup(backend.close)
        self.env["SEESTACK_ENDPOINT"] = backend.url
        procs, fifos = [], []
        for i in range(2):
            fifo = os.path.join(self.dir, f"go{i}")
            os.mkfifo(fifo)
            fifos.append(fifo)
            proc = subprocess.Popen(hook_argv(["run", "nightly", "--", "sh", "-c", f"read x < {fifo}"]), cwd=ROOT,
                                    env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.addCleanup(lambda p=proc: p.poll() is None and p.kill())
            procs.append(proc)
            deadline = time.monotonic() + 20
            top = os.path.join(inflight.running_dir(self.data_dir), "nightly")
            while len(os.listdir(top) if os.path.isdir(top) else ()) < i + 1:
                self.assertLess(time.monotonic(), deadline)
                time.sleep(0.02)
        done = self.hook("list", "--output=json")
        self.assertEqual(done.returncode, 0, done.stderr)
        running = [row for row in json.loads(done.stdout) if row["kind"] == "running"]
        self.assertEqual([(r["slug"], r["command"], r["unit"], r["overlaps"], r["ended"]) for r in running],
                         [("nightly", "sh", None, 0, False), ("nightly", "sh", None, 1, False)])
        table = self.hook("list").stdout
        self.assertIn("RUNNING", table)
        self.assertIn("started while 1 earlier run(s) still ran", table)
        for fifo, proc in zip(fifos, procs):
            with open(fifo, "w") as f:
                f.write("x\n")
            self.assertEqual(proc.wait(20), 0)
        after = json.loads(self.hook("list", "--output=json").stdout)
        self.assertEqual([row for row in after if row["kind"] == "running"], [])


def inflight_since(started_at: float) -> str:
    from seestack_systemd.contract import rfc3339

    return rfc3339(started_at)


class StopBound(HookTestCase):
    def test_stop_timeout_bounds_the_deadline(self):
        """the delivery ends before systemd's stop timeout, with the reason; no timeout, no bound"""
        self.assertEqual(policy.stop_bound(10.0, None, 0.1), (10.0, ""))
        self.assertEqual(policy.stop_bound(10.0, 90.0, 0.1), (10.0, ""))
        left, why = policy.stop_bound(10.0, 2.0, 0.1)
        self.assertAlmostEqual(left, 2.0 - policy.STOP_MARGIN_S - 2.0 * policy.STOP_MARGIN_SHARE - 0.1)
        self.assertEqual(why, "systemd's stop timeout (2 s) leaves 1.2 s of the delivery deadline (10 s):"
                              " raise the unit's TimeoutStopSec= or lower deadline")
        self.assertEqual(policy.stop_bound(10.0, 0.5, 0.1)[0], 0.0)

    def test_no_time_left_means_no_attempt(self):
        """a delivery with no time left makes no attempt: the heartbeat is kept at once, the line says why"""
        server = RawServer([])
        self.addCleanup(server.close)
        self.env["SEESTACK_ENDPOINT"] = server.url
        from seestack_systemd.settings import config
        from seestack_systemd.delivery import report
        from seestack_systemd.heartbeat import Run

        cfg = config.load(self.env)
        lines: List[str] = []
        run = Run("job", "success", "0" * 8 + "-0000-4000-8000-" + "0" * 12, time.time())
        delivery = report.deliver(cfg, run, lambda level, text: lines.append(text), 0.0, "no time (test)")
        self.assertEqual((delivery.outcome, delivery.attempts, delivery.spooled), ("temporary", 0, True))
        self.assertEqual(server.requests, [])
        [line] = lines
        self.assertIn("job: no time (test): heartbeat not delivered: no time was left for an attempt; spooled in", line)
