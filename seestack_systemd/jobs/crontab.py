"""Cron jobs in crontab text, for ``list --all``: which jobs are not reported to SeeStack,
and the line that would report them (``seestack-hook run SLUG -- COMMAND``).

A pure function of a file's text: cli/listing.py reads the files. The syntax is Debian
cron's (crontab(5)): blank lines and ``#`` comments; ``NAME=value`` environment
lines; a schedule of five fields or one ``@reboot``/``@daily``-style word; in the
system crontab (/etc/crontab) and /etc/cron.d/* then the user the job runs as; then
the command, which cron hands to ``sh -c`` (an unescaped ``%`` ends it: what follows
is the command's stdin).

Not jobs to wrap: ``run-parts`` lines, such as Debian's stock /etc/crontab's for
/etc/cron.hourly, daily, weekly and monthly. They run many scripts at once, and one
slug for all of them would say little; the scripts are the jobs (wrap the work inside
them, or give each a line of its own).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, replace

from seestack_systemd.slug import slug_from_name

NICKNAMES = ("@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# NAME=value or NAME = value, the name optionally quoted (crontab(5)); a job line starts with its schedule.
_ENV = re.compile(r"""^\s*("[^"]*"|'[^']*'|[^\s=]+)\s*=""")
# Already reported: seestack-hook run (any path, e.g. /usr/bin/seestack-hook), or the module.
_WRAPPED = re.compile(r"(^|[\s;&|(])(\S*/)?(seestack-hook|python3? -m seestack_systemd)\s+run\s")
_DISPATCHER = re.compile(r"(^|[\s;&|({])(\S*/)?run-parts\s")
# Words that only prepare the real command: the slug comes from the command after them.
_PREFIXES = {"cd", "test", "[", "[[", "true", ":", "sleep", "umask", "export", "set", "exec", "nice", "ionice",
             "chronic", "env", "timeout", "nohup", "then", "{", "(", "if", "!"}
# Interpreters: the script they run names the job (php artisan -> artisan, python3 sync.py -> sync).
_INTERPRETERS = {"sh", "bash", "dash", "python", "python3", "perl", "php", "ruby", "node", "Rscript"}


@dataclass(frozen=True)
class CronJob:
    """One job line: where it is, who runs it, when, what; and whether it reports already."""

    file: str
    line: int
    owner: str
    schedule: str
    command: str
    wrapped: bool
    slug: str
    system: bool  # a line of /etc/crontab or /etc/cron.d/*, which names its user

    @property
    def suggestion(self) -> str:
        """The whole crontab line to use instead ("" when it reports already)."""
        if self.wrapped:
            return ""
        return " ".join([self.schedule, *([self.owner] if self.system else []), wrap(self.slug, self.command)])


def parse(text: str, path: str, owner: str | None = None) -> tuple[list[CronJob], list[str]]:
    """(the jobs of crontab ``text``, one problem per line cron would refuse). ``owner``
    None: a system crontab (/etc/crontab, /etc/cron.d/*), whose lines name the user;
    else a user's crontab, whose jobs all run as ``owner``. run-parts lines are left out."""
    jobs: list[CronJob] = []
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or _ENV.match(line):
            continue
        fields = 1 if line.startswith("@") else 5
        if fields == 1 and line.split()[0] not in NICKNAMES:
            problems.append(f"{path}:{number}: unknown schedule {line.split()[0]}; cron skips this line")
            continue
        fields += owner is None  # the user field
        parts = line.split(None, fields)
        if len(parts) <= fields:
            problems.append(f"{path}:{number}: too few fields for a cron job; cron skips this line")
            continue
        schedule, command = " ".join(parts[:fields - (owner is None)]), parts[fields]
        user = owner if owner is not None else parts[fields - 1]
        if _DISPATCHER.search(command):
            continue
        wrapped = bool(_WRAPPED.search(command))
        jobs.append(CronJob(path, number, user, schedule, command, wrapped, "" if wrapped else command_slug(command),
                            owner is None))
    return jobs, problems


def split_stdin(command: str) -> tuple[str, str]:
    """(the command, its stdin part from the first unescaped ``%`` on, ``%`` included)."""
    match = re.search(r"(?<!\\)%", command)
    return (command[:match.start()], command[match.start():]) if match else (command, "")


def wrap(slug: str, command: str) -> str:
    """``seestack-hook run SLUG -- COMMAND``: a simple command as it is; one with shell
    lists or pipes (;, &&, ||, |, a trailing &) through ``sh -c``, so that run reports
    all of it, not just its first part. A ``%`` stdin part stays after it, for cron."""
    body, stdin = split_stdin(command)
    body = body.rstrip()
    # Redirections such as 2>&1 or &>/dev/null are no list: they are left out of the test.
    separators = re.sub(r"\d*>&\d*|&>>?|\|&", "", body)
    if re.search(r"[;|&]", separators) or body.startswith(("(", "{")):
        body = "sh -c " + shlex.quote(body)  # an escaped \\% stays escaped for cron, quoted for sh
    return f"seestack-hook run {slug} -- {body}{stdin}"


def command_slug(command: str) -> str:
    """A slug from the program a command runs: ``/usr/local/bin/db-backup.sh --full`` -> ``db-backup``."""
    body, _ = split_stdin(command)
    try:
        words = shlex.split(body.replace("\\%", "%"), comments=True)
    except ValueError:  # unbalanced quotes: the plain words will do
        words = body.split()
    skip_arguments = False
    for word in words:
        if word in ("&&", "||", ";", "|") or word.endswith(";"):
            skip_arguments = False
            continue
        if skip_arguments or "=" in word.split("/")[0] or word.startswith("-") or re.fullmatch(r"[\d.]+[smhd]?", word):
            continue
        name = word.rstrip(";").rsplit("/", 1)[-1]
        if name in _PREFIXES or name in _INTERPRETERS:
            skip_arguments = name in ("cd", "test", "[", "[[", "sleep", "umask", "export", "set")
            continue
        base = name.split(".", 1)[0] if "." in name.lstrip(".") else name
        return slug_from_name(base or name)
    return "cron-job"


def unique_slugs(jobs: list[CronJob], taken: set[str]) -> list[CronJob]:
    """The jobs with slugs made unique among themselves and ``taken`` (-2, -3, ...):
    two jobs reporting as one slug would mix their runs in one monitor."""
    seen = set(taken)
    result = []
    for job in jobs:
        if job.wrapped:
            result.append(job)
            continue
        slug, n = job.slug, 1
        while slug in seen:
            n += 1
            slug = f"{job.slug}-{n}"
        seen.add(slug)
        result.append(replace(job, slug=slug))
    return result
