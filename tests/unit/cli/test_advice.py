"""The fix a message suggests works for whoever reads it: a root hook, which reads no
SEESTACK_* variable, never suggests one; a user is never told to make a root-only file.
Real processes, as root and (with setpriv) as nobody."""

import os
import subprocess
import sys

from ..support import ROOT, HookTestCase

NOBODY = 65534


class Advice(HookTestCase):
    def write(self, name: str, body: str, mode: int = 0o600) -> str:
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(body)
        os.chmod(path, mode)
        return path

    def root_finish(self, conf: str) -> str:
        if os.geteuid() != 0:
            self.skipTest("the root hooks' rules apply to hooks run as root")
        self.env["SEESTACK_CONFIG"] = conf  # the unit's: ignored
        done = self.hook("finish", "--config", conf, "--status", "success", "--", "job", root_hook=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        # No unit ran it (no $INVOCATION_ID): the line about ignored variables says what happens.
        [ignored] = [line for line in done.stderr.splitlines() if "ignoring" in line]
        self.assertIn("start/finish as root read only", ignored)
        self.assertNotIn("unit's environment", ignored)
        return done.stderr

    def test_root_hook_without_endpoint_names_only_the_file_and_the_flag(self):
        """a root hook lacking an endpoint points at the config file and enable --endpoint, not SEESTACK_ENDPOINT"""
        conf = self.write("nope.conf", f"[seestack]\nstate_dir = {self.state_dir}\ndata_dir = {self.data_dir}\n")
        [line] = [line for line in self.root_finish(conf).splitlines() if "no endpoint configured" in line]
        self.assertIn(conf, line)
        self.assertIn("enable UNIT --endpoint", line)
        self.assertNotIn("SEESTACK_", line)

    def test_root_hook_without_key_names_only_the_file_and_the_flag(self):
        """a root hook lacking a key points at api_key_file and enable --api-key-file, not SEESTACK_API_KEY_FILE"""
        conf = self.write("nokey.conf", f"[seestack]\nendpoint = http://127.0.0.1:9/\nstate_dir = {self.state_dir}\n"
                                        f"data_dir = {self.data_dir}\n")
        [line] = [line for line in self.root_finish(conf).splitlines() if "no API key configured" in line]
        self.assertIn("root-only file", line)
        self.assertIn("enable UNIT --api-key-file", line)
        self.assertNotIn("SEESTACK_", line)

    def test_user_without_key_is_not_told_root_only(self):
        """a user lacking a key is told to keep it in a file only they can read, or SEESTACK_API_KEY_FILE"""
        if os.geteuid() != 0:
            self.skipTest("needs root to run a process as nobody")
        env = {"PATH": "/usr/bin:/bin", "HOME": self.dir, "SEESTACK_CONFIG": "/dev/null",
               "SEESTACK_ENDPOINT": "http://127.0.0.1:9/"}
        done = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                               sys.executable, "-m", "seestack_systemd", "ping", "job", "--status", "success"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        self.assertIn("no API key configured", done.stderr)
        self.assertNotIn("root-only", done.stderr)
        self.assertIn("only you can read", done.stderr)
        self.assertIn("SEESTACK_API_KEY_FILE", done.stderr)

    def test_demo_local_is_clean(self):
        """make demo-local (as root too) gives the hooks flags, not SEESTACK_*: no warning in its output"""
        done = subprocess.run(["sh", os.path.join(ROOT, "tests", "demo-local.sh")], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
        self.assertEqual(done.returncode, 0, done.stdout)
        self.assertIn("reconcile  failed", done.stdout)
        self.assertNotIn("warning", done.stdout)

    def test_receive_names_the_jsonl_file_it_cannot_open(self):
        """receive --jsonl in a missing directory says the --jsonl file is the problem, not the listen address"""
        done = self.hook("receive", "--listen", "127.0.0.1:0", "--jsonl", "/nonexistent/dir/x", timeout=30)
        self.assertEqual(done.returncode, 1, done.stderr)
        self.assertIn("cannot open the --jsonl file /nonexistent/dir/x: No such file or directory", done.stderr)
        self.assertNotIn("cannot listen", done.stderr)

    def test_run_not_found_past_an_unsearchable_path_directory(self):
        """a user's PATH holding a directory they cannot search: a missing command is 127 'was not found', as sh says"""
        if os.geteuid() != 0:
            self.skipTest("needs root to make a directory nobody cannot search, and to run as nobody")
        closed = os.path.join(self.dir, "closed")
        os.mkdir(closed, 0o700)  # root's: nobody gets EACCES looking inside
        os.chmod(self.dir, 0o755)
        env = {"PATH": f"{closed}:/usr/bin:/bin", "HOME": self.dir, "SEESTACK_CONFIG": "/dev/null"}
        as_nobody = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        shell = subprocess.run([*as_nobody, "sh", "-c", "nosuchcmd-x"], env=env, capture_output=True, timeout=30)
        self.assertEqual(shell.returncode, 127, shell.stderr)  # the oracle: what the shell says
        done = subprocess.run([*as_nobody, sys.executable, "-m", "seestack_systemd", "run", "demo", "nosuchcmd-x"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        self.assertEqual(done.returncode, 127, done.stderr)
        self.assertIn("command 'nosuchcmd-x' was not found", done.stderr)
