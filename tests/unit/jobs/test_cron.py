"""Cron jobs in ``list --all``: the crontab parser on real crontab texts, and list on a
staging root with root's /etc/crontab (Debian's stock one plus a job), /etc/cron.d/
files and users' crontabs in /var/spool/cron/crontabs, as root and as a user."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import unittest

from seestack_systemd.jobs import crontab

from ..support import ROOT, HookTestCase

NOBODY = 65534
# Debian 12's stock /etc/crontab, then one job of the operator's.
ETC_CRONTAB = """\
# /etc/crontab: system-wide crontab
# Unlike any other crontab you don't have to run the `crontab'
# command to install the new version when you edit this file
# and files in /etc/cron.d. These files also have username fields,
# that none of the other crontabs do.

SHELL=/bin/sh
# You can also override PATH, but by default, newer versions inherit it from the environment
#PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin

# Example of job definition:
# .---------------- minute (0 - 59)
# |  .------------- hour (0 - 23)
# |  |  .---------- day of month (1 - 31)
# |  |  |  .------- month (1 - 12) OR jan,feb,mar,apr ...
# |  |  |  |  .---- day of week (0 - 6) (Sunday=0 or 7) OR sun,mon,tue,wed,thu,fri,sat
# |  |  |  |  |
# *  *  *  *  * user-name command to be executed
17 *\t* * *\troot    cd / && run-parts --report /etc/cron.hourly
25 6\t* * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.daily; }
47 6\t* * 7\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.weekly; }
52 6\t1 * *\troot\ttest -x /usr/sbin/anacron || { cd / && run-parts --report /etc/cron.monthly; }
#
30 2 * * * root /usr/local/bin/db-backup.sh --full
"""
CRON_D_APP = """\
MAILTO="ops@example.com"
PATH = /usr/local/bin:/usr/bin:/bin
# the app's scheduler, and a job already reported
@daily www-data cd /srv/app && php artisan schedule:run >/dev/null 2>&1
*/5 * * * * root /usr/bin/seestack-hook run health -- /usr/local/bin/health-check
"""
ALICE = """\
# m h  dom mon dow   command
MAILTO=alice
0 3 * * 1 $HOME/bin/report.py --weekly
@reboot /home/alice/bin/warm-cache
15 4 * * * date +\\%F >> /tmp/stamp; echo done
"""
ROOTS = "@hourly python3 -m seestack_systemd run tick -- /bin/true\n5 5 * * * mail -s hi root%body line\n"


class Parser(unittest.TestCase):
    def test_system_crontab(self):
        """/etc/crontab: comments, SHELL=, Debian's run-parts lines left out; a job with its user and schedule"""
        jobs, problems = crontab.parse(ETC_CRONTAB, "/etc/crontab")
        self.assertEqual(problems, [])
        [job] = jobs
        self.assertEqual((job.line, job.owner, job.schedule, job.command, job.wrapped, job.slug),
                         (24, "root", "30 2 * * *", "/usr/local/bin/db-backup.sh --full", False, "db-backup"))
        self.assertEqual(job.suggestion, "30 2 * * * root seestack-hook run db-backup -- /usr/local/bin/db-backup.sh"
                                         " --full")

    def test_cron_d(self):
        """a cron.d file: quoted and spaced env lines; a shell list wrapped whole with sh -c; a wrapped job known"""
        jobs, problems = crontab.parse(CRON_D_APP, "/etc/cron.d/app")
        self.assertEqual(problems, [])
        app, health = jobs
        self.assertEqual((app.owner, app.schedule, app.slug, app.wrapped), ("www-data", "@daily", "artisan", False))
        self.assertEqual(app.suggestion, "@daily www-data seestack-hook run artisan -- sh -c 'cd /srv/app && php"
                                         " artisan schedule:run >/dev/null 2>&1'")
        self.assertEqual((health.owner, health.wrapped, health.suggestion), ("root", True, ""))

    def test_user_crontab(self):
        """a user's crontab has no user field: every job is the owner's; @reboot; % stays cron's stdin"""
        jobs, problems = crontab.parse(ALICE, "/var/spool/cron/crontabs/alice", owner="alice")
        self.assertEqual(problems, [])
        self.assertEqual([(j.owner, j.schedule, j.slug) for j in jobs],
                         [("alice", "0 3 * * 1", "report"), ("alice", "@reboot", "warm-cache"),
                          ("alice", "15 4 * * *", "date")])
        self.assertEqual(jobs[0].suggestion, "0 3 * * 1 seestack-hook run report -- $HOME/bin/report.py --weekly")
        # An escaped \\% is the command's own: still escaped for cron inside the sh -c quotes.
        self.assertEqual(jobs[2].suggestion,
                         "15 4 * * * seestack-hook run date -- sh -c 'date +\\%F >> /tmp/stamp; echo done'")
        root_jobs, _ = crontab.parse(ROOTS, "/var/spool/cron/crontabs/root", owner="root")
        tick, mail = root_jobs
        self.assertTrue(tick.wrapped)  # the module form counts too
        self.assertEqual(mail.suggestion, "5 5 * * * seestack-hook run mail -- mail -s hi root%body line")

    def test_lines_cron_refuses(self):
        """a line with too few fields or an unknown @word is a problem named by file and line, not a job"""
        jobs, problems = crontab.parse("* * * * root\n@sometimes root x\n@daily\n", "/etc/cron.d/bad")
        self.assertEqual(jobs, [])
        self.assertEqual(len(problems), 3)
        self.assertTrue(problems[0].startswith("/etc/cron.d/bad:1: too few fields"), problems)
        self.assertIn("/etc/cron.d/bad:2: unknown schedule @sometimes", problems[1])

    def test_unique_slugs(self):
        """two jobs deriving one slug (or a slug already reported) get -2, -3: runs never mix in one monitor"""
        jobs, _ = crontab.parse("1 * * * * a /x/backup.sh\n2 * * * * b /y/backup\n", "/etc/cron.d/b")
        unique = crontab.unique_slugs(jobs, {"backup"})
        self.assertEqual([j.slug for j in unique], ["backup-2", "backup-3"])
        self.assertIn("seestack-hook run backup-3 -- /y/backup", unique[1].suggestion)


