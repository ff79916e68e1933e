"""The root hooks trust only root: the config file, the drop-in's flags, systemd's own
credentials directory; helpers by absolute path with our environment; settings files read
without blocking and within a cap; enable refuses units whose environment file is not root's.
Real processes, FIFOs, devices, files of another owner, a real loopback receiver."""

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

from seestack_systemd.receiver.receive import Receiver

from ..support import API_KEY, INVOCATION, ROOT, HookTestCase

NOBODY = 65534
EVIL_TOOL = "#!/bin/sh\ntouch {marker}/$(basename $0)-ran\nexit 0\n"


def limited_memory() -> None:
    """For a child that might read /dev/zero without end: fail at 512 MiB, not the machine."""
    resource.setrlimit(resource.RLIMIT_AS, (512 << 20, 512 << 20))


class Trust(HookTestCase):
    def setUp(self):
        super().setUp()
        self.good = Receiver(api_key=API_KEY).start()
        self.addCleanup(self.good.stop)
        self.evil = Receiver().start()
        self.addCleanup(self.evil.stop)
        self.key_file = os.path.join(self.dir, "api-key")
        with open(self.key_file, "w") as f:
            f.write(API_KEY + "\n")
        os.chmod(self.key_file, 0o600)
        self.conf = self.write_conf(f"endpoint = {self.good.url}\napi_key_file = {self.key_file}\n"
                                    f"state_dir = {self.state_dir}\ndata_dir = {self.data_dir}\ndeadline = 3\n")
        self.evil_dir = os.path.join(self.dir, "evil")
        self.marker = os.path.join(self.dir, "markers")
        os.makedirs(os.path.join(self.evil_dir, "bin"))
        os.makedirs(self.marker)
        for tool in ("systemctl", "journalctl"):
            path = os.path.join(self.evil_dir, "bin", tool)
            with open(path, "w") as f:
                f.write(EVIL_TOOL.format(marker=self.marker))
            os.chmod(path, 0o755)
        # The unit's environment, as a hostile EnvironmentFile= would make it.
        self.unit_env = {
            "PATH": f"{self.evil_dir}/bin:/usr/bin:/bin",
            "SEESTACK_ENDPOINT": self.evil.url,
            "SEESTACK_STATE_DIR": os.path.join(self.evil_dir, "state"),
            "SEESTACK_DATA_DIR": os.path.join(self.evil_dir, "data"),
            "SEESTACK_CONFIG": "/dev/null",
            "SEESTACK_API_KEY": "sk-evil-key-not-ours",
            "INVOCATION_ID": INVOCATION,
        }

    def write_conf(self, body: str, name: str = "seestack.conf") -> str:
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("[seestack]\n" + body)
        os.chmod(path, 0o600)
        return path

    def root_hook(self, *args, env):
        if os.geteuid() != 0:
            self.skipTest("the root hooks' rules apply to hooks run as root")
        self.env = dict(env)
        return self.hook(*args, root_hook=True)

    def test_root_hooks_ignore_the_units_seestack_variables(self):
        """as root, start/finish take the config file and flags only; one line names what was ignored"""
        start = self.root_hook("start", "--config", self.conf, "--unit", "job.service", "--", "job", env=self.unit_env)
        finish = self.root_hook("finish", "--config", self.conf, "--unit", "job.service", "--", "job",
                                env=dict(self.unit_env, SERVICE_RESULT="exit-code", EXIT_CODE="exited", EXIT_STATUS="1"))
        self.assertEqual((start.returncode, finish.returncode), (0, 0), finish.stderr)
        body = self.good.wait_for(1)[0].json()
        self.assertEqual(body["status"], "failed")
        self.assertIsNotNone(body.get("durationMs"), "the start record in the configured state_dir was used")
        self.assertEqual(self.evil.requests, [])
        self.assertFalse(os.path.exists(os.path.join(self.evil_dir, "state")))
        self.assertFalse(os.path.exists(os.path.join(self.evil_dir, "data")))
        lines = [line for line in start.stderr.splitlines() + finish.stderr.splitlines() if "ignoring" in line]
        self.assertEqual(len(lines), 1, finish.stderr)
        self.assertIn(self.conf, lines[0])
        for name in ("SEESTACK_ENDPOINT", "SEESTACK_STATE_DIR", "SEESTACK_API_KEY", "SEESTACK_CONFIG"):
            self.assertIn(name, lines[0])
        self.assertNoKey(start.stderr, finish.stderr)

    def test_helpers_never_come_from_the_units_path(self):
        """finish runs systemctl and journalctl by absolute path: a planted one on $PATH never runs"""
        env = dict(self.unit_env, SERVICE_RESULT="exit-code", EXIT_CODE="exited", EXIT_STATUS="1")
        # As a user unit's hook too (the environment is the user's, the programs still are not).
        for root_hook in (True, False):
            self.env = dict(env, SEESTACK_CONFIG=self.conf)
            done = self.hook("finish", "--unit", "job.service", "--", "job", root_hook=root_hook)
            self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(os.listdir(self.marker), [])

    def test_helper_environment_is_ours(self):
        """a helper gets a fixed PATH and nothing else of ours: no LD_*, no SEESTACK_*"""
        done = subprocess.run([sys.executable, "-c", "from seestack_systemd.systemd import programs;"
                               "print(programs.run('env', [], timeout=5, text=True).stdout)"],
                              cwd=ROOT, capture_output=True, text=True, check=True,
                              env=dict(self.unit_env, LD_BIND_NOW="1", SYSTEMD_LOG_LEVEL="debug"))
        from seestack_systemd.systemd import programs

        seen = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        self.assertEqual(seen["PATH"], programs.FIXED_PATH)
        for name in ("LD_BIND_NOW", "SEESTACK_ENDPOINT", "SYSTEMD_LOG_LEVEL", "INVOCATION_ID"):
            self.assertNotIn(name, seen)

    def test_credential_only_from_systemds_directory(self):
        """a root hook reads the key from $CREDENTIALS_DIRECTORY only when it is /run/credentials/UNIT, root's"""
        conf = self.write_conf(f"endpoint = {self.good.url}\nstate_dir = {self.state_dir}\n"
                               f"data_dir = {self.data_dir}\ndeadline = 3\n", "nokey.conf")
        fake = os.path.join(self.dir, "creds")
        os.mkdir(fake, 0o700)
        with open(os.path.join(fake, "seestack-api-key"), "w") as f:
            f.write(API_KEY)
        env = dict(self.unit_env, CREDENTIALS_DIRECTORY=fake)
        done = self.root_hook("finish", "--config", conf, "--status", "success", "--", "job", env=env)
        self.assertEqual(done.returncode, 0)
        self.assertIn("no API key configured", done.stderr)
        self.assertEqual(self.good.requests, [])
        os.makedirs("/run/credentials", 0o755, exist_ok=True)
        real = tempfile.mkdtemp(prefix="seestack-test-", suffix=".service", dir="/run/credentials")
        self.addCleanup(shutil.rmtree, real)
        shutil.copy(os.path.join(fake, "seestack-api-key"), real)
        unit = os.path.basename(real)
        # Another unit's directory is not this unit's credential.
        done = self.root_hook("finish", "--config", conf, "--unit", "other.service", "--status", "success", "--", "job",
                              env=dict(env, CREDENTIALS_DIRECTORY=real))
        self.assertIn("no API key configured", done.stderr)
        done = self.root_hook("finish", "--config", conf, "--unit", unit, "--status", "success", "--", "job",
                              env=dict(env, CREDENTIALS_DIRECTORY=real))
        self.assertEqual(self.good.wait_for(1)[0].status, 202, done.stderr)

    def test_loader_variables_warned(self):
        """a root hook whose environment holds LD_* logs a warning naming them"""
        done = self.root_hook("finish", "--config", self.conf, "--status", "success", "--", "job",
                              env=dict(self.unit_env, LD_BIND_NOW="1"))
        self.assertEqual(done.returncode, 0)
        self.assertIn("LD_BIND_NOW", done.stderr)
        self.assertIn("warning", done.stderr)


