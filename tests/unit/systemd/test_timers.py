"""Timers beyond the simple case: the %i slug rule, per-user paths, list of every job,
nextRunAt, and enable from a pip-installed venv."""

import calendar
import datetime
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

from seestack_systemd.systemd import nextrun
from seestack_systemd.heartbeat import Run, body
from seestack_systemd.receiver.receive import Receiver
from seestack_systemd.slug import expand, slugify
from seestack_systemd.systemd.dropin import render

from ..support import API_KEY, INVOCATION, ROOT, HookTestCase

SERVICE = "[Unit]\nDescription=job\n[Service]\nType=oneshot\nExecStart=/bin/true\n"


class SlugRule(unittest.TestCase):
    def test_rule(self):
        """lower case, each run outside [a-z0-9] one '-', trimmed: Main_DB -> main-db, db.example.com -> db-example-com
        """
        for text, slug in (("Main_DB", "main-db"), ("db.example.com", "db-example-com"), ("--A..b__", "a-b"),
                           ("ümlaut 2", "mlaut-2"), ("x", "x"), ("___", "")):
            self.assertEqual(slugify(text), slug, text)

    def test_expand(self):
        """%i/%I/%p/%j in a slug are expanded from the unit name, each by the rule; %% is a '%'"""
        self.assertEqual(expand("x-%i", "x@Main_DB.service"), "x-main-db")
        self.assertEqual(expand("x-%i", "x@db.example.com.service"), "x-db-example-com")
        # %i is the escaped instance, %I the unescaped path: both end up the same slug words.
        self.assertEqual(expand("m-%I", "m@srv-backup\\x2dold.service"), "m-srv-backup-old")
        self.assertEqual(expand("%p-%j-%i", "db_dump-Prod@A.service"), "db-dump-prod-prod-a")
        self.assertEqual(expand("plain", None), "plain")
        with self.assertRaises(ValueError):
            expand("x-%H", "x@a.service")
        with self.assertRaises(ValueError):
            expand("x-%i", None)
        self.assertEqual(expand("x-%i", "plain.service"), "x")
        with self.assertRaisesRegex(ValueError, "expands to nothing"):
            expand("%i", "plain.service")
        with self.assertRaises(ValueError):
            expand("X-%i", "x@a.service")


class TemplateHooks(HookTestCase):
    def setUp(self):
        super().setUp()
        self.receiver = Receiver(api_key=API_KEY).start()
        self.addCleanup(self.receiver.stop)
        self.env["SEESTACK_ENDPOINT"] = self.receiver.url

    def test_instances_report_as_slugs(self):
        """start/finish with --unit x@Main_DB.service -- 'x-%i' report x-main-db (and x-db-example-com)"""
        for n, (instance, slug) in enumerate((("Main_DB", "x-main-db"), ("db.example.com", "x-db-example-com"))):
            env = {"INVOCATION_ID": INVOCATION[:-1] + str(n)}
            unit = f"x@{instance}.service"
            self.assertEqual(self.hook("start", "--unit", unit, "--", "x-%i", env=env).returncode, 0)
            self.assertTrue(os.path.isdir(os.path.join(self.state_dir, slug)))
            done = self.hook("finish", "--unit", unit, "--status", "success", "--", "x-%i", env=env)
            self.assertEqual(done.returncode, 0, done.stderr)
            [req] = self.receiver.wait_for(n + 1)[n:]
            self.assertEqual(req.json()["slug"], slug)
            self.assertEqual(os.listdir(os.path.join(self.state_dir, slug)), [])

    def test_empty_instance_is_trimmed(self):
        """finish --unit plain.service -- 'x-%i' (no instance) reports as 'x', trimmed by the rule, not 'x-'"""
        done = self.hook("finish", "--unit", "plain.service", "--status", "success", "--", "x-%i")
        self.assertEqual(done.returncode, 0, done.stderr)
        [req] = self.receiver.wait_for(1)
        self.assertEqual(req.json()["slug"], "x")


