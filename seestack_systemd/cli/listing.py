"""``seestack-hook list``: the monitored systemd units with their timers (when systemd
is there), then every other job with a last-heartbeat record (``run``, ``ping``, the
library), so that nothing reported from this host is invisible here; with ``--all``,
the timers and cron jobs not reported yet. Rows here, their table and JSON in listview.py."""

from __future__ import annotations

import glob
import os
import pwd
import re
import stat
import time
from collections.abc import Mapping, Sequence

from seestack_systemd import inflight
from seestack_systemd.cli.listview import Listing, render
from seestack_systemd.contract import rfc3339
from seestack_systemd.delivery import last, spool
from seestack_systemd.errors import StateError, UsageError
from seestack_systemd.jobs import crontab
from seestack_systemd.jobs.crontab import CronJob, unique_slugs
from seestack_systemd.settings.config import Config
from seestack_systemd.slug import expand, slug_from_name
from seestack_systemd.state import current_boot_id
from seestack_systemd.systemd import programs
from seestack_systemd.systemd.nextrun import next_elapse_now
from seestack_systemd.systemd.timerstate import not_scheduled, timers
from seestack_systemd.systemd.units import OWN_TIMER, Monitored, monitored, risky_units, show_units

SENT_WORDS = {"delivered": "delivered", "duplicate": "delivered", "temporary": "spooled"}


def source_kind(source: dict | None) -> str:
    """A last-heartbeat record's source in words: ``systemd unit x.service``, ``run``, ``ping``, ``library``."""
    if not source:
        return "-"
    if "systemd" in source:
        return f"systemd {source['systemd'].get('unit', 'unit')}"
    if "command" in source:
        return "run"
    if "manual" in source:
        return str(source["manual"].get("command", "ping"))
    return "library" if "library" in source else next(iter(source))


def records(config: Config) -> dict[str, dict]:
    """slug -> its last-heartbeat record, for every record in data_dir/last/."""
    found = {}
    for path in sorted(glob.glob(os.path.join(last.last_dir(config.data_dir), "*.json"))):
        slug = os.path.basename(path)[: -len(".json")]
        record = last.read(config.data_dir, slug)
        if record:
            found[slug] = record
    return found


def last_fact(record: dict | None) -> dict | None:
    """A last-heartbeat record as a row shows it: status, finishedAt (RFC 3339), durationMs,
    and delivery: ``delivered``, ``spooled`` (waiting for a replay) or ``refused``."""
    if not record:
        return None
    return {"status": record["status"], "finishedAt": rfc3339(record["finishedAt"]),
            "durationMs": record.get("durationMs"), "delivery": SENT_WORDS.get(str(record.get("outcome")), "refused")}


def _instances(entry: Monitored, timers_found: dict[str, dict[str, str]], last: dict[str, dict]) -> dict[str, str]:
    """instance unit -> its slug, for the instances of a monitored template known here."""
    prefix = entry.service.partition("@")[0] + "@"
    units = {p.get("Unit", "") for p in timers_found.values()}
    units |= {(r.get("source") or {}).get("systemd", {}).get("unit", "") for r in last.values()}
    found = {}
    for unit in sorted(u for u in units if u.startswith(prefix) and not u.startswith(prefix + ".")):
        try:
            found[unit] = expand(entry.slug, unit)
        except ValueError:
            found[unit] = "(invalid slug)"
    return found


def unit_row(unit: str, slug: str, timer: str | None = None, next_run: float | None = None,
             why: str | None = None, last: dict | None = None, template: str | None = None,
             per_instance: bool = False) -> dict:
    """A row of kind ``unit``: every key always there, null when not known."""
    return {"kind": "unit", "unit": unit, "slug": slug, "timer": timer or None,
            "nextRun": rfc3339(next_run) if next_run else None, "notScheduled": why, "last": last_fact(last),
            "template": template, "perInstance": per_instance}