class SettingsFiles(HookTestCase):
    """Config and key files: regular files, read without blocking, within a cap."""

    def setUp(self):
        super().setUp()
        self.receiver = Receiver().start()
        self.addCleanup(self.receiver.stop)
        self.env["SEESTACK_ENDPOINT"] = self.receiver.url
        self.fifo = os.path.join(self.dir, "fifo")
        os.mkfifo(self.fifo)

    def run_job(self, env):
        started = time.monotonic()
        full = dict(self.env, **env)
        done = subprocess.run([sys.executable, "-m", "seestack_systemd", "run", "job", "sh", "-c", "exit 5"],
                              cwd=ROOT, env=full, capture_output=True, text=True, timeout=20,
                              preexec_fn=limited_memory)
        return done, time.monotonic() - started

    def test_fifo_device_or_huge_file_never_blocks_the_job(self):
        """SEESTACK_CONFIG or the key file at a FIFO, /dev/zero or a huge file: one error, the job runs"""
        huge = os.path.join(self.dir, "huge.conf")
        with open(huge, "wb") as f:
            f.write(b"[seestack]\n" + b"# padding\n" * 20000)
        cases = {"config FIFO": {"SEESTACK_CONFIG": self.fifo},
                 "config /dev/zero": {"SEESTACK_CONFIG": "/dev/zero"},
                 "config too large": {"SEESTACK_CONFIG": huge},
                 "key FIFO": {"SEESTACK_API_KEY": "", "SEESTACK_API_KEY_FILE": self.fifo},
                 "key /dev/zero": {"SEESTACK_API_KEY": "", "SEESTACK_API_KEY_FILE": "/dev/zero"}}
        for label, env in cases.items():
            with self.subTest(label):
                done, took = self.run_job(env)
                self.assertEqual(done.returncode, 5, done.stderr)
                self.assertLess(took, 10)
                errors = [line for line in done.stderr.splitlines() if "error" in line]
                self.assertEqual(len(errors), 1, done.stderr)
                self.assertIn("unmonitored", errors[0])
                self.assertRegex(errors[0], "FIFO|device|larger than")

    def test_hook_with_fifo_config_exits_zero(self):
        """a hook given a FIFO as its config exits 0 at once, with one clear line"""
        done = self.hook("finish", "--config", self.fifo, "--status", "success", "job", timeout=10)
        self.assertEqual(done.returncode, 0)
        self.assertIn("FIFO", done.stderr)

    def test_relative_key_path_is_an_error_naming_the_key(self):
        """a relative api_key_file is an error naming api_key_file, for every command"""
        conf = os.path.join(self.dir, "rel.conf")
        with open(conf, "w") as f:
            f.write("[seestack]\napi_key_file = README.md\n")
        env = {"SEESTACK_CONFIG": conf, "SEESTACK_API_KEY": ""}
        for argv in (("check",), ("ping", "job", "--status", "success"), ("run", "job", "true")):
            done = self.hook(*argv, env=env)
            self.assertIn("api_key_file = 'README.md' must be an absolute path", done.stderr, argv)

    def test_unknown_keys_and_sections_reported_alike(self):
        """a typo'd key and an extra [section]: run says it as check and ping do"""
        conf = os.path.join(self.dir, "typo.conf")
        with open(conf, "w") as f:
            f.write(f"[seestack]\nendpiont = {self.receiver.url}\n[other]\ndeadline = 2\n")
        env = {"SEESTACK_CONFIG": conf, "SEESTACK_ENDPOINT": ""}
        seen = {}
        for argv in (("check",), ("ping", "job", "--status", "success"), ("run", "job", "true")):
            done = self.hook(*argv, env=env)
            seen[argv[0]] = sorted(line for line in done.stderr.splitlines()
                                   if "endpiont" in line or "[other]" in line)
        self.assertEqual(len(seen["run"]), 2, seen)
        self.assertIn("did you mean 'endpoint'", " ".join(seen["run"]))
        self.assertEqual(seen["run"], seen["check"])
        self.assertEqual(seen["run"], seen["ping"])

    def test_endpoint_with_control_characters(self):
        """an endpoint with CR/LF, a space or a fragment fails check with a line naming it"""
        for url in (f"{self.receiver.url}/a\r\nX-Evil: 1", f"{self.receiver.url}/a b", f"{self.receiver.url}/#frag"):
            done = self.hook("check", env={"SEESTACK_ENDPOINT": url})
            self.assertEqual(done.returncode, 78, url)
            self.assertIn("endpoint", done.stderr)