class Listing(HookTestCase):
    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.dir, "root")
        self.lib = os.path.join(self.root, "lib/systemd/system")
        os.makedirs(self.lib)
        for name, text in (("x@.service", SERVICE), ("x@.timer", "[Timer]\nOnCalendar=daily\n"),
                           ("backup.service", SERVICE), ("backup.timer", "[Timer]\nOnCalendar=daily\n")):
            with open(os.path.join(self.lib, name), "w") as f:
                f.write(text)

    def test_template_enable_and_suggestion(self):
        """enable x@.service --slug 'x-%i' prints example slugs; without %i it warns; list --all suggests %i"""
        listing = self.hook("list", "--all", "--root", self.root).stdout
        self.assertIn("seestack-hook enable 'x@.service' --slug 'x-%i'", listing)
        plain = self.hook("enable", "x@.service", "--slug", "x", "--root", self.root)
        self.assertIn("--slug 'x-%i'", plain.stderr)
        done = self.hook("enable", "x@.service", "--slug", "x-%i", "--force", "--root", self.root)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("x@Main_DB.service as 'x-main-db'", done.stdout)
        self.assertIn("x@db.example.com.service as 'x-db-example-com'", done.stdout)
        with open(os.path.join(self.root, "etc/systemd/system/x@.service.d/seestack.conf")) as f:
            self.assertIn("finish --unit %n -- x-%%i\n", f.read())

    def test_instances_sharing_a_slug(self):
        """list says when two enabled instances map to one slug"""
        self.hook("enable", "x@.service", "--slug", "x-%i", "--root", self.root)
        wants = os.path.join(self.root, "etc/systemd/system/timers.target.wants")
        os.makedirs(wants)
        for instance in ("A_B", "a-b", "c"):
            os.symlink(os.path.join(self.lib, "x@.timer"), os.path.join(wants, f"x@{instance}.timer"))
        done = self.hook("list", "--root", self.root)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("instances x@A_B.service, x@a-b.service all report as 'x-a-b'", done.stderr)
        self.assertIn("x@c.service", done.stdout)
        self.assertNotIn("'x-c'", done.stderr)

    def test_removed_timer_not_scheduled(self):
        """a monitored unit whose timer was removed shows NOT SCHEDULED (removed), with a warning"""
        self.hook("enable", "backup.timer", "--root", self.root)
        ok = self.hook("list", "--root", self.root)
        self.assertNotIn("NOT SCHEDULED", ok.stdout)
        os.unlink(os.path.join(self.lib, "backup.timer"))
        done = self.hook("list", "--root", self.root)
        row = next(line for line in done.stdout.splitlines() if line.startswith("backup.service"))
        self.assertIn("NOT SCHEDULED (removed)", row)
        self.assertIn("backup.timer is removed", done.stderr)

    def test_masked_timer_not_scheduled(self):
        """a monitored unit whose timer is masked shows NOT SCHEDULED (masked)"""
        self.hook("enable", "backup.timer", "--root", self.root)
        os.symlink(os.devnull, os.path.join(self.root, "etc/systemd/system/backup.timer"))
        done = self.hook("list", "--root", self.root)
        row = next(line for line in done.stdout.splitlines() if line.startswith("backup.service"))
        self.assertIn("NOT SCHEDULED (masked)", row)

    def test_no_hook_to_call(self):
        """enable from the checkout, with no seestack-hook installed, refuses rather than write a dead drop-in"""
        if os.path.exists("/usr/bin/seestack-hook"):  # checked now: other suites install the .deb on this host
            self.skipTest("the package is installed here")
        done = self.hook("enable", "backup.service")
        self.assertEqual(done.returncode, 2)
        self.assertIn("no seestack-hook command found", done.stderr)
        self.assertFalse(os.path.exists("/etc/systemd/system/backup.service.d/seestack.conf"))

    def test_every_job_without_systemd(self):
        """list shows the last heartbeat of run, ping and library jobs with their source; exit 0 without systemd"""
        receiver = Receiver(api_key=API_KEY).start()
        self.addCleanup(receiver.stop)
        env = {"SEESTACK_ENDPOINT": receiver.url}
        self.assertEqual(self.hook("run", "job-run", "--", "/bin/true", env=env).returncode, 0)
        self.assertEqual(self.hook("ping", "job-ping", "--status", "failed", env=env).returncode, 0)
        lib = subprocess.run([sys.executable, "-c", "import seestack_systemd as s; s.finish_job(s.start_job('job-lib'),"
                              " 'success')"], cwd=ROOT, env=dict(self.env, **env), capture_output=True, text=True)
        self.assertEqual(lib.returncode, 0, lib.stderr)
        receiver.wait_for(3)
        done = self.hook("list")
        self.assertEqual(done.returncode, 0, done.stderr)
        rows = {line.split()[0]: line.split() for line in done.stdout.splitlines() if line.startswith("job-")}
        self.assertEqual(rows["job-run"][1:3], ["run", "success"])
        self.assertEqual(rows["job-ping"][1:3], ["ping", "failed"])
        self.assertEqual(rows["job-lib"][1:3], ["library", "success"])
        self.assertTrue(all(r[-1] == "delivered" for r in rows.values()), rows)
        if not os.path.isdir("/run/systemd/system"):  # sd_booted(): no systemd here
            self.assertIn("systemd is not answering here", done.stdout)

    def test_user_units_without_a_manager(self):
        """list --user without a user manager: the units come from their drop-ins, none marked NOT SCHEDULED"""
        config_home = os.path.join(self.dir, "config")
        dropin = os.path.join(config_home, "systemd/user/ubackup.service.d/seestack.conf")
        os.makedirs(os.path.dirname(dropin))
        with open(dropin, "w") as f:
            f.write(render("ubackup.service", "ubackup", timer="ubackup.timer"))
        # No user bus: systemctl --user cannot reach a manager.
        env = {"XDG_CONFIG_HOME": config_home, "XDG_RUNTIME_DIR": os.path.join(self.dir, "no-runtime"),
               "DBUS_SESSION_BUS_ADDRESS": "unix:path=" + os.path.join(self.dir, "no-bus")}
        done = self.hook("list", "--user", env=env)
        self.assertEqual(done.returncode, 0, done.stderr)
        row = next(line for line in done.stdout.splitlines() if line.startswith("ubackup.service"))
        self.assertIn("ubackup.timer", row)
        self.assertNotIn("NOT SCHEDULED", row)
        self.assertIn("systemd is not answering here", done.stdout)