def unit_rows(entries: Sequence[Monitored], timers_found: dict[str, dict[str, str]], last: dict[str, dict],
              missing: dict[str, dict[str, str] | None] | None) -> tuple[list[dict], list[str], set]:
    """(rows, warnings, slugs shown) for the monitored units; ``missing`` holds the
    timers named in drop-ins that systemd did not list (None: systemd did not answer)."""
    by_service = {props.get("Unit"): timer for timer, props in timers_found.items()}
    now_wall, now_mono = time.time(), time.monotonic()
    rows: list[dict] = []
    warnings, shown = [], set()
    for entry in entries:
        timer = by_service.get(entry.service) or entry.timer or ""
        props = timers_found.get(timer) if timer in timers_found else (missing or {}).get(timer)
        why = not_scheduled(timer, props) if missing is not None else None
        next_run = None
        if why:
            warnings.append(f"{entry.service} is monitored as '{entry.slug}' but its timer {timer} is {why}:"
                            " it will not run, and SeeStack will report missed runs")
        elif props:
            next_run = next_elapse_now(props, now_wall, now_mono)
        if "%" not in entry.slug:
            shown.add(entry.slug)
            rows.append(unit_row(entry.service, entry.slug, timer, next_run, why, last.get(entry.slug)))
            continue
        rows.append(unit_row(entry.service, entry.slug, timer, next_run, why, per_instance=True))
        by_slug: dict[str, list[str]] = {}
        for unit, slug in _instances(entry, timers_found, last).items():
            by_slug.setdefault(slug, []).append(unit)
            shown.add(slug)
            rows.append(unit_row(unit, slug, by_service.get(unit), last=last.get(slug), template=entry.service))
        for slug, units in by_slug.items():
            if len(units) > 1:
                warnings.append(f"instances {', '.join(units)} all report as '{slug}': their runs mix in one monitor;"
                                " the slug rule cannot tell them apart, so rename one of these instances")
    return rows, warnings, shown


def list_rows(config: Config, root: str | None = None, user: bool = False, show_all: bool = False,
              environ: Mapping[str, str] = {}) -> Listing:
    """Every row ``seestack-hook list`` shows (listview.py says what each kind holds)."""
    if root and not os.path.isdir(root):
        raise UsageError(f"--root {root}: no such directory; give the staging root that holds etc/ and usr/")
    entries = monitored(root, user, environ)
    last = records(config)
    notes: list[str] = []
    try:
        timers_found = timers(root, user, environ)
        systemd_up = True
    except StateError as e:
        timers_found, systemd_up = {}, False
        notes.append(f"systemd is not answering here, so timers are not shown: {e}")
    missing: dict[str, dict[str, str] | None] | None = {} if systemd_up else None
    wanted = sorted({e.timer for e in entries if e.timer and e.timer not in timers_found})
    if wanted and missing is not None and not root:
        states = show_units(environ if user else None, wanted, ["LoadState", "ActiveState", "UnitFileState"])
        for name, props in zip(wanted, states):
            missing[name] = props or None  # type: ignore[index]
    rows, warnings, shown = unit_rows(entries, timers_found, last, missing)
    for line in risky_units(root, user, environ):
        unit, _, problem = line.partition(": ")
        rows.append({"kind": "unsafe", "unit": unit, "problem": problem})
    rows += [{"kind": "job", "slug": slug, "source": source_kind(r.get("source")), "last": last_fact(r)}
             for slug, r in sorted(last.items()) if slug not in shown]
    if show_all and systemd_up:
        rows += suggestions(entries, timers_found)
    if show_all:
        jobs, problems = cron_jobs(root, user or os.geteuid() != 0)
        warnings += problems
        rows += [{"kind": "cron", **{k: getattr(j, k) for k in CRON_KEYS}, "suggestion": j.suggestion}
                 for j in unique_slugs(jobs, shown | set(last)) if not j.wrapped]
    rows += running_rows(config)
    waiting = spool.entries(config.spool_dir)
    if waiting:  # a spool file's name starts with its heartbeat's finish time in milliseconds
        oldest = waiting[0].split("-", 1)[0]
        rows.append({"kind": "spool", "waiting": len(waiting),
                     "oldestAt": rfc3339(int(oldest) / 1000) if oldest.isdigit() else None})
    return Listing(rows, notes, warnings, show_all, systemd_up)


def running_rows(config: Config) -> list[dict]:
    """A row of kind ``running`` per run in progress (inflight.py's records): systemd
    units' and ``run``'s, oldest first, with what ``start`` found of other runs still going
    (``overlaps``), and whether an earlier boot left it (the next flush reports it)."""
    boot_id = current_boot_id()
    rows = []
    for doc in inflight.records(config.data_dir):
        source, overlap = _dict(doc.get("source")), _dict(doc.get("overlap"))
        unit, command = _dict(source.get("systemd")).get("unit"), _dict(source.get("command")).get("argv0")
        rows.append({"kind": "running", "slug": doc["slug"], "runId": doc["runId"],
                     "startedAt": rfc3339(float(doc["startedAt"])), "unit": unit, "command": command,
                     "overlaps": int(overlap.get("earlierRuns") or 0),
                     "ended": doc.get("bootId") != boot_id})
    return rows


