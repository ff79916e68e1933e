"""`run` never changes what the job does or how it ends: argument rules, background children,
broken output, late signals, --success-exit, and the success message from stdout.
Real processes, pipes, a pty and signals against a real loopback receiver."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

from seestack_systemd.receiver.receive import Receiver
from seestack_systemd.jobs.runner import OUTPUT_GRACE_S

from ..support import ROOT, HookTestCase, spool_files


class RunRules(HookTestCase):
    def setUp(self):
        super().setUp()
        self.receiver = Receiver().start()
        self.addCleanup(self.receiver.stop)
        self.env["SEESTACK_ENDPOINT"] = self.receiver.url

    def body(self):
        return self.receiver.wait_for(1)[0].json()

    def test_command_without_double_dash(self):
        """the first word after SLUG that is not run's option starts the command, '--' or not"""
        done = self.hook("run", "job", "sh", "-c", "echo \"$0 $1\" >&2; exit 3", "-x", "--y")
        self.assertEqual(done.returncode, 3, done.stderr)
        self.assertIn("-x --y", done.stderr)
        self.assertEqual(self.body()["status"], "failed")

    def test_options_after_slug_then_command(self):
        """run's own options between SLUG and the command still apply; the command's stay its own"""
        done = self.hook("run", "job", "--success-exit", "24", "sh", "-c", "exit 24", "--success-exit")
        self.assertEqual(done.returncode, 24, done.stderr)
        self.assertEqual(self.body()["status"], "success")

    def test_unknown_option_reported_and_job_runs(self):
        """a mistyped option is one line naming it; the job runs and its heartbeat is sent"""
        marker = os.path.join(self.dir, "ran")
        done = self.hook("run", "job", "--sucess-exit", "0,24", "touch", marker)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertTrue(os.path.exists(marker))
        lines = [line for line in done.stderr.splitlines() if "sucess-exit" in line]
        self.assertEqual(len(lines), 1, done.stderr)
        self.assertIn("--success-exit", lines[0])
        self.assertEqual(self.body()["status"], "success")

    def test_no_command_is_usage_error(self):
        """only a line with no command at all is a usage error (exit 2, run's usage)"""
        for argv in (("run", "job"), ("run", "job", "--"), ("run", "job", "--success-exit", "24")):
            done = self.hook(*argv)
            self.assertEqual(done.returncode, 2, argv)
            self.assertIn("run", done.stderr)
        self.assertEqual(self.receiver.requests, [])

    def test_success_exit_adds_to_zero(self):
        """--success-exit 24 keeps a clean 0 a success, and counts 24 as one"""
        for code in (0, 24):
            self.receiver.requests.clear()
            done = self.hook("run", "job", "--success-exit", "24", "--", "sh", "-c", f"exit {code}")
            self.assertEqual(done.returncode, code)
            self.assertEqual(self.body()["status"], "success", code)

    def test_success_exit_out_of_range(self):
        """--success-exit 300 (or -1, or a word) is a usage error naming the value; nothing runs"""
        marker = os.path.join(self.dir, "ran")
        for value in ("300", "-1", "0,x"):
            done = self.hook("run", "job", f"--success-exit={value}", "touch", marker)
            self.assertEqual(done.returncode, 2, value)
            self.assertIn(value, done.stderr)
        self.assertFalse(os.path.exists(marker))

    def test_success_message_is_last_stdout_line(self):
        """stdout passes through as it comes; its last line is the success heartbeat's message"""
        done = self.hook("run", "job", "--", "sh", "-c", "echo first; echo 'Processed 1842 records'; echo")
        self.assertEqual(done.stdout, "first\nProcessed 1842 records\n\n")
        self.assertEqual(self.body()["message"], "Processed 1842 records")

    def test_success_message_none(self):
        """success_message = none sends no stdout line"""
        conf = os.path.join(self.dir, "c.conf")
        with open(conf, "w") as f:
            f.write("[seestack]\nsuccess_message = none\n")
        done = self.hook("run", "job", "--", "echo", "hello", env={"SEESTACK_CONFIG": conf})
        self.assertEqual(done.stdout, "hello\n")
        self.assertIsNone(self.body().get("message"))

    def test_terminal_stdout_not_teed(self):
        """stdout that is a terminal is the job's own: it sees a tty, run does not read it"""
        main, tty = os.openpty()
        self.addCleanup(os.close, main)
        proc = subprocess.Popen([sys.executable, "-m", "seestack_systemd", "run", "job", "--", "sh", "-c",
                                 "[ -t 1 ] && echo is-a-tty"], cwd=ROOT, env=self.env, stdout=tty,
                                stderr=subprocess.PIPE)
        os.close(tty)
        self.assertEqual(proc.wait(20), 0)
        proc.stderr.close()
        self.assertIn(b"is-a-tty", os.read(main, 1024))
        self.assertIsNone(self.body().get("message"))

    def test_background_child_does_not_hold_run(self):
        """a child left holding stderr and stdout: run returns a grace period after the job, with its code"""
        started = time.monotonic()
        done = self.hook("run", "job", "--", "sh", "-c", "sleep 6 & echo started; exit 3", timeout=30)
        took = time.monotonic() - started
        self.assertEqual(done.returncode, 3)
        self.assertLess(took, OUTPUT_GRACE_S + 3.5, done.stderr)
        self.assertIn("started", done.stdout)
        self.assertIn("still held its output", done.stderr)
        body = self.body()
        self.assertEqual(body["status"], "failed")
        # The job's own process exited at once: the grace period is not part of its duration.
        self.assertLess(body["durationMs"], OUTPUT_GRACE_S * 1000 / 2, body)

    def test_broken_stderr_keeps_exit_code(self):
        """with run's stderr a broken pipe, its exit status is the job's, and the heartbeat is sent"""
        for code in (0, 4):
            self.receiver.requests.clear()
            r, w = os.pipe()
            os.close(r)
            proc = subprocess.Popen([sys.executable, "-m", "seestack_systemd", "run", "job", "--", "sh", "-c",
                                     f"echo oops >&2; exit {code}"], cwd=ROOT, env=self.env, stderr=w,
                                    stdout=subprocess.DEVNULL)
            os.close(w)
            self.assertEqual(proc.wait(20), code)
            body = self.body()
            self.assertEqual(body["status"], "success" if code == 0 else "failed")
            if code:
                self.assertIn("oops", body["message"])

    def test_closed_stdout_is_the_jobs_broken_pipe(self):
        """run's stdout closed early: the job's later writes get a broken pipe (the README's words)"""
        proc = subprocess.Popen([sys.executable, "-m", "seestack_systemd", "run", "job", "--", "sh", "-c",
                                 "trap '' PIPE; echo one; sleep 0.3; while echo more; do :; done; echo gave-up >&2"],
                                cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(proc.stdout.readline(), b"one\n")
        proc.stdout.close()
        self.assertEqual(proc.wait(20), 0)
        self.assertIn(b"gave-up", proc.stderr.read())
        proc.stderr.close()

    def test_started_with_stdout_closed(self):
        """run started with stdout closed (>&-): the job's first write succeeds, later ones get a broken pipe"""
        proc = subprocess.run(["sh", "-c", f"exec {sys.executable} -m seestack_systemd run job -- sh -c "
                               "'trap \"\" PIPE; echo x; echo first=$? >&2; sleep 0.3;"
                               " while echo more 2>/dev/null; do :; done; echo later-failed >&2' >&-"],
                              cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertIn("first=0", proc.stderr)
        self.assertIn("later-failed", proc.stderr)

    def test_signal_after_job_ended(self):
        """SIGTERM while the heartbeat is being delivered: exit with the job's 6, heartbeat spooled"""
        hanging = Receiver(replies=",".join(["hang"] * 20)).start()
        self.addCleanup(hanging.stop)
        env = dict(self.env, SEESTACK_ENDPOINT=hanging.url, SEESTACK_DEADLINE="2", SEESTACK_TIMEOUT="1")
        proc = subprocess.Popen([sys.executable, "-m", "seestack_systemd", "run", "job", "--", "sh", "-c", "exit 6"],
                                cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        hanging.wait_for(1, timeout=10)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGHUP)
        self.assertEqual(proc.wait(20), 6)
        stderr = proc.stderr.read()
        proc.stderr.close()
        self.assertIn("SIGTERM arrived after the command ended", stderr)
        self.assertEqual(len(spool_files(self.data_dir)), 1, stderr)


# run_command in a process of its own (only its main thread and its waiter in it, as in run):
# prints the exit code it reports, and the signals the caller's own handlers saw.
_RACE = """
import json, os, signal, subprocess, sys, time
from seestack_systemd.jobs import runner
late = []
for s in runner.FORWARDED_SIGNALS:  # as cli.cmd_run does: a signal after the job is only noted
    signal.signal(s, lambda signum, _frame: late.append(signum))
{setup}
started = time.monotonic()
finished = runner.run_command(["sh", "-c", "echo started >&2; exec sleep 4"], [0], dict(os.environ), 5)
print(json.dumps([finished.exit_code, late, time.monotonic() - started]))
"""


class SignalWhileStarting(unittest.TestCase):
    """A SIGTERM run gets while its command is alive reaches the command, however early it comes."""

    def race(self, setup: str):
        done = subprocess.run([sys.executable, "-c", _RACE.format(setup=setup)], cwd=ROOT, capture_output=True,
                              text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertEqual(done.returncode, 0, done.stderr)
        return json.loads(done.stdout)

    def test_signal_while_the_command_starts(self):
        """a SIGTERM while the command is being started is sent to it once it exists, not taken for a late one"""
        code, late, took = self.race(
            "real = subprocess.Popen\n"
            "def popen(*args, **kwargs):\n"
            "    proc = real(*args, **kwargs)\n"
            "    signal.raise_signal(signal.SIGTERM)  # the child exists; run_command has not said what to do yet\n"
            "    (lambda: None)()  # a Python call: the handler in place now runs\n"
            "    return proc\n"
            "runner.subprocess.Popen = popen")
        self.assertEqual((code, late), (128 + signal.SIGTERM, []))
        self.assertLess(took, 3)


class RunDocs(HookTestCase):
    def test_help_readme_and_man_page_agree(self):
        """run --help, the README and the man page state the argument rule, the grace period and --success-exit"""
        from seestack_systemd.jobs.runner import OUTPUT_GRACE_S

        def flat(text: str) -> str:
            return " ".join(text.replace("\\-", "-").replace("\\fP", "").replace("\\fI", "").split())

        texts = {"--help": flat(self.hook("run", "--help").stdout)}
        for name, path in (("README", "README.md"), ("man page", "packaging/seestack-hook.1")):
            with open(os.path.join(ROOT, path), encoding="utf-8") as f:
                texts[name] = flat(f.read())
        for name, text in texts.items():
            for rule in ("the first word that is not one of", rf"grace period[^.]*{OUTPUT_GRACE_S:g} s",
                         r"success (\*)?besides 0", "0-255"):
                self.assertTrue(re.search(rule, text), f"{name} does not say {rule!r}")