class UserPaths(HookTestCase):
    def test_check_user(self):
        """with --user: config $XDG_CONFIG_HOME/seestack/seestack.conf, state $XDG_RUNTIME_DIR/seestack,
        data ~/.local/state"""
        home = os.path.join(self.dir, "home")
        conf = os.path.join(home, "cfg", "seestack", "seestack.conf")
        os.makedirs(os.path.dirname(conf))
        with open(conf, "w") as f:
            f.write("[seestack]\nendpoint = https://user.example\n")
        os.chmod(conf, 0o600)
        env = {"HOME": home, "XDG_CONFIG_HOME": os.path.join(home, "cfg"), "XDG_RUNTIME_DIR": os.path.join(home, "run")}
        clean = {k: v for k, v in self.env.items() if not k.startswith("SEESTACK_")}
        clean.update(env, SEESTACK_API_KEY=API_KEY)
        done = subprocess.run([sys.executable, "-m", "seestack_systemd", "check", "--user"], cwd=ROOT, env=clean,
                              capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)
        settings = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines() if line.split()}
        self.assertEqual(settings["endpoint"], "https://user.example")
        self.assertEqual(settings["state_dir"], os.path.join(home, "run", "seestack"))
        self.assertEqual(settings["data_dir"], os.path.join(home, ".local", "state", "seestack"))
        self.assertIn(conf, done.stdout)

    @unittest.skipUnless(os.geteuid() == 0, "needs root to run a process as another user")
    def test_non_root_reads_own_config(self):
        """a non-root process (nobody) reads ~/.config/seestack/seestack.conf, keeps its records in ~/.local/state"""
        receiver = Receiver(api_key=API_KEY).start()
        self.addCleanup(receiver.stop)
        home = tempfile.mkdtemp(prefix="seestack-user-")
        self.addCleanup(shutil.rmtree, home, True)
        os.makedirs(os.path.join(home, ".config", "seestack"))
        with open(os.path.join(home, ".config", "seestack", "seestack.conf"), "w") as f:
            f.write(f"[seestack]\nendpoint = {receiver.url}\napi_key = {API_KEY}\n")
        for dirpath, _, files in os.walk(home):
            os.chown(dirpath, 65534, 65534)
            for name in files:
                os.chown(os.path.join(dirpath, name), 65534, 65534)
                os.chmod(os.path.join(dirpath, name), 0o600)
        src = tempfile.mkdtemp(prefix="seestack-src-")  # the checkout may not be readable by nobody
        self.addCleanup(shutil.rmtree, src, True)
        shutil.copytree(os.path.join(ROOT, "seestack_systemd"), os.path.join(src, "seestack_systemd"))
        os.chmod(src, 0o755)
        done = subprocess.run([sys.executable, "-m", "seestack_systemd", "ping", "as-nobody", "--status", "success"],
                              cwd=src, env={"PATH": "/usr/bin:/bin", "HOME": home}, user=65534, capture_output=True,
                              text=True, timeout=30)
        self.assertEqual(done.returncode, 0, done.stderr)
        [req] = receiver.wait_for(1)
        self.assertEqual(req.json()["slug"], "as-nobody")
        self.assertTrue(os.path.exists(os.path.join(home, ".local/state/seestack/last/as-nobody.json")))


