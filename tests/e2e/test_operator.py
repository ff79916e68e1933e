"""An operator's tools in booted Debian 11, 12 and 13 with the installed .deb: bash
completion in real bash with Debian's bash-completion, and the cron jobs ``list --all``
finds with Debian's cron (root's crontab, a cron.d file, a user's crontab read by the
user through ``crontab -l``).

bash-completion and cron are installed from the Debian mirror with the .deb, as an
operator would (the containers share the host's network). Completion is driven as
bash drives it: bash_completion sourced, the completion loaded by bash-completion's
own loader from /usr/share/bash-completion/completions/seestack-hook, COMP_WORDS,
COMP_CWORD, COMP_LINE and COMP_POINT set for a line typed so far, the function
``complete -p`` names called, and COMPREPLY printed.
"""

from __future__ import annotations

import json
import os
import socket
import unittest
from typing import List

from tests.e2e import harness
from tests.e2e.package import built_deb

USER = "alice"
# SEESTACK_E2E_RELEASES=debian-12 (comma-separated) runs only those releases, for iterating.
SELECTED = [r for r in os.environ.get("SEESTACK_E2E_RELEASES", ",".join(harness.RELEASES)).split(",") if r]
UNIT = "[Unit]\nDescription=e2e {name}\n[Service]\nType=oneshot\nExecStart=/bin/true\n"
TIMER = "[Timer]\nOnCalendar=daily\n[Install]\nWantedBy=timers.target\n"
# Print the completions bash would offer for the line typed so far ($1), one per line.
COMPLETE = r"""
source /usr/share/bash-completion/bash_completion
line=$1
read -ra COMP_WORDS <<< "$line"
[[ $line == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
COMP_LINE=$line
COMP_POINT=${#line}
# bash-completion's loader finds the file by the command's name, as on a first <TAB>.
declare -F _comp_load >/dev/null && _comp_load seestack-hook || _completion_loader seestack-hook
spec=$(complete -p seestack-hook) || exit 3
function=${spec#*-F }
function=${function%% *}
"$function" seestack-hook "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Operator(harness.ReleaseTest):
    c: harness.Container

    @classmethod
    def setUpClass(cls) -> None:
        harness.require_root("the e2e suite boots Debian containers with systemd-nspawn")
        if cls.release not in SELECTED:
            raise unittest.SkipTest(f"{cls.release} not in SEESTACK_E2E_RELEASES")
        deb = built_deb()
        cls.c = harness.Container(cls.release, binds=[(str(deb.parent), "/mnt/dist", True)])
        cls.addClassCleanup(cls.c.poweroff)
        cls.c.boot()
        c = cls.c
        c.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", f"/mnt/dist/{deb.name}",
               "bash-completion", "cron"], timeout=300, env={"DEBIAN_FRONTEND": "noninteractive"})
        for name in ("e2e-job", "e2e-other"):
            c.write_file(f"/etc/systemd/system/{name}.service", UNIT.format(name=name))
            c.write_file(f"/etc/systemd/system/{name}.timer", TIMER)
        c.systemctl("daemon-reload")
        c.run(["seestack-hook", "enable", "e2e-job.timer"])
        # A last-heartbeat record: sent while the backend is down, so it waits in the spool.
        c.write_file("/etc/seestack/api-key", "sk-e2e-operator-0000\n", 0o600)
        c.write_file("/etc/seestack/seestack.conf", f"[seestack]\nendpoint = http://127.0.0.1:{closed_port()}\n"
                     "api_key_file = /etc/seestack/api-key\ndeadline = 1\n", 0o600)
        c.run(["seestack-hook", "ping", "--status", "success", "nightly-report"], check=False, timeout=30)
        c.run(["mkdir", "-p", "/root/other-data/last"])
        c.write_file("/root/other-data/last/elsewhere-job.json", "{}")
        # A lingering user with a user timer of their own.
        c.run(["useradd", "--create-home", "--shell", "/bin/bash", USER])
        cls.uid = c.run(["id", "-u", USER]).stdout.strip()
        c.run(["mkdir", "-p", "/var/lib/systemd/linger"])
        c.run(["touch", f"/var/lib/systemd/linger/{USER}"])
        c.systemctl("start", f"user@{cls.uid}.service")
        cls.as_user("mkdir", "-p", f"/home/{USER}/.config/systemd/user")
        cls.as_user("sh", "-c", f"printf '{UNIT.format(name='u')}' > ~/.config/systemd/user/ubackup.service;"
                                f" printf '{TIMER}' > ~/.config/systemd/user/ubackup.timer")
        cls.as_user("systemctl", "--user", "daemon-reload")

    @classmethod
    def as_user(cls, *argv: str, check: bool = True, input: str = None):
        env = ["env", "-i", f"HOME=/home/{USER}", f"USER={USER}", "PATH=/usr/bin:/bin", "LANG=C.UTF-8",
               f"XDG_RUNTIME_DIR=/run/user/{cls.uid}", f"DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{cls.uid}/bus"]
        return cls.c.run(["runuser", "-u", USER, "--", *env, *argv], check=check, input=input, timeout=60)

    def complete(self, line: str, user: bool = False) -> List[str]:
        argv = ["bash", "-c", COMPLETE, "bash", line]
        done = self.as_user(*argv, check=False) if user else self.c.run(argv, check=False)
        self.assertEqual(done.returncode, 0, f"{line!r}: {done.stderr}")
        return [word for word in done.stdout.splitlines() if word]

    def test_commands_and_flags(self):
        """commands, each command's flags, and the fixed values of --status and --output"""
        self.assertEqual(self.complete("seestack-hook en"), ["enable"])
        self.assertEqual(sorted(self.complete("seestack-hook ")),
                         sorted("start finish ping run check receive flush enable disable list".split()))
        self.assertEqual(self.complete("seestack-hook list --o"), ["--output"])
        self.assertEqual(self.complete("seestack-hook list -o "), ["table", "json", "json-pretty"])
        self.assertEqual(self.complete("seestack-hook finish --status "), ["success", "failed"])
        self.assertEqual(sorted(self.complete("seestack-hook receive --")),
                         ["--help", "--jsonl", "--listen", "--reply", "--try"])
        enable = self.complete("seestack-hook enable --")
        for flag in ("--slug", "--force", "--root", "--user", "--no-reload", "--endpoint", "--deadline"):
            self.assertIn(flag, enable)
        self.assertNotIn("--status", enable)

    def test_units_for_enable(self):
        """enable completes the system's timers and services; with --user, the user's manager's"""
        found = self.complete("seestack-hook enable e2e-")
        self.assertEqual(sorted(found), ["e2e-job.service", "e2e-job.timer", "e2e-other.service", "e2e-other.timer"])
        self.assertIn("seestack-flush.timer", self.complete("seestack-hook enable seestack-"))
        user = self.complete("seestack-hook enable --user ub", user=True)
        self.assertEqual(sorted(user), ["ubackup.service", "ubackup.timer"])
        self.assertEqual(self.complete("seestack-hook enable ub"), [])

    def test_monitored_units_for_disable(self):
        """disable completes the units with a drop-in of enable (and the timer it names), none other"""
        self.assertEqual(sorted(self.complete("seestack-hook disable ")), ["e2e-job.service", "e2e-job.timer"])

    def test_slugs(self):
        """slugs from the last-heartbeat records and the drop-ins; --data-dir's records when given"""
        for line in ("seestack-hook ping ", "seestack-hook run ", "seestack-hook finish --status failed ",
                     "seestack-hook check --send "):
            with self.subTest(line):
                self.assertEqual(sorted(self.complete(line)), ["e2e-job", "nightly-report"])
        self.assertEqual(self.complete("seestack-hook ping --data-dir /root/other-data el"), ["elsewhere-job"])
        self.assertEqual(self.complete("seestack-hook ping nightly-report "), [])  # one slug only

    def test_run_completes_the_command(self):
        """after run's slug (and its own options), the command and then that command's own completion"""
        self.assertIn("systemctl", self.complete("seestack-hook run nightly-report systemc"))
        words = self.complete("seestack-hook run nightly-report --success-exit 24 systemctl sta")
        self.assertIn("start", words)
        self.assertIn("status", words)
        self.assertIn("--success-exit", self.complete("seestack-hook run nightly-report --s"))

    def test_cron_jobs_in_list(self):
        """with root's crontab, a cron.d file and a user's crontab in place: root sees all three, the user
        (by crontab -l) only their own; each with the line to use instead; no crontab changed"""
        c = self.c
        c.write_file("/etc/cron.d/e2e-app", "MAILTO=root\n*/10 * * * * www-data /usr/local/bin/sync-app.sh --all\n")
        c.run(["crontab", "-"], input="@daily /usr/local/bin/rootjob --x\n")
        c.run(["crontab", "-u", USER, "-"], input="0 3 * * * /home/alice/bin/report.py\n")
        before = c.sh("md5sum /etc/crontab /etc/cron.d/* /var/spool/cron/crontabs/*").stdout
        ours = ("/etc/cron.d/e2e-app", "/var/spool/cron/crontabs/root", "/var/spool/cron/crontabs/alice")
        # Other packages' cron.d files (e2fsprogs' e2scrub_all) are jobs too; only ours are asserted on.
        rows = [r for r in json.loads(c.run(["seestack-hook", "list", "--all", "-o", "json"]).stdout)
                if r["kind"] == "cron" and r["file"] in ours]
        self.assertEqual(sorted((r["owner"], r["suggestion"]) for r in rows), [
            ("alice", "0 3 * * * seestack-hook run report -- /home/alice/bin/report.py"),
            ("root", "@daily seestack-hook run rootjob -- /usr/local/bin/rootjob --x"),
            ("www-data", "*/10 * * * * www-data seestack-hook run sync-app -- /usr/local/bin/sync-app.sh --all")])
        table = c.run(["seestack-hook", "list", "--all"]).stdout
        self.assertIn("/etc/cron.d/e2e-app:2", table)
        self.assertNotIn("run-parts", table)  # Debian's stock /etc/crontab: not jobs to wrap
        self.assertNotEqual(self.as_user("ls", "/var/spool/cron/crontabs", check=False).returncode, 0)
        mine = self.as_user("seestack-hook", "list", "--all", "-o", "json")
        self.assertEqual([(r["owner"], r["file"], r["suggestion"]) for r in json.loads(mine.stdout)
                          if r["kind"] == "cron"],
                         [("alice", "/var/spool/cron/crontabs/alice",
                           "0 3 * * * seestack-hook run report -- /home/alice/bin/report.py")])
        self.assertEqual(c.sh("md5sum /etc/crontab /etc/cron.d/* /var/spool/cron/crontabs/*").stdout, before)


harness.per_release(Operator, globals())


if __name__ == "__main__":
    unittest.main()
