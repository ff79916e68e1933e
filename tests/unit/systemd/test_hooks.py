"""start/finish/ping as real processes against a real loopback receiver."""

import json
import os
import sys
import time
import unittest

from seestack_systemd.receiver.receive import Receiver

from ..support import API_KEY, INVOCATION, ROOT, HookTestCase, spool_files

STOP_ENVS = {
    "success": ({"SERVICE_RESULT": "success", "EXIT_CODE": "exited", "EXIT_STATUS": "0"}, "success", None),
    "exit-code": ({"SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited", "EXIT_STATUS": "1"}, "failed",
                  "exit-code: exited with status 1"),
    "signal": ({"SERVICE_RESULT": "signal", "EXIT_CODE": "killed", "EXIT_STATUS": "KILL"}, "failed",
               "signal: killed by SIGKILL"),
    "core-dump": ({"SERVICE_RESULT": "core-dump", "EXIT_CODE": "dumped", "EXIT_STATUS": "SEGV"}, "failed",
                  "core-dump: dumped core after SIGSEGV"),
    "timeout": ({"SERVICE_RESULT": "timeout", "EXIT_CODE": "killed", "EXIT_STATUS": "TERM"}, "failed",
                "timeout: ran past its time limit, killed by SIGTERM"),
    "watchdog": ({"SERVICE_RESULT": "watchdog", "EXIT_CODE": "killed", "EXIT_STATUS": "ABRT"}, "failed",
                 "watchdog: the watchdog timed out, killed by SIGABRT"),
    "resources": ({"SERVICE_RESULT": "resources"}, "failed", "resources: systemd could not set up its resources"),
    "oom-kill": ({"SERVICE_RESULT": "oom-kill", "EXIT_CODE": "killed", "EXIT_STATUS": "KILL"}, "failed",
                 "oom-kill: the out-of-memory killer stopped it, killed by SIGKILL"),
    "start-limit-hit": ({"SERVICE_RESULT": "start-limit-hit"}, "failed", "start-limit-hit: started too often"),
    "protocol": ({"SERVICE_RESULT": "protocol", "EXIT_CODE": "exited", "EXIT_STATUS": "0"}, "failed",
                 "protocol: broke the service start-up protocol"),
    "unknown": ({"SERVICE_RESULT": "something-new", "EXIT_CODE": "exited", "EXIT_STATUS": "4"}, "failed",
                "something-new: exited with status 4"),
    "exec": ({"SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited", "EXIT_STATUS": "203"}, "failed",
             "exit-code: exited with status 203 (EXEC"),
    "exec-condition": ({"SERVICE_RESULT": "exec-condition", "EXIT_CODE": "exited", "EXIT_STATUS": "1"}, "success",
                       "skipped: its ExecCondition= said not to run"),
}


