"""enable/disable/list on a staging root, through the real CLI."""

import os
import stat
import subprocess
import sys
import unittest

from seestack_systemd.systemd.units import check_slug_pattern, default_slug

from ..support import ROOT, HookTestCase

SERVICE = "[Unit]\nDescription=Nightly backup\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
TIMER = "[Timer]\nOnCalendar=daily\n[Install]\nWantedBy=timers.target\n"


class StagingRoot(HookTestCase):
    """A staging root holding a few system units."""

    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.dir, "root")
        self.lib = os.path.join(self.root, "lib/systemd/system")
        os.makedirs(self.lib)
        for name, text in (("backup.service", SERVICE), ("backup.timer", TIMER), ("db_dump@.service", SERVICE),
                           ("report.service", SERVICE), ("report.timer", "[Timer]\nOnCalendar=hourly\nUnit=report.service\n"),
                           ("other.timer", "[Timer]\nOnCalendar=weekly\nUnit=cleanup.service\n"),
                           ("cleanup.service", SERVICE)):
            with open(os.path.join(self.lib, name), "w") as f:
                f.write(text)

    def dropin(self, service):
        return os.path.join(self.root, "etc/systemd/system", service + ".d", "seestack.conf")


class Units(StagingRoot):

    def test_enable_timer(self):
        """enable NAME.timer writes the drop-in for the service it triggers, slug derived and printed"""
        done = self.hook("enable", "backup.timer", "--root", self.root)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("'backup'", done.stdout)
        with open(self.dropin("backup.service")) as f:
            text = f.read()
        self.assertIn("ExecStartPre=+-/usr/bin/seestack-hook start --unit %n -- backup\n", text)
        self.assertIn("ExecStopPost=+-/usr/bin/seestack-hook finish --unit %n -- backup\n", text)
        self.assertEqual(stat.S_IMODE(os.stat(self.dropin("backup.service")).st_mode), 0o644)

    def test_idempotent_and_force(self):
        """enable twice is a no-op; another slug needs --force"""
        self.hook("enable", "backup.service", "--root", self.root)
        again = self.hook("enable", "backup.service", "--root", self.root)
        self.assertIn("already monitored", again.stdout)
        other = self.hook("enable", "backup.service", "--slug", "nightly", "--root", self.root)
        self.assertEqual(other.returncode, 2)
        self.assertIn("--force", other.stderr)
        forced = self.hook("enable", "backup.service", "--slug", "nightly", "--force", "--root", self.root)
        self.assertEqual(forced.returncode, 0, forced.stderr)
        with open(self.dropin("backup.service")) as f:
            self.assertIn(" nightly\n", f.read())

    def test_template_with_specifier(self):
        """a template takes --slug 'db-dump-%i'; a bad pattern is refused"""
        done = self.hook("enable", "db_dump@.service", "--slug", "db-dump-%i", "--root", self.root)
        self.assertEqual(done.returncode, 0, done.stderr)
        with open(self.dropin("db_dump@.service")) as f:
            self.assertIn("finish --unit %n -- db-dump-%%i\n", f.read())
        bad = self.hook("enable", "db_dump@.service", "--slug", "DB-%i", "--root", self.root)
        self.assertEqual(bad.returncode, 2)
        self.assertEqual(len(bad.stderr.strip().splitlines()), 1)

    def test_unknown_unit(self):
        """enable on a unit that does not exist is a clear error and writes nothing"""
        done = self.hook("enable", "nope.service", "--root", self.root)
        self.assertEqual(done.returncode, 2)
        self.assertIn("not found", done.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.root, "etc")))

    def test_other_unit_types_refused(self):
        """enable backup.socket (or .target, .path...) is one line naming the service or timer to give; nothing written"""
        with open(os.path.join(self.lib, "backup.socket"), "w") as f:
            f.write("[Socket]\nListenStream=9999\n")
        for name in ("backup.socket", "multi-user.target"):
            done = self.hook("enable", name, "--root", self.root)
            self.assertEqual(done.returncode, 2, done.stderr)
            self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
            self.assertIn(f"{name} is a {name.rpartition('.')[2]} unit", done.stderr)
            self.assertNotIn(".service.service", done.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.root, "etc")))

    def test_disable_removes_exactly(self):
        """disable removes our drop-in and leaves the operator's own drop-ins alone"""
        self.hook("enable", "backup.service", "--root", self.root)
        own = os.path.join(os.path.dirname(self.dropin("backup.service")), "override.conf")
        with open(own, "w") as f:
            f.write("[Service]\nNice=5\n")
        done = self.hook("disable", "backup.timer", "--root", self.root)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertFalse(os.path.exists(self.dropin("backup.service")))
        self.assertTrue(os.path.exists(own))
        os.unlink(own)
        self.hook("enable", "report.service", "--root", self.root)
        self.hook("disable", "report.service", "--root", self.root)
        self.assertFalse(os.path.exists(os.path.dirname(self.dropin("report.service"))))

    def test_disable_leaves_foreign_file(self):
        """a seestack.conf not written by us is neither replaced nor removed"""
        path = self.dropin("backup.service")
        os.makedirs(os.path.dirname(path))
        with open(path, "w") as f:
            f.write("[Service]\nExecStartPre=/bin/true\n")
        self.assertEqual(self.hook("enable", "backup.service", "--root", self.root).returncode, 2)
        self.assertEqual(self.hook("disable", "backup.service", "--root", self.root).returncode, 2)
        self.assertTrue(os.path.exists(path))

    def test_list_all(self):
        """list shows monitored units with slug and timer; --all adds the command for unmonitored timers"""
        self.hook("enable", "report.timer", "--root", self.root)
        done = self.hook("list", "--all", "--root", self.root)
        self.assertEqual(done.returncode, 0, done.stderr)
        lines = done.stdout.splitlines()
        row = next(line for line in lines if line.startswith("report.service"))
        self.assertIn("report.timer", row)
        self.assertIn("none yet", row)
        self.assertIn("seestack-hook enable backup.timer", done.stdout)
        self.assertIn("seestack-hook enable other.timer", done.stdout)
        self.assertNotIn("seestack-hook enable report.timer", done.stdout)

    def test_slug_helpers(self):
        """slugs derived from unit names follow the rule"""
        self.assertEqual(default_slug("DB_Dump@Main.service"), "db-dump-main")
        self.assertEqual(default_slug("a..b--c.service"), "a-b-c")
        self.assertEqual(check_slug_pattern("backup-%i"), "backup-%i")
        with self.assertRaises(ValueError):
            check_slug_pattern("backup-%H")