class EnableRefuses(unittest.TestCase):
    """enable on a staging root whose unit's EnvironmentFile= is not root's alone."""

    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("files of another owner need root")
        self.root = tempfile.mkdtemp(prefix="seestack-root-")
        self.addCleanup(shutil.rmtree, self.root)
        os.chmod(self.root, 0o755)
        units = os.path.join(self.root, "etc/systemd/system")
        os.makedirs(units)
        self.env_file = os.path.join(self.root, "etc/job.env")
        with open(os.path.join(units, "job.service"), "w") as f:
            f.write("[Service]\nUser=nobody\nEnvironmentFile=-/etc/job.env\nExecStart=/bin/true\n")
        with open(self.env_file, "w") as f:
            f.write("PATH=/var/lib/evil/bin:/usr/bin\n")
        self.dropin = os.path.join(units, "job.service.d", "seestack.conf")

    def cli(self, *args):
        return subprocess.run([sys.executable, "-m", "seestack_systemd", *args, "--root", self.root], cwd=ROOT,
                              capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})

    def test_root_owned_file_is_fine(self):
        """a root-owned 0600 environment file: enable writes the drop-in, list flags nothing"""
        os.chmod(self.env_file, 0o600)
        done = self.cli("enable", "job.service")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertTrue(os.path.exists(self.dropin))
        self.assertNotIn("UNSAFE", self.cli("list").stdout)

    def test_refused_unless_forced(self):
        """owned by nobody, or group/other-writable, or in such a directory: exit 2, nothing written, named"""
        owned_dir = os.path.join(self.root, "etc/app")
        os.mkdir(owned_dir)
        cases = [("owned by nobody", lambda: os.chown(self.env_file, NOBODY, NOBODY), "owned by"),
                 ("mode 0666", lambda: os.chmod(self.env_file, 0o666), "writable by"),
                 ("directory owned by nobody", lambda: (os.chown(owned_dir, NOBODY, NOBODY),
                                                        os.rename(self.env_file, owned_dir + "/job.env"),
                                                        os.symlink("app/job.env", self.env_file)), "directory")]
        for label, spoil, word in cases:
            with self.subTest(label):
                spoil()
                done = self.cli("enable", "job.service")
                self.assertEqual(done.returncode, 2, done.stderr)
                self.assertIn("/etc/job.env", done.stderr)
                self.assertIn(word, done.stderr)
                self.assertIn("LD_PRELOAD", done.stderr)
                self.assertFalse(os.path.exists(self.dropin))
        done = self.cli("enable", "job.service", "--force")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("warning", done.stderr)
        self.assertTrue(os.path.exists(self.dropin))
        listed = self.cli("list")
        self.assertIn("UNSAFE job.service", listed.stdout)

    def test_flags_written_into_the_dropin(self):
        """enable --deadline 3 --endpoint URL: both hooks get the flags; a value systemd would mangle is refused"""
        os.chmod(self.env_file, 0o600)
        done = self.cli("enable", "job.service", "--deadline", "3", "--endpoint", "https://ingest.example.com/x")
        self.assertEqual(done.returncode, 0, done.stderr)
        with open(self.dropin) as f:
            text = f.read()
        for hook in ("start", "finish"):
            self.assertIn(f" {hook} --unit %n --endpoint https://ingest.example.com/x --deadline 3 -- job\n", text)
        bad = self.cli("enable", "job.service", "--force", "--endpoint", "https://x.example.com/%i$HOME")
        self.assertNotEqual(bad.returncode, 0)
        with open(self.dropin) as f:
            self.assertEqual(f.read(), text)