def _dict(value: object) -> dict:
    return value if isinstance(value, dict) else {}


CRON_KEYS = ("file", "line", "owner", "schedule", "command", "slug")
CRON_SPOOL = "var/spool/cron/crontabs"  # Debian's: one crontab per user, named for the user, root-only


def cron_jobs(root: str | None, user: bool) -> tuple[list[CronJob], list[str]]:
    """(the cron jobs of /etc/crontab, /etc/cron.d/* and every user's crontab; or with ``user``
    only this user's, by ``crontab -l``: the spool is root's), problems worth a warning.
    Under a staging ``root``, its files. Never written: cron's files are the operator's."""
    base = root or "/"
    texts: list[tuple[str, str, str | None]] = []  # (path, text, owner: None for a system crontab)
    paths: list[tuple[str, str | None]] = []
    problems: list[str] = []
    if user:
        name = pwd.getpwuid(os.geteuid()).pw_name
        path = os.path.join("/", CRON_SPOOL, name)
        if root:
            paths.append((os.path.join(base, CRON_SPOOL, name), name))
        else:
            try:
                done = programs.run("crontab", ["-l"], timeout=10, text=True)
            except FileNotFoundError:  # no cron installed: no crontab
                return [], []
            if done.returncode == 0:
                texts.append((path, done.stdout, name))
            elif "no crontab" not in done.stderr:
                problems.append(f"crontab -l failed: {programs.first_line(done.stderr)}")
    else:
        cron_d = os.path.join(base, "etc/cron.d")
        # cron itself skips cron.d files with other characters in their names (e.g. x.dpkg-old).
        names = sorted(n for n in os.listdir(cron_d) if re.fullmatch(r"[A-Za-z0-9_-]+", n)) \
            if os.path.isdir(cron_d) else []
        paths += [(os.path.join(base, "etc/crontab"), None)] + [(os.path.join(cron_d, n), None) for n in names]
        spool_dir = os.path.join(base, CRON_SPOOL)
        if os.path.isdir(spool_dir):
            paths += [(os.path.join(spool_dir, n), n) for n in sorted(os.listdir(spool_dir)) if not n.startswith(".")]
    for path, owner in paths:
        try:  # O_NONBLOCK: a FIFO in cron.d must not hang list
            with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), encoding="utf-8", errors="replace") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    problems.append(f"{path} is not a regular file: cron skips it too")
                    continue
                texts.append((path, f.read(1 << 20), owner))
        except FileNotFoundError:
            continue
        except OSError as e:
            problems.append(f"cannot read {path}: {e.strerror}")
    jobs: list[CronJob] = []
    for path, text, owner in texts:
        found, bad = crontab.parse(text, path, owner)
        jobs += found
        problems += bad
    return jobs, problems


def list_lines(config: Config, root: str | None = None, user: bool = False, show_all: bool = False,
               environ: Mapping[str, str] = {}, output: str = "table") -> tuple[list[str], list[str]]:
    """(the lines ``seestack-hook list`` prints for ``output``, warnings for stderr)."""
    listing = list_rows(config, root, user, show_all, environ)
    notes = listing.notes if output != "table" else []  # the table says them in its first line
    return render(listing, output), notes + listing.warnings


def suggestions(entries: Sequence[Monitored], timers_found: dict[str, dict[str, str]]) -> list[dict]:
    """A row of kind ``timer`` with an ``enable`` command per unmonitored timer; one per template,
    with --slug 'NAME-%i', and its other timers (instances too) as covered by it (no command)."""
    watched = {e.service for e in entries}
    rows: list[dict] = []
    templates = set()
    for timer, props in sorted(timers_found.items()):
        service = props.get("Unit", "")
        if timer == OWN_TIMER or service in watched:
            continue
        row = {"kind": "timer", "timer": timer, "unit": service, "command": None, "instanceOf": None}
        if "@" in timer:
            template = service.partition("@")[0] + "@.service"
            if template in watched:
                continue
            row["instanceOf"] = template
            if template not in templates:
                templates.add(template)
                slug = slug_from_name(template.partition("@")[0])
                row["command"] = f"seestack-hook enable '{template}' --slug '{slug}-%i'"
        else:
            row["command"] = f"seestack-hook enable {timer}"
        rows.append(row)
    return rows