class StagingHook(StagingRoot):
    """enable --root from a bare checkout: the drop-in's hook path must exist somewhere."""

    @unittest.skipIf(os.path.exists("/usr/bin/seestack-hook"),
                     "the package is installed here (as in the e2e containers): the hook exists on the host")
    def test_warns_when_the_hook_exists_nowhere(self):
        done = self.hook("enable", "backup.timer", "--root", self.root)
        self.assertEqual(done.returncode, 0, done.stderr)
        warning = [line for line in done.stderr.splitlines() if "/usr/bin/seestack-hook" in line]
        self.assertEqual(len(warning), 1, done.stderr)
        self.assertIn("exists neither under", warning[0])
        self.assertIn("pip install", warning[0])

    def test_no_warning_when_the_root_has_the_hook(self):
        os.makedirs(os.path.join(self.root, "usr/bin"))
        with open(os.path.join(self.root, "usr/bin/seestack-hook"), "w") as f:
            f.write("#!/bin/sh\n")
        done = self.hook("enable", "backup.timer", "--root", self.root)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertNotIn("exists neither", done.stderr)


class InstanceSlugNeedsTemplate(StagingRoot):
    def test_refused_on_a_plain_unit(self):
        """enable --slug 'er-%i' on a unit that is no template: exit 2, one line naming the rule, nothing written"""
        for pattern in ("er-%i", "er-%I"):
            done = self.hook("enable", "backup.timer", "--slug", pattern, "--force", "--root", self.root)
            self.assertEqual(done.returncode, 2, done.stdout)
            self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
            self.assertIn("not a template", done.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.root, "etc")))
        ok = self.hook("enable", "backup.timer", "--slug", "er-%p", "--root", self.root)
        self.assertEqual(ok.returncode, 0, ok.stderr)