class NextRun(unittest.TestCase):
    # What systemctl show printed for a timer while its service's ExecStopPost= ran (systemd 252).
    TIMER = {"TimersMonotonic": "{ OnUnitActiveUSec=7s ; next_elapse=6min 31.464474s } "
                                "{ OnActiveUSec=2s ; next_elapse=6min 24.457596s }",
             "NextElapseUSecRealtime": "", "NextElapseUSecMonotonic": "infinity"}

    def test_parse(self):
        """systemctl's timespans and timestamps"""
        self.assertAlmostEqual(nextrun.parse_timespan("6min 31.464474s"), 391.464474)
        self.assertEqual(nextrun.parse_timespan("1w 2d 3h 4min 5s 6ms"), 788645.006)
        self.assertIsNone(nextrun.parse_timespan("infinity"))
        self.assertEqual(nextrun.parse_timestamp("Tue 2026-12-01 22:03:11 UTC"),
                         calendar.timegm((2026, 12, 1, 22, 3, 11)))
        self.assertIsNone(nextrun.parse_timestamp(""))

    def test_monotonic(self):
        """OnUnitActiveSec=: the service's activation plus the span, as wall time; an elapsed OnActiveSec= is not
        next"""
        service = {"InactiveExitTimestampMonotonic": "391478308"}
        self.assertAlmostEqual(nextrun.next_run_at(self.TIMER, service, 1000.0, 392.0, list), 1006.478308)
        inactive = {"TimersMonotonic": "{ OnUnitInactiveUSec=1min ; next_elapse=1min }"}
        self.assertAlmostEqual(nextrun.next_run_at(inactive, {}, 1000.0, 392.0, list), 1060.0)
        self.assertIsNone(nextrun.next_run_at({"TimersMonotonic": "{ OnActiveUSec=2s ; next_elapse=6min 24s }"},
                                              {}, 1000.0, 392.0, list))

    def test_calendar_and_delay(self):
        """the earliest calendar match, plus RandomizedDelaySec= in full"""
        timer = {"TimersCalendar": "{ OnCalendar=*-*-* 02:00:00 ; next_elapse=x }"
                                   " { OnCalendar=hourly ; next_elapse=y }",
                 "RandomizedDelayUSec": "2min"}
        asked = []

        def calendar_next(specs):
            asked.extend(specs)
            return [5000.0, 4000.0]

        self.assertEqual(nextrun.next_run_at(timer, {}, 1000.0, 1.0, calendar_next), 4120.0)
        self.assertEqual(asked, ["*-*-* 02:00:00", "hourly"])

    @unittest.skipUnless(os.access("/usr/bin/systemd-analyze", os.X_OK), "systemd-analyze is not installed")
    def test_systemd_analyze(self):
        """systemd-analyze calendar gives the next local midnight for 'daily'"""
        [got] = nextrun.systemd_calendar_next(["daily"])
        now = datetime.datetime.now()
        midnight = datetime.datetime.combine(now.date() + datetime.timedelta(days=1), datetime.time())
        self.assertEqual(got, time.mktime(midnight.timetuple()))

    def test_body(self):
        """nextRunAt goes on the wire as RFC 3339 UTC when known, and is absent otherwise"""
        run = Run("job", "success", "0" * 8 + "-0000-4000-8000-" + "0" * 12, 1000.0, 1, next_run_at=4120.5)
        self.assertEqual(json.loads(body(run))["nextRunAt"], "1970-01-01T01:08:40.500Z")
        run.next_run_at = None
        self.assertNotIn("nextRunAt", json.loads(body(run)))


