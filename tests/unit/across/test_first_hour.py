"""A new operator's first hour, as real processes: usage errors, help texts, the try-it
path for any user, and permission errors that name the setting that fixes them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import unittest
from typing import Dict, List

from seestack_systemd.receiver.receive import Receiver

from ..support import API_KEY, ROOT, HookTestCase

NOBODY = 65534


def as_nobody(argv: List[str]) -> List[str]:
    """``argv`` as uid 65534 when we are root (and setpriv exists); unchanged otherwise."""
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    return argv


class Usage(HookTestCase):
    def test_unknown_option_shows_the_subcommands_usage(self):
        """an unknown option prints the subcommand's usage line, not the top-level one (exit 2)"""
        for command in ("check", "ping", "flush", "list", "receive"):
            with self.subTest(command):
                required = ("x", "--status", "success") if command == "ping" else ()
                done = self.hook(command, *required, "--bogus")
                self.assertEqual(done.returncode, 2, done.stderr)
                self.assertIn(f"usage: seestack-hook {command} ", done.stderr)
                self.assertIn(f"seestack-hook {command}: error: unrecognized arguments: --bogus", done.stderr)

    def test_empty_slug_wording(self):
        """an empty slug is said once, with the command, never as ': invalid slug'"""
        for args in (("run", "", "--", "true"), ("ping", "", "--status", "success"), ("finish", "")):
            with self.subTest(args[0]):
                done = self.hook(*args)
                self.assertIn(f"error: {args[0]}: invalid slug '': it is empty", done.stderr)
                self.assertNotRegex(done.stderr, r": :|error: :")

    def test_receive_help_names_every_reply(self):
        """receive --help lists every --reply form and --try"""
        text = self.hook("receive", "--help").stdout
        for word in ("hang", "reset", "trickle", "429:2", "--try"):
            self.assertIn(word, text)