class CronInList(HookTestCase):
    def setUp(self):
        super().setUp()
        self.root = os.path.join(self.dir, "root")
        files = {"etc/crontab": ETC_CRONTAB, "etc/cron.d/app": CRON_D_APP,
                 # cron ignores names with a dot: so does list
                 "etc/cron.d/app.dpkg-old": "* * * * * root /old/job\n",
                 "var/spool/cron/crontabs/alice": ALICE, "var/spool/cron/crontabs/root": ROOTS,
                 "lib/systemd/system/.keep": ""}
        for path, text in files.items():
            full = os.path.join(self.root, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "w") as f:
                f.write(text)
        self.before = self.digest()

    def digest(self) -> str:
        h = hashlib.sha256()
        for dirpath, _, names in sorted(os.walk(self.root)):
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                st = os.stat(path)
                h.update(f"{path} {st.st_mtime_ns} {st.st_mode}".encode())
                with open(path, "rb") as f:
                    h.update(f.read())
        return h.hexdigest()

    @unittest.skipUnless(os.geteuid() == 0, "root reads every crontab")
    def test_root_sees_every_crontab(self):
        """as root: /etc/crontab's job, cron.d's, alice's and root's own, each with owner, schedule, where
        and the line to use instead; wrapped ones and run-parts left out; no file changed"""
        done = self.hook("list", "--all", "--root", self.root)
        self.assertEqual(done.returncode, 0, done.stderr)
        section = done.stdout.split("cron jobs not reported yet", 1)[1]
        for where, instead in (
                ("etc/crontab:24", "30 2 * * * root seestack-hook run db-backup -- /usr/local/bin/db-backup.sh --full"),
                ("etc/cron.d/app:4", "@daily www-data seestack-hook run artisan -- sh -c"),
                ("crontabs/alice:3", "0 3 * * 1 seestack-hook run report -- $HOME/bin/report.py --weekly"),
                ("crontabs/alice:4", "@reboot seestack-hook run warm-cache -- /home/alice/bin/warm-cache"),
                ("crontabs/root:2", "5 5 * * * seestack-hook run mail -- mail -s hi root%body line")):
            self.assertIn(where, section)
            self.assertIn(f"instead: {instead}", section)
        self.assertNotIn("run-parts", section)
        self.assertNotIn("health-check", section)
        self.assertNotIn("/old/job", section)
        self.assertRegex(section, r"\n  www-data +@daily +\S+/etc/cron\.d/app:4 +cd /srv/app")
        rows = [r for r in json.loads(self.hook("list", "--all", "--root", self.root, "-o", "json").stdout)
                if r["kind"] == "cron"]
        self.assertEqual(sorted((r["owner"], r["slug"]) for r in rows),
                         [("alice", "date"), ("alice", "report"), ("alice", "warm-cache"), ("root", "db-backup"),
                          ("root", "mail"), ("www-data", "artisan")])
        self.assertEqual({tuple(sorted(r)) for r in rows},
                         {("command", "file", "kind", "line", "owner", "schedule", "slug", "suggestion")})
        self.assertEqual(self.digest(), self.before, "list changed a file under the root")

    def test_without_all_no_cron(self):
        """plain list (no --all) says nothing of cron"""
        done = self.hook("list", "--root", self.root)
        self.assertNotIn("cron", done.stdout)

    @unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root to become another user")
    def test_a_user_sees_only_their_own(self):
        """as a user (uid 65534, whose crontab is in the root): only that crontab, none of the system's"""
        name = subprocess.run(["id", "-un", str(NOBODY)], capture_output=True, text=True).stdout.strip()
        with open(os.path.join(self.root, "var/spool/cron/crontabs", name), "w") as f:
            f.write("MAILTO=''\n@weekly /usr/local/bin/prune --old\n")
        os.chmod(self.dir, 0o755)
        data = os.path.join(self.dir, "nobody-data")
        os.mkdir(data)
        os.chown(data, NOBODY, NOBODY)
        done = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                               sys.executable, "-m", "seestack_systemd", "list", "--all", "--root", self.root,
                               "--data-dir", data, "-o", "json"],
                              cwd=ROOT, capture_output=True, text=True, timeout=30,
                              env={"PATH": "/usr/bin:/bin", "HOME": data, "SEESTACK_CONFIG": "/dev/null"})
        self.assertEqual(done.returncode, 0, done.stderr)
        rows = [r for r in json.loads(done.stdout) if r["kind"] == "cron"]
        self.assertEqual([(r["owner"], r["schedule"], r["suggestion"]) for r in rows],
                         [(name, "@weekly", "@weekly seestack-hook run prune -- /usr/local/bin/prune --old")])

    @unittest.skipUnless(os.geteuid() == 0, "root reads the system's crontabs")
    def test_not_a_regular_file_is_a_warning(self):
        """a FIFO in cron.d is a warning naming it (list does not hang on it); the rest still shows"""
        os.mkfifo(os.path.join(self.root, "etc/cron.d/fifo"))
        done = self.hook("list", "--all", "--root", self.root, timeout=10)
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertIn("etc/cron.d/fifo is not a regular file", done.stderr)
        self.assertIn("db-backup", done.stdout)


if __name__ == "__main__":
    unittest.main()