class PipInstall(HookTestCase):
    def test_enable_from_venv(self):
        """enable from a pip-installed venv writes a drop-in whose hook path exists and is executable"""
        try:
            import wheel  # noqa: F401 - pip builds the wheel offline with the system's
        except ImportError:
            self.skipTest("python3-wheel is not installed (pip could not build offline)")
        venv = os.path.join(self.dir, "venv")
        made = subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv],
                              capture_output=True, text=True)
        if made.returncode or subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "--version"],
                                             capture_output=True).returncode:
            self.skipTest(f"no venv with pip here: {made.stderr.strip()[-200:]}")
        src = os.path.join(self.dir, "src")  # a copy: pip builds in the tree it is given
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "dist", "build", "*.egg-info", "__pycache__"))
        done = subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", "--no-index",
                               "--no-build-isolation", "--no-deps", src], capture_output=True, text=True, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "HOME": self.dir})
        self.assertEqual(done.returncode, 0, done.stderr[-2000:])
        root = os.path.join(self.dir, "root")
        os.makedirs(os.path.join(root, "lib/systemd/system"))
        with open(os.path.join(root, "lib/systemd/system/backup.service"), "w") as f:
            f.write(SERVICE)
        hook = os.path.join(venv, "bin", "seestack-hook")
        enabled = subprocess.run([hook, "enable", "backup.service", "--root", root], capture_output=True, text=True,
                                 cwd=self.dir, env=dict(self.env, PATH="/usr/bin:/bin"))
        self.assertEqual(enabled.returncode, 0, enabled.stderr)
        with open(os.path.join(root, "etc/systemd/system/backup.service.d/seestack.conf")) as f:
            lines = [line for line in f if line.startswith(("ExecStartPre=", "ExecStopPost="))]
        self.assertEqual(len(lines), 2)
        for line in lines:
            path = line.split("=", 1)[1].lstrip("+-").split()[0]
            self.assertEqual(path, hook)
            self.assertTrue(stat.S_ISREG(os.stat(path).st_mode) and os.access(path, os.X_OK), path)
        self.assertIn(f"the drop-in calls {hook}, not /usr/bin/seestack-hook", enabled.stderr)


if __name__ == "__main__":
    unittest.main()