class Settings(HookTestCase):
    def test_data_dir_flag(self):
        """--data-dir moves the last-heartbeat records and the spool, over SEESTACK_DATA_DIR"""
        receiver = Receiver(api_key=API_KEY).start()
        self.addCleanup(receiver.stop)
        moved = os.path.join(self.dir, "moved")
        done = self.hook("ping", "job", "--status", "success", "--endpoint", receiver.url, "--data-dir", moved)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertTrue(os.path.exists(os.path.join(moved, "last", "job.json")))
        self.assertFalse(os.path.exists(os.path.join(self.data_dir, "last")))
        check = self.hook("check", "--data-dir", moved, "--endpoint", receiver.url)
        self.assertRegex(check.stdout, rf"data_dir\s+{re.escape(moved)}\s+\[command line\]")

    def test_check_send_says_configuration_ok(self):
        """check --send prints configuration OK, then sends"""
        receiver = Receiver(api_key=API_KEY).start()
        self.addCleanup(receiver.stop)
        done = self.hook("check", "--send", "demo", "--endpoint", receiver.url)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("\nconfiguration OK\n", done.stdout)
        self.assertEqual(receiver.wait_for(1)[0].json()["slug"], "demo")

    def test_permission_errors_name_the_setting(self):
        """a data or state directory that cannot be created names the setting (env and flag) that moves it"""
        receiver = Receiver(api_key=API_KEY).start()
        self.addCleanup(receiver.stop)
        blocked = os.path.join(self.dir, "file")
        open(blocked, "w").close()  # a file where a parent directory should be: mkdir fails for anyone
        env = {"SEESTACK_DATA_DIR": os.path.join(blocked, "data"), "SEESTACK_STATE_DIR": os.path.join(blocked, "state"),
               "SEESTACK_ENDPOINT": receiver.url}
        ran = self.hook("run", "job", "--", "true", env=env)
        self.assertEqual(ran.returncode, 0, ran.stderr)
        self.assertIn("could not record the last heartbeat", ran.stderr)
        self.assertIn("; to use a directory of your own, set data_dir (SEESTACK_DATA_DIR, --data-dir)", ran.stderr)
        started = self.hook("start", "--strict", "job", env=env)
        self.assertIn("; to use a directory of your own, set state_dir (SEESTACK_STATE_DIR, --state-dir)", started.stderr)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root to own a directory nobody uses")
    def test_foreign_directory_names_the_setting_not_chown(self):
        """as a user, a data dir owned by root says to set SEESTACK_DATA_DIR, not to chown it"""
        os.chmod(self.dir, 0o755)
        root_owned = os.path.join(self.dir, "rootdata")
        os.mkdir(root_owned, 0o755)
        env = dict(self.env, SEESTACK_DATA_DIR=root_owned, SEESTACK_STATE_DIR=os.path.join(self.dir, "nobody-state"),
                   SEESTACK_ENDPOINT="http://127.0.0.1:9", SEESTACK_DEADLINE="0.2", PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run(as_nobody([sys.executable, "-m", "seestack_systemd", "run", "job", "--", "true"]),
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn(f"refusing {root_owned}: it is owned by uid 0, not you (uid {NOBODY})", done.stderr)
        self.assertIn("set data_dir (SEESTACK_DATA_DIR, --data-dir)", done.stderr)
        self.assertNotIn("chown", done.stderr)


    def test_unwritable_own_directory_names_the_setting(self):
        """a state dir of one's own without write permission: start names state_dir's settings"""
        os.chmod(self.dir, 0o755)
        os.mkdir(self.state_dir, 0o500)
        os.makedirs(os.path.join(self.state_dir, "job"), 0o500, exist_ok=True)
        for path in (self.state_dir, os.path.join(self.state_dir, "job")):
            os.chmod(path, 0o500)
            if os.geteuid() == 0:
                os.chown(path, NOBODY, NOBODY)
        if os.geteuid() == 0 and not shutil.which("setpriv"):
            self.skipTest("as root, a directory without write permission needs setpriv to drop root")
        env = dict(self.env, PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run(as_nobody([sys.executable, "-m", "seestack_systemd", "start", "--strict", "job"]),
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        self.assertNotEqual(done.returncode, 0)
        self.assertIn(f"cannot write in {self.state_dir}/job: Permission denied", done.stderr)
        self.assertIn("; to use a directory of your own, set state_dir (SEESTACK_STATE_DIR, --state-dir)", done.stderr)


class TryIt(HookTestCase):
    def start_try(self, *extra: str, user: bool = False) -> Dict[str, str]:
        """Start ``receive --try`` (as nobody with ``user``); return the exports it printed."""
        out_path = os.path.join(self.dir, "try.out")
        tmp = os.path.join(self.dir, "tmp")
        os.mkdir(tmp, 0o700)
        if user and os.geteuid() == 0:  # the user's own TMPDIR: else mkdtemp falls back to /tmp
            os.chmod(self.dir, 0o755)
            os.chown(tmp, NOBODY, NOBODY)
        env = {"PATH": "/usr/bin:/bin", "TMPDIR": tmp, "PYTHONDONTWRITEBYTECODE": "1"}
        argv = [sys.executable, "-m", "seestack_systemd", "receive", "--try", *extra]
        with open(out_path, "w") as out:
            proc = subprocess.Popen(as_nobody(argv) if user else argv, cwd=ROOT, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        self.addCleanup(lambda: (proc.terminate(), proc.wait(5)))
        deadline = time.monotonic() + 10
        text = ""
        while "listening on" not in text and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            text = open(out_path).read()
        self.assertIn("listening on", text)
        self.out_path = out_path
        return {name: value for name, value in re.findall(r"^export (SEESTACK_[A-Z_]+)=(\S+)$", text, re.M)}

    def test_try_exports_a_scratch_setup(self):
        """receive --try prints export lines for config, endpoint, key file, state and data in one new 0700 dir"""
        exports = self.start_try("--listen", "127.0.0.1:0")
        self.assertEqual(sorted(exports), ["SEESTACK_API_KEY_FILE", "SEESTACK_CONFIG", "SEESTACK_DATA_DIR",
                                           "SEESTACK_ENDPOINT", "SEESTACK_STATE_DIR"])
        scratch = os.path.dirname(exports["SEESTACK_CONFIG"])
        self.assertEqual(os.path.dirname(scratch), os.path.join(self.dir, "tmp"))
        self.assertEqual(os.stat(scratch).st_mode & 0o777, 0o700)
        for name in ("SEESTACK_API_KEY_FILE", "SEESTACK_STATE_DIR", "SEESTACK_DATA_DIR"):
            self.assertTrue(exports[name].startswith(scratch + "/"), name)
        self.assertEqual(os.stat(exports["SEESTACK_API_KEY_FILE"]).st_mode & 0o777, 0o600)
        self.assertRegex(exports["SEESTACK_ENDPOINT"], r"^http://127\.0\.0\.1:\d+$")

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root to become another user")
    def test_try_path_as_nobody(self):
        """as uid 65534: receive --try, then check --send and run with its exports deliver; the data stays in scratch"""
        exports = self.start_try("--listen", "127.0.0.1:0", user=True)
        self.assertTrue(exports["SEESTACK_CONFIG"].startswith(os.path.join(self.dir, "tmp") + "/"))
        env = dict(exports, PATH="/usr/bin:/bin", PYTHONDONTWRITEBYTECODE="1")
        hook = [sys.executable, "-m", "seestack_systemd"]
        check = subprocess.run(as_nobody(hook + ["check", "--send", "demo"]), cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)
        self.assertIn("configuration OK", check.stdout)
        ran = subprocess.run(as_nobody(hook + ["run", "demo", "--", "sh", "-c", "echo 'disk full' >&2; exit 3"]),
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(ran.returncode, 3, ran.stderr)
        self.assertIn("failed heartbeat delivered", ran.stderr)
        self.assertNotIn("warning", ran.stderr + check.stderr)
        with open(os.path.join(exports["SEESTACK_DATA_DIR"], "last", "demo.json")) as f:
            self.assertEqual(json.load(f)["status"], "failed")
        received = open(self.out_path).read()
        self.assertRegex(received, r"\sdemo\s+success\s")
        self.assertRegex(received, r"\sdemo\s+failed\s")

    def test_try_from_a_checkout_names_a_command_it_has(self):
        """receive --try from a checkout says what to run next with python3 -m seestack_systemd (a checkout has no
        seestack-hook), and that line, pasted with the exports into a shell elsewhere, sends the heartbeat"""
        exports = self.start_try("--listen", "127.0.0.1:0")
        [then] = [line for line in open(self.out_path) if line.startswith("# then: ")]
        command = then[len("# then: "):].strip()
        self.assertRegex(command, r"^cd \S+ && python3 -m seestack_systemd check --send demo$")
        self.assertNotIn("seestack-hook", command)
        env = dict(exports, PATH="/usr/bin:/bin", PYTHONDONTWRITEBYTECODE="1")
        done = subprocess.run(["/bin/sh", "-c", command], cwd="/", env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("configuration OK", done.stdout)
        self.assertIn("success heartbeat delivered", done.stderr)

    def test_try_as_the_command_names_the_command(self):
        """run as the seestack-hook command (a package, a venv), the advice names that command"""
        from seestack_systemd.settings.paths import invoked_as

        self.assertEqual(invoked_as("/usr/bin/seestack-hook"), "seestack-hook")
        self.assertEqual(invoked_as("/opt/venv/bin/seestack-hook"), "seestack-hook")
        self.assertTrue(invoked_as(os.path.join(ROOT, "seestack_systemd", "__main__.py"))
                        .endswith(" && python3 -m seestack_systemd"))

    def test_try_accepts_only_its_key(self):
        """the --try receiver answers 401 to another key: a heartbeat is proven to come from the scratch setup"""
        exports = self.start_try("--listen", "127.0.0.1:0")
        done = self.hook("ping", "demo", "--status", "success", env=dict(exports, SEESTACK_API_KEY_FILE="",
                                                                         SEESTACK_API_KEY="not-the-scratch-key"))
        self.assertNotEqual(done.returncode, 0)
        self.assertIn("401", done.stderr)

    def test_scratch_config_for_a_receiver_off_loopback(self):
        """the scratch config of a receiver off loopback allows its http:// endpoint, and the key file is found"""
        from seestack_systemd.settings import config
        from seestack_systemd.cli import scratch

        setup = scratch.make("http://192.0.2.7:8099", parent=self.dir, insecure_http=True)
        cfg = config.load({}, {"config": setup.config_file})
        self.assertEqual(str(cfg.endpoint_parsed()), "http://192.0.2.7:8099")
        self.assertEqual(cfg.require_key(), setup.api_key)
        self.assertEqual(cfg.data_dir, os.path.join(setup.directory, "data"))
        plain = scratch.make("http://192.0.2.7:8099", parent=self.dir)
        with self.assertRaisesRegex(Exception, "allow_insecure_http"):
            config.load({}, {"config": plain.config_file}).endpoint_parsed()

    def test_wildcard_listen_suggests_loopback(self):
        """receive --listen 0.0.0.0:0 suggests an http://127.0.0.1 endpoint, which check accepts"""
        self.start_try("--listen", "0.0.0.0:0")
        first = [line for line in open(self.out_path) if line.startswith("listening on")][0]
        endpoint = re.search(r"\(endpoint = (\S+)\)", first).group(1)
        self.assertRegex(endpoint, r"^http://127\.0\.0\.1:\d+$")
        done = self.hook("check", "--endpoint", endpoint)
        self.assertEqual(done.returncode, 0, done.stderr)


if __name__ == "__main__":
    unittest.main()