class HookFlow(HookTestCase):
    def setUp(self):
        super().setUp()
        self.receiver = Receiver(api_key=API_KEY).start()
        self.addCleanup(self.receiver.stop)
        self.env["SEESTACK_ENDPOINT"] = self.receiver.url

    def test_issue_done_when(self):
        """finish 1.2 s after start: one POST, failed, durationMs from inside start to inside finish, key, Idempotency-Key = runId, record gone"""
        env = {"INVOCATION_ID": INVOCATION}
        before_start = time.monotonic()
        self.assertEqual(self.hook("start", "nightly-backup", env=env).returncode, 0)
        after_start = time.monotonic()
        time.sleep(1.2)
        env.update(SERVICE_RESULT="exit-code", EXIT_CODE="exited", EXIT_STATUS="1")
        before_finish = time.monotonic()
        done = self.hook("finish", "nightly-backup", env=env)
        after_finish = time.monotonic()
        self.assertEqual(done.returncode, 0, done.stderr)
        [req] = self.receiver.wait_for(1)
        time.sleep(0.2)
        self.assertEqual(len(self.receiver.requests), 1)
        self.assertEqual((req.method, req.path, req.status, req.error), ("POST", "/v1/cron/heartbeats", 202, None))
        body = req.json()
        self.assertEqual(body["status"], "failed")
        # The run lasts from inside start to inside finish: hard bounds, however loaded the machine.
        shortest, longest = (before_finish - after_start) * 1000, (after_finish - before_start) * 1000
        self.assertGreaterEqual(shortest, 1200)
        self.assertTrue(shortest - 1 <= body["durationMs"] <= longest + 1, (body["durationMs"], shortest, longest))
        self.assertEqual(req.headers["authorization"], f"Bearer {API_KEY}")
        self.assertEqual(req.headers["idempotency-key"], body["runId"])
        self.assertIn("status 1", body["message"])
        self.assertEqual(os.listdir(os.path.join(self.state_dir, "nightly-backup")), [])
        self.assertNoKey(done.stdout, done.stderr)

    def test_every_service_result(self):
        """each SERVICE_RESULT maps to its status and a message a person reads"""
        for i, (name, (stop_env, status, message)) in enumerate(STOP_ENVS.items()):
            with self.subTest(name):
                invocation = f"{i:032x}"
                self.hook("start", "job", env={"INVOCATION_ID": invocation})
                done = self.hook("finish", "job", env=dict(stop_env, INVOCATION_ID=invocation))
                self.assertEqual(done.returncode, 0, done.stderr)
                body = self.receiver.wait_for(i + 1)[-1].json()
                self.assertEqual(body["status"], status)
                if message:
                    self.assertIn(message, body["message"])
                self.assertIsInstance(body["durationMs"], int)

    def test_status_flag_outside_systemd(self):
        """without SERVICE_RESULT, --status decides; a record under 'manual' gives the duration"""
        self.hook("start", "job")
        self.assertTrue(os.path.exists(os.path.join(self.state_dir, "job", "manual.json")))
        self.hook("finish", "job", "--status", "failed")
        body = self.receiver.wait_for(1)[0].json()
        self.assertEqual(body["status"], "failed")
        self.assertIsInstance(body["durationMs"], int)
        self.assertIn("startedAt", body)

    def test_no_record_null_duration(self):
        """finish with no start record reports durationMs null and says why"""
        done = self.hook("finish", "job", env={"SERVICE_RESULT": "success", "INVOCATION_ID": INVOCATION})
        body = self.receiver.wait_for(1)[0].json()
        self.assertIsNone(body["durationMs"])
        self.assertNotIn("startedAt", body)
        self.assertIn("no start record", done.stderr)

    def test_parallel_invocations(self):
        """two invocations of one slug keep separate records and run ids"""
        a, b = "a" * 32, "b" * 32
        marks = []  # monotonic ms before and after each hook, so each duration has hard bounds

        def hook(*argv: str, **env: str) -> None:
            marks.append(time.monotonic() * 1000)
            self.hook(*argv, env=env)
            marks.append(time.monotonic() * 1000)

        hook("start", "tpl", INVOCATION_ID=a)
        time.sleep(0.3)
        hook("start", "tpl", INVOCATION_ID=b)
        hook("finish", "tpl", INVOCATION_ID=a, SERVICE_RESULT="success")
        hook("finish", "tpl", INVOCATION_ID=b, SERVICE_RESULT="success")
        first, second = [r.json() for r in self.receiver.wait_for(2)]
        self.assertNotEqual(first["runId"], second["runId"])
        # Each run lasts from inside its own start to inside its own finish, whatever the load.
        for body, (start, finish) in ((first, (0, 2)), (second, (1, 3))):
            shortest = marks[2 * finish] - marks[2 * start + 1]
            longest = marks[2 * finish + 1] - marks[2 * start]
            self.assertTrue(shortest - 1 <= body["durationMs"] <= longest + 1, (body["durationMs"], shortest, longest))

    def test_bad_slug_hook_exits_zero(self):
        """a bad slug is one clear line and exit 0 from a hook; exit 2 under --strict"""
        for slug in ("Daily_Report", "my job", "CLEANUP", "../../etc/passwd", "a/b", "x" * 300, "café"):
            with self.subTest(slug):
                done = self.hook("start", slug)
                self.assertEqual(done.returncode, 0)
                self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
                self.assertIn("invalid slug", done.stderr)
        self.assertEqual(self.hook("finish", "Bad", "--strict").returncode, 2)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "etc")))

    def test_start_imports_no_network(self):
        """start imports no network, json or argparse module"""
        # As a user unit's hook, so that SEESTACK_* (the test's own directories) is honoured even as root.
        code = (f"import sys; sys.path.insert(0, {ROOT!r}); from seestack_systemd.cli import main as cli;"
                "cli.root_hook = lambda command: False; cli.main(['start', 'job']);"
                "print(' '.join(sorted(sys.modules)))")
        import subprocess

        out = subprocess.run([sys.executable, "-I", "-S", "-c", code], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, check=True).stdout.split()
        for module in ("socket", "ssl", "http.client", "urllib.request", "json", "argparse", "configparser"):
            self.assertNotIn(module, out)
        self.assertIn("seestack_systemd.state", out)

    def test_no_config_hook_exits_zero(self):
        """no endpoint: finish logs how to set it and exits 0; 78 under --strict"""
        env = {"SEESTACK_ENDPOINT": ""}
        done = self.hook("finish", "job", "--status", "success", env=env)
        self.assertEqual(done.returncode, 0)
        self.assertIn("no endpoint configured", done.stderr)
        self.assertEqual(self.hook("finish", "job", "--status", "success", "--strict", env=env).returncode, 78)

    def test_bad_config_value_finish_clears_record(self):
        """a bad setting: start still records, finish says what is wrong, exits 0 and leaves no record behind"""
        conf = os.path.join(self.dir, "seestack.conf")
        with open(conf, "w") as f:
            f.write("[seestack]\ntimeout = ten\n")
        os.chmod(conf, 0o600)
        env = {"SEESTACK_CONFIG": conf, "SEESTACK_TIMEOUT": "", "INVOCATION_ID": INVOCATION}
        self.assertEqual(self.hook("start", "job", env=env).returncode, 0)
        self.assertTrue(os.path.exists(os.path.join(self.state_dir, "job", INVOCATION + ".json")))
        done = self.hook("finish", "job", env=dict(env, SERVICE_RESULT="success"))
        self.assertEqual(done.returncode, 0)
        self.assertIn("timeout = 'ten' is not valid", done.stderr)
        self.assertEqual(os.listdir(os.path.join(self.state_dir, "job")), [])

    def test_ping(self):
        """ping sends one heartbeat with the given status, message and duration"""
        done = self.hook("ping", "job", "--status", "success", "--message", "checked by hand", "--duration-ms", "1500")
        self.assertEqual(done.returncode, 0, done.stderr)
        body = self.receiver.wait_for(1)[0].json()
        self.assertEqual((body["status"], body["message"], body["durationMs"]), ("success", "checked by hand", 1500))

    def test_wrong_key_names_source(self):
        """401: the log names where the key came from, never the key; kept for replay, so ping exits 75"""
        done = self.hook("ping", "job", "--status", "success", env={"SEESTACK_API_KEY": "wrong-key-zzzz9999"})
        self.assertEqual(done.returncode, 75)
        self.assertIn("$SEESTACK_API_KEY", done.stderr)
        self.assertNotIn("wrong-key-zzzz9999", done.stderr)

    def test_check(self):
        """check shows settings with sources and the key only as its last 4 characters; --send pings"""
        done = self.hook("check", "--send", "job")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("[environment $SEESTACK_ENDPOINT]", done.stdout)
        # The config file line names who chose the file, like every other line (here /dev/null: empty).
        self.assertEqual(done.stdout.splitlines()[0].split(),
                         ["config", "file", "/dev/null", "(empty", "or", "unreadable;", "defaults", "apply)",
                          "[environment", "$SEESTACK_CONFIG]"])
        self.assertIn("…" + API_KEY[-4:], done.stdout)
        self.assertNoKey(done.stdout, done.stderr)
        self.receiver.wait_for(1)
        # A bad --send slug is said before the table: "configuration OK" is never printed with it.
        bad_slug = self.hook("check", "--send", "Bad_Slug")
        self.assertEqual((bad_slug.returncode, bad_slug.stdout), (2, ""), bad_slug.stderr)
        self.assertIn("Bad_Slug", bad_slug.stderr)
        # An existing but empty file is named as such, not as missing.
        empty = os.path.join(self.dir, "empty.conf")
        open(empty, "w").close()
        shown = self.hook("check", "--config", empty).stdout.splitlines()[0].split()
        self.assertEqual(shown, ["config", "file", empty, "(empty", "or", "unreadable;", "defaults", "apply)",
                                 "[command", "line]"])
        bad = self.hook("check", env={"SEESTACK_ENDPOINT": "http://example.com"})
        self.assertEqual(bad.returncode, 78)
        self.assertIn("allow_insecure_http", bad.stderr)

    def test_journal_prefix(self):
        """log lines carry sd-daemon priority prefixes when stderr is the journal"""
        import subprocess

        with open(os.path.join(self.dir, "err"), "w+") as err:
            st = os.fstat(err.fileno())
            env = dict(self.env, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
            subprocess.run([sys.executable, "-m", "seestack_systemd", "start", "BAD"], cwd=ROOT, env=env, stderr=err)
            err.seek(0)
            self.assertTrue(err.read().startswith("<3>"))


class Outage(HookTestCase):
    def test_backend_down_spools_within_deadline(self):
        """backend down: finish returns within the deadline, exit 0, heartbeat spooled; --strict or ping gives 75"""
        self.env["SEESTACK_ENDPOINT"] = "http://127.0.0.1:9"  # discard port: refused
        self.env["SEESTACK_DEADLINE"] = "1.5"
        started = time.monotonic()
        done = self.hook("finish", "job", "--status", "failed")
        took = time.monotonic() - started
        self.assertEqual(done.returncode, 0)
        self.assertLess(took, 1.5 + 1.0)
        self.assertIn("spooled", done.stderr)
        self.assertEqual(len(spool_files(self.data_dir)), 1)
        self.assertEqual(self.hook("finish", "job", "--status", "failed", "--strict").returncode, 75)
        self.assertEqual(self.hook("ping", "job", "--status", "failed").returncode, 75)

    def test_blackhole_bounded(self):
        """a server that never answers holds finish for the deadline, not longer"""
        with Receiver(replies=["hang"] * 20) as receiver:
            self.env.update(SEESTACK_ENDPOINT=receiver.url, SEESTACK_DEADLINE="2", SEESTACK_TIMEOUT="5")
            started = time.monotonic()
            done = self.hook("finish", "job", "--status", "success")
            took = time.monotonic() - started
        self.assertEqual(done.returncode, 0)
        self.assertLess(took, 2 + 1.0)
        self.assertGreater(took, 1.9)
        self.assertIn("spooled", done.stderr)

    def test_recovery_replays_in_order(self):
        """after an outage the next hook run replays the spooled heartbeat first, byte-identical"""
        self.env["SEESTACK_ENDPOINT"] = "http://127.0.0.1:9"
        self.env["SEESTACK_DEADLINE"] = "0.5"
        self.hook("ping", "job", "--status", "failed")
        [name] = spool_files(self.data_dir)
        with open(os.path.join(self.data_dir, "spool", name), "rb") as f:
            spooled = f.read().split(b"\n", 1)[1]
        with Receiver() as receiver:
            self.env["SEESTACK_ENDPOINT"] = receiver.url
            self.hook("ping", "job", "--status", "success")
            first, second = receiver.wait_for(2)
        self.assertEqual(first.body, spooled)
        self.assertEqual(json.loads(second.body)["status"], "success")
        self.assertEqual(spool_files(self.data_dir), [])


if __name__ == "__main__":
    unittest.main()