class UserUnits(HookTestCase):
    """--user: units in a staging root's user unit dirs; a clear way out without a user manager."""

    def test_user_root_finds_system_wide_user_units(self):
        """enable --user --root DIR finds units in DIR/etc/systemd/user and DIR/usr/lib/systemd/user"""
        root = os.path.join(self.dir, "root")
        for where, name, text in (("etc/systemd/user", "backup.timer", TIMER),
                                  ("usr/lib/systemd/user", "backup.service", SERVICE)):
            os.makedirs(os.path.join(root, where), exist_ok=True)
            with open(os.path.join(root, where, name), "w") as f:
                f.write(text)
        done = self.hook("enable", "--user", "--root", root, "backup.timer", env={"HOME": "/home/u"})
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertTrue(os.path.isfile(os.path.join(root, "home/u/.config/systemd/user/backup.service.d",
                                                    "seestack.conf")))
        listed = self.hook("list", "--user", "--root", root, env={"HOME": "/home/u"})
        self.assertIn("backup.timer", listed.stdout)

    def test_no_user_manager_says_what_to_do(self):
        """enable --user with no user manager reachable names enable-linger and XDG_RUNTIME_DIR"""
        venv = os.path.join(self.dir, "venv", "bin")
        os.makedirs(venv)
        os.symlink(sys.executable, os.path.join(venv, "python3"))
        with open(os.path.join(venv, "seestack-hook"), "w") as f:
            f.write("#!/bin/sh\n")
        os.chmod(os.path.join(venv, "seestack-hook"), 0o755)
        env = dict(self.env, HOME=self.dir)
        env.pop("XDG_RUNTIME_DIR", None)
        done = subprocess.run([os.path.join(venv, "python3"), "-m", "seestack_systemd", "enable", "--user",
                               "backup.timer"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
        self.assertNotEqual(done.returncode, 0)
        self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
        self.assertIn("loginctl enable-linger", done.stderr)
        self.assertIn("XDG_RUNTIME_DIR", done.stderr)


class ListingGaps(StagingRoot):
    """list: a missing root, a systemd that cannot be asked, instance timers in a root."""

    def test_missing_root_is_an_error(self):
        done = self.hook("list", "--root", os.path.join(self.dir, "nonexistent"))
        self.assertEqual(done.returncode, 2)
        self.assertEqual(done.stdout, "")
        self.assertEqual(len(done.stderr.strip().splitlines()), 1, done.stderr)
        self.assertIn("no such directory", done.stderr)

    @unittest.skipIf(os.path.isdir("/run/systemd/system"), "systemd runs here: it can be asked")
    def test_all_without_systemd_says_it_could_not_look(self):
        """with no systemd to ask (no systemctl on PATH-less host, or not booted), --all does not claim '(none)'"""
        done = self.hook("list", "--all")
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("systemd is not answering", done.stdout.splitlines()[0])
        section = done.stdout.split("timers not monitored yet:", 1)[1]
        self.assertNotIn("(none)", section)
        self.assertIn("could not look", section)

    def test_all_lists_instance_timers(self):
        """--root --all lists db_dump@main.timer (Unit=db-dump@Main_DB.service) beside its template's command"""
        for name, text in (("db-dump@.service", SERVICE), ("db-dump@.timer", "[Timer]\nOnCalendar=daily\n"),
                           ("db_dump@main.timer", "[Timer]\nOnCalendar=daily\nUnit=db-dump@Main_DB.service\n")):
            with open(os.path.join(self.lib, name), "w") as f:
                f.write(text)
        done = self.hook("list", "--all", "--root", self.root)
        self.assertEqual(done.returncode, 0, done.stderr)
        row = next((line for line in done.stdout.splitlines() if "db_dump@main.timer" in line), "")
        self.assertIn("db-dump@Main_DB.service", row)
        self.assertIn("db-dump@.service", row)
        self.assertEqual(done.stdout.count("seestack-hook enable 'db-dump@.service'"), 1)
