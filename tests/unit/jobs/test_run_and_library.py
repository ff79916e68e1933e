"""The cron wrapper (`run`) as a real process, and the library API against a real receiver."""

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import seestack_systemd
from seestack_systemd.jobs import api
from seestack_systemd.contract import rfc3339
from seestack_systemd.contract import MESSAGE_LIMIT_BYTES, TRUNCATION_MARK
from seestack_systemd.heartbeat import body, clean_message, Run
from seestack_systemd.receiver.receive import Receiver

from ..support import API_KEY, ROOT, HookTestCase


class RunCommand(HookTestCase):
    def setUp(self):
        super().setUp()
        self.receiver = Receiver().start()
        self.addCleanup(self.receiver.stop)
        self.env["SEESTACK_ENDPOINT"] = self.receiver.url

    def test_success(self):
        """exit 0 reports success and exits 0, stdout passes through"""
        done = self.hook("run", "job", "--", "sh", "-c", "echo out")
        self.assertEqual((done.returncode, done.stdout), (0, "out\n"))
        self.assertEqual(self.receiver.wait_for(1)[0].json()["status"], "success")

    def test_failure_keeps_code_and_stderr_tail(self):
        """exit 3: failed with the status and the stderr tail, stderr still passed through, exit 3"""
        script = "for i in $(seq 1 50); do echo line$i >&2; done; exit 3"
        done = self.hook("run", "job", "--", "sh", "-c", script)
        self.assertEqual(done.returncode, 3)
        self.assertIn("line1\n", done.stderr)
        body = self.receiver.wait_for(1)[0].json()
        self.assertEqual(body["status"], "failed")
        self.assertTrue(body["message"].startswith("exited with status 3\n"))
        self.assertTrue(body["message"].endswith("line50"))
        self.assertNotIn("line1\n", body["message"])

    def test_success_exit(self):
        """--success-exit 0,24 counts exit 24 as success, and still exits 24"""
        done = self.hook("run", "job", "--success-exit", "0,24", "--", "sh", "-c", "exit 24")
        self.assertEqual(done.returncode, 24)
        body = self.receiver.wait_for(1)[0].json()
        self.assertEqual(body["status"], "success")
        self.assertIn("status 24", body["message"])

    def test_not_found(self):
        """a missing command exits 127 with a clear line and reports failed"""
        done = self.hook("run", "job", "--", "/nonexistent/cmd")
        self.assertEqual(done.returncode, 127)
        self.assertIn("'/nonexistent/cmd' was not found", done.stderr)
        self.assertEqual(self.receiver.wait_for(1)[0].json()["status"], "failed")

    def test_backend_down_keeps_exit_code(self):
        """a monitoring failure never changes the command's exit code"""
        for code in (0, 5):
            done = self.hook("run", "job", "--", "sh", "-c", f"exit {code}",
                             env={"SEESTACK_ENDPOINT": "http://127.0.0.1:9", "SEESTACK_DEADLINE": "0.5"})
            self.assertEqual(done.returncode, code)
        done = self.hook("run", "job", "--", "sh", "-c", "exit 4", env={"SEESTACK_ENDPOINT": ""})
        self.assertEqual(done.returncode, 4)
        self.assertIn("unmonitored", done.stderr)

    def test_signal_forwarded(self):
        """SIGTERM to the wrapper reaches the command; exit 128+15; failed killed by SIGTERM"""
        env = dict(self.env)
        proc = subprocess.Popen([sys.executable, "-m", "seestack_systemd", "run", "job", "--", "sh", "-c",
                                 "trap 'echo got-term >&2; trap - TERM; kill -TERM $$' TERM; echo ready >&2; while :; do sleep 0.05; done"],
                                cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        # A run that never ends (a signal that did not reach the command) fails this test, not the suite.
        stuck = threading.Timer(30, proc.kill)
        stuck.start()
        self.addCleanup(stuck.cancel)
        self.assertEqual(proc.stderr.readline().strip(), "ready")
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()  # run's own lines too: what became of the heartbeat
        self.assertEqual(proc.wait(10), 128 + signal.SIGTERM, f"run said: {rest!r}")
        self.assertIn("got-term", rest)
        # run exits after its delivery, and the receiver records a request before answering it:
        # a heartbeat run was answered for is here by now, however loaded the machine.
        try:
            body = self.receiver.wait_for(1)[0].json()
        except AssertionError as e:
            raise AssertionError(f"{e}; run said: {rest!r}") from None
        self.assertEqual(body["status"], "failed")
        self.assertIn("killed by SIGTERM", body["message"])

    def test_invalid_slug_runs_unmonitored(self):
        """an invalid slug is one error line; the command still runs and its exit code stands"""
        done = self.hook("run", "My_Job", "--", "sh", "-c", "echo ran; exit 3")
        self.assertEqual((done.returncode, done.stdout), (3, "ran\n"))
        self.assertIn("runs unmonitored", done.stderr)
        self.assertEqual(self.receiver.requests, [])

    def test_cannot_exec(self):
        """a file that cannot be executed (no shebang) exits 126 with a clear line and reports failed"""
        script = os.path.join(self.dir, "script")
        with open(script, "w") as f:
            f.write("echo no shebang\n")
        os.chmod(script, 0o755)
        with open(script, "rb+") as f:
            f.write(b"\x7fELF")  # a broken binary: the kernel refuses it (ENOEXEC)
        done = self.hook("run", "job", "--", script)
        self.assertEqual(done.returncode, 126, done.stderr)
        self.assertIn("could not be started", done.stderr)
        self.assertEqual(self.receiver.wait_for(1)[0].json()["status"], "failed")

    def test_unreadable_spool_keeps_exit_code(self):
        """a spool that cannot be read: the heartbeat is still sent and the job's exit code stands"""
        not_a_dir = os.path.join(self.dir, "file")
        open(not_a_dir, "w").close()
        self.env["SEESTACK_SPOOL_DIR"] = not_a_dir
        done = self.hook("run", "job", "--", "sh", "-c", "exit 0")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("spool not replayed", done.stderr)
        self.assertEqual(self.receiver.wait_for(1)[0].json()["status"], "success")

    def test_progress_output_passes_at_once(self):
        """stderr without a newline (progress output) reaches the caller while the command runs"""
        proc = subprocess.Popen([sys.executable, "-m", "seestack_systemd", "run", "job", "--", "sh", "-c",
                                 "printf 'progress 50%%\\r' >&2; sleep 5"], cwd=ROOT, env=self.env,
                                stderr=subprocess.PIPE)
        self.addCleanup(proc.kill)
        started = time.monotonic()
        first = proc.stderr.read(12)
        self.assertEqual(first, b"progress 50%")
        self.assertLess(time.monotonic() - started, 3)

    def test_usage(self):
        """run without a command is a usage error (exit 2)"""
        self.assertEqual(self.hook("run", "job").returncode, 2)
        self.assertEqual(self.hook("run", "job", "--success-exit", "x", "--", "true").returncode, 2)


class Heartbeat(unittest.TestCase):
    def test_truncation_utf8(self):
        """messages over 4096 bytes are cut on a character boundary and marked …[truncated]"""
        for char in ("a", "é", "€", "😀"):
            with self.subTest(char):
                text = clean_message(char * 5000)
                data = text.encode("utf-8")
                self.assertLessEqual(len(data), MESSAGE_LIMIT_BYTES)
                self.assertGreater(len(data), MESSAGE_LIMIT_BYTES - 4)
                self.assertTrue(text.endswith(TRUNCATION_MARK))

    def test_tail_cut_is_marked(self):
        """a failure's output tail cut to fit 4096 bytes keeps the last lines and ends with …[truncated]"""
        from seestack_systemd.heartbeat import tail_within

        message = tail_within("exit-code: exited with status 1", [f"line {i} " + "x" * 400 for i in range(20)])
        self.assertLessEqual(len(message.encode()), MESSAGE_LIMIT_BYTES)
        self.assertTrue(message.endswith("line 19 " + "x" * 400 + "\n" + TRUNCATION_MARK))
        self.assertNotIn("line 0 ", message)
        whole = tail_within("exit-code: exited with status 1", ["short", "lines"])
        self.assertEqual(whole, "exit-code: exited with status 1\nshort\nlines")

    def test_sanitised(self):
        """invalid UTF-8 is replaced, control characters but newline and tab removed"""
        self.assertEqual(clean_message(b"ok\xff\x00\x1b[31m\tx\ny\x7f"), "ok\ufffd[31m\tx\ny")

    def test_rfc3339(self):
        """times are RFC 3339 UTC with milliseconds, truncated: never a moment after the event"""
        self.assertEqual(rfc3339(1764027826.1234), "2025-11-24T23:43:46.123Z")
        self.assertEqual(rfc3339(1764027826.123), "2025-11-24T23:43:46.123Z")  # stored as .12299999...
        self.assertEqual(rfc3339(0.9996), "1970-01-01T00:00:00.999Z")
        self.assertEqual(rfc3339(1767225599.9996), "2025-12-31T23:59:59.999Z")  # not next year

    def test_body_fields(self):
        """the body has the required fields and omits unknown optional ones"""
        doc = json.loads(body(Run("job", "success", "r", 0.0)))
        self.assertEqual(set(doc), {"slug", "status", "durationMs", "runId", "finishedAt", "sdk"})
        self.assertIsNone(doc["durationMs"])


class Library(unittest.TestCase):
    def setUp(self):
        self.receiver = Receiver().start()
        self.addCleanup(self.receiver.stop)
        self.addCleanup(api.configure)
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.data_dir = tmp.name
        api.configure(endpoint=self.receiver.url, api_key=API_KEY, deadline=2, config="/dev/null", data_dir=self.data_dir)

    def test_start_finish(self):
        """start_job/finish_job send one heartbeat with the duration and message"""
        handle = seestack_systemd.start_job("daily-report-generator")
        time.sleep(0.1)
        self.assertTrue(seestack_systemd.finish_job(handle, "success", "Processed 1,842 records"))
        [req] = self.receiver.requests
        body = req.json()
        self.assertEqual((body["slug"], body["status"], body["message"]),
                         ("daily-report-generator", "success", "Processed 1,842 records"))
        self.assertGreaterEqual(body["durationMs"], 100)
        self.assertEqual(body["runId"], handle.run_id)

    def test_invalid_slug(self):
        """start_job refuses invalid slugs with a ValueError naming the slug and the rule"""
        for slug in ("Daily_Report", "my job", "CLEANUP", "", "a/b", "..", "x" * 201):
            with self.subTest(slug):
                with self.assertRaises(ValueError) as caught:
                    seestack_systemd.start_job(slug)
                self.assertIn("slug", str(caught.exception))
        self.assertEqual(seestack_systemd.start_job("x" * 200).slug, "x" * 200)

    def test_bad_status_and_double_finish(self):
        """a bad status and a second finish are ValueErrors, not heartbeats"""
        handle = seestack_systemd.start_job("job")
        with self.assertRaises(ValueError):
            seestack_systemd.finish_job(handle, "ok")
        seestack_systemd.finish_job(handle, "failed", "boom")
        with self.assertRaises(ValueError):
            seestack_systemd.finish_job(handle, "success")
        self.assertEqual(len(self.receiver.requests), 1)

    def test_delivery_failure_logged_not_raised(self):
        """backend down: finish_job returns False and logs; the caller's flow is untouched"""
        api.configure(endpoint="http://127.0.0.1:9", api_key=API_KEY, deadline=0.3, config="/dev/null",
                      data_dir=os.path.join(self.data_dir, "down"))
        handle = seestack_systemd.start_job("job")
        with self.assertLogs("seestack_systemd", logging.WARNING) as logs:
            self.assertFalse(seestack_systemd.finish_job(handle, "success"))
        self.assertNotIn(API_KEY, "\n".join(logs.output))

    def test_monitor_reraises(self):
        """monitor() reports failed with the exception and re-raises it; success otherwise"""
        with self.assertRaises(KeyError):
            with seestack_systemd.monitor("job"):
                raise KeyError("missing")

        @seestack_systemd.monitor("job-two")
        def work():
            return 42

        self.assertEqual(work(), 42)
        failed, ok = [r.json() for r in self.receiver.wait_for(2)]
        self.assertEqual((failed["status"], failed["message"]), ("failed", "KeyError: 'missing'"))
        self.assertEqual((ok["slug"], ok["status"]), ("job-two", "success"))

    def test_monitor_clean_exit(self):
        """sys.exit(0) inside monitor() is a success, and still exits"""
        with self.assertRaises(SystemExit):
            with seestack_systemd.monitor("job"):
                sys.exit(0)
        self.assertEqual(self.receiver.wait_for(1)[0].json()["status"], "success")

    def test_configure_rejects_unknown(self):
        """configure() names unknown settings"""
        with self.assertRaises(ValueError):
            api.configure(endpont="x")


if __name__ == "__main__":
    unittest.main()
