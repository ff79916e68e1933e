"""What the README and the man page say each of their command lines does: the data of
tests/unit/across/test_docs.py. Every line either document shows must have an entry here (the
test fails on a line without one, and on an entry no document shows any more).

An entry is one of:
- ``run(EXIT, says=TEXT, heartbeat="SLUG STATUS")``: run in the sandbox (a scratch setup
  and a local receiver, as ``receive --try`` makes them); it must exit EXIT, print TEXT
  (stdout or stderr) when given, and the receiver must print a heartbeat line for SLUG
  with STATUS when given.
- ``serve(says=TEXT)``: a server (``receive``). Started on a free port instead of 8099
  (the only rewrite of a line, with /tmp/ pointing into the sandbox), it must print TEXT;
  with ``--try`` its export lines are pasted into the environment of the lines after it,
  as the README tells the reader to.
- ``skip(WHY)``: needs systemd, root's installed package, containers or another host.
  Listed with the reason, so that none is skipped silently.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional


class Expect(NamedTuple):
    kind: str  # "run", "serve" or "skip"
    exit: int = 0
    says: Optional[str] = None
    heartbeat: Optional[str] = None
    why: str = ""


def run(exit: int, says: Optional[str] = None, heartbeat: Optional[str] = None) -> Expect:
    return Expect("run", exit, says, heartbeat)


def serve(says: str) -> Expect:
    return Expect("serve", says=says)


def skip(why: str) -> Expect:
    return Expect("skip", why=why)


SYSTEMD = "needs a booted systemd and root (tests/e2e/test_systemd.py)"
INSTALLED = "needs the installed package, as root (tests/e2e/test_package.py)"

EXPECTED: Dict[str, Expect] = {
    # README: quick start, install
    "make demo    # as root: boots a Debian 12 container with real systemd": skip("root and containers (make demo)"),
    "make test    # as root: all tests (unit + end-to-end in Debian 11/12/13 containers)":
        skip("root and containers: this suite itself"),
    "make deb && apt install ./dist/seestack-systemd_0.1.0-1_all.deb":
        skip("installs the package as root; make deb as root is tests/e2e/test_package.py's Build"),
    "editor /etc/seestack/seestack.conf        # set endpoint and api_key_file": skip("an editor on root's config"),
    "install -m 600 /dev/null /etc/seestack/api-key && editor /etc/seestack/api-key":
        skip("root's /etc/seestack and an editor"),
    "seestack-hook check --send backup   # shows every setting and its source; sends one success heartbeat":
        run(0, says="configuration OK", heartbeat="backup success"),
    'seestack-hook enable backup.timer   # monitors backup.service (the service the timer starts) as slug "backup"':
        skip(SYSTEMD),
    "seestack-hook list --all            # what is monitored, last heartbeats, timers not monitored yet":
        skip(SYSTEMD),
    # README: from a checkout, or with pip
    "python3 -m seestack_systemd --help           # in the checkout's top directory":
        run(0, says="usage: seestack-hook"),
    "python3 -m seestack_systemd receive --try     # the try-it path below, without installing anything":
        serve(says="export SEESTACK_DATA_DIR="),
    "python3 -m venv ~/venv/seestack && ~/venv/seestack/bin/pip install .":
        skip("a venv and a pip build from PyPI: slow for the unit suite (issue 11's venv test installs one)"),
    "~/venv/seestack/bin/seestack-hook --version": skip("needs the venv of the line before"),
    # README and man page: cron
    "30 2 * * * root seestack-hook run nightly-backup --success-exit 24 rsync -a /srv/ backup:/srv/":
        skip("a crontab line: cron runs it as root, with rsync to a backup host"),
    # README: user timers (the rest of a user's setup is tests/e2e/test_timers.py's lingering user)
    "mkdir -p ~/.config/seestack": run(0),
    "install -m 600 /dev/null ~/.config/seestack/seestack.conf   # private, like the key file": run(0),
    "printf '[seestack]\\nendpoint = https://seestack.example.com\\napi_key_file = %s\\n' ~/.config/seestack/api-key"
    " > ~/.config/seestack/seestack.conf": run(0),
    "install -m 600 /dev/null ~/.config/seestack/api-key && editor ~/.config/seestack/api-key":
        skip("an editor on the user's key file"),
    "seestack-hook check --user --send ubackup   # the user's settings and where each comes from":
        run(0, says="configuration OK", heartbeat="ubackup success"),
    "seestack-hook enable --user ubackup.timer    # writes ~/.config/systemd/user/ubackup.service.d/seestack.conf":
        skip("needs a lingering user's systemd manager (tests/e2e/test_timers.py)"),
    "seestack-hook list --user                    # the user's monitored units and last heartbeats":
        skip("needs a lingering user's systemd manager (tests/e2e/test_timers.py)"),
    'systemd-analyze security seestack-flush.service   # "Overall exposure level ...: 1.6 OK" on Debian 11, 12 and 13':
        skip("needs the installed unit in a booted systemd (tests/e2e/test_hardening.py)"),
    # README: trying it without production
    "seestack-hook receive --try               # terminal 1: prints export lines, then listens on 127.0.0.1:8099":
        serve(says="export SEESTACK_DATA_DIR="),
    'seestack-hook check --send demo           # prints every setting, "configuration OK", and sends one heartbeat':
        run(0, says="configuration OK", heartbeat="demo success"),
    "seestack-hook run demo -- sh -c 'echo \"disk full\" >&2; exit 3'     # exits 3; the receiver prints a failed run":
        run(3, says="disk full", heartbeat="demo failed"),
    "seestack-hook ping demo --status success --message 'manual check'":
        run(0, heartbeat="demo success"),
    # README: uninstall
    "apt-get remove seestack-systemd": skip(INSTALLED),
    "grep -l 'seestack-hook enable' /etc/systemd/system/*.d/seestack.conf   # ours": skip(INSTALLED),
    "rm /etc/systemd/system/backup.service.d/seestack.conf && systemctl daemon-reload": skip(SYSTEMD),
    # man page: per-command examples
    "seestack-hook enable backup.timer": skip(SYSTEMD),
    "seestack-hook enable 'db-dump@.service' --slug 'db-dump-%i'": skip(SYSTEMD),
    "seestack-hook disable backup.service": skip(SYSTEMD),
    "seestack-hook disable backup.timer": skip(SYSTEMD),
    "seestack-hook list --all": skip(SYSTEMD),
    "seestack-hook list --all            # ends with the cron jobs not reported yet":
        run(0, says="cron jobs not reported yet"),
    "seestack-hook list --output=json": run(0, says="["),  # the man page shows it before any heartbeat
    "seestack-hook list --output=json    # one JSON array, an object per row, for scripts": run(0, says='"kind": "job"'),
    "ExecStartPre=+-/usr/bin/seestack-hook start --unit %n -- nightly-backup":
        skip("a drop-in line: systemd runs it (tests/e2e/test_systemd.py)"),
    "ExecStopPost=+-/usr/bin/seestack-hook finish --unit %n -- nightly-backup":
        skip("a drop-in line: systemd runs it (tests/e2e/test_systemd.py)"),
    "seestack-hook finish --status failed nightly-backup    # outside systemd":
        run(0, heartbeat="nightly-backup failed"),
    "seestack-hook ping nightly-backup --status success --message 'manual check'":
        run(0, heartbeat="nightly-backup success"),
    "seestack-hook check --send nightly-backup": run(0, says="configuration OK", heartbeat="nightly-backup success"),
    "seestack-hook flush": run(0),
    "seestack-hook receive --try": serve(says="export SEESTACK_DATA_DIR="),
    "seestack-hook receive --listen 127.0.0.1:8099 --jsonl /tmp/heartbeats.jsonl --reply 503,202":
        serve(says="listening on http://127.0.0.1:"),
    # man page: EXAMPLES
    "seestack-hook check --send backup": run(0, says="configuration OK", heartbeat="backup success"),
    "journalctl -u backup.service -n 20": skip(SYSTEMD),
    "seestack-hook check --send demo": run(0, says="configuration OK", heartbeat="demo success"),
    "seestack-hook run demo -- sh -c 'exit 3'": run(3, heartbeat="demo failed"),
}
