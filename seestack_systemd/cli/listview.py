"""How ``seestack-hook list`` shows its rows: a table for eyes, or JSON for scripts
(``--output=json``, systemctl's spelling).

listing.py gathers the rows: one dict per row, JSON-ready, each with a ``kind``:
``unit`` (a monitored systemd unit, or an instance of a monitored template), ``job``
(any other slug with a last heartbeat), ``timer`` (``--all``: a timer not monitored
yet), ``cron`` (``--all``: a cron job not wrapped with ``seestack-hook run``),
``unsafe`` (a monitored unit whose environment others can change), ``running`` (a run
in progress: inflight.py's records) and ``spool``.
Times are RFC 3339 UTC in JSON and local time in the table. The table's columns are
as wide as their widest value.
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

OUTPUTS = ("table", "json", "json-pretty")


@dataclass(frozen=True)
class Listing:
    """What ``list`` found: the rows, notes said above the table (on stderr with JSON), warnings."""

    rows: list[dict]
    notes: list[str]
    warnings: list[str]
    show_all: bool
    systemd_up: bool


def local(rfc3339: str | None, seconds: bool = True) -> str:
    """``2026-12-01T22:03:00.000Z`` in local time, ``2026-12-01 23:03:00`` (or ``-``)."""
    if not rfc3339:
        return "-"
    when = calendar.timegm(time.strptime(rfc3339[:19], "%Y-%m-%dT%H:%M:%S"))
    return time.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M", time.localtime(when))


def describe(last: dict | None) -> str:
    """A row's last heartbeat: ``success 1.2s at 2026-12-01 22:03, delivered``, or ``none yet``."""
    if not last:
        return "none yet"
    took = f"{last['durationMs'] / 1000:.1f}s" if last.get("durationMs") is not None else "-"
    return f"{last['status']} {took} at {local(last['finishedAt'], seconds=False)}, {last['delivery']}"


def columns(rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Rows of cells as lines, each column but the last padded to its widest cell."""
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(map(len, rows)))]
    return [indent + " ".join(cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row))
            for row in rows]


def _next_run(row: dict) -> str:
    return f"NOT SCHEDULED ({row['notScheduled']})" if row.get("notScheduled") else local(row.get("nextRun"))


def _units(rows: list[dict], listing: Listing) -> list[str]:
    table = [["UNIT", "SLUG", "TIMER", "NEXT RUN", "LAST HEARTBEAT"]]
    if not rows:
        return columns(table) + ["(no monitored units: add one with 'seestack-hook enable NAME.timer')"]
    for row in rows:
        if row.get("template"):  # an instance, under its template's row
            table.append(["  " + row["unit"], row["slug"], row.get("timer") or "", "", describe(row.get("last"))])
        else:
            last = "(per instance, below)" if row.get("perInstance") else describe(row.get("last"))
            table.append([row["unit"], row["slug"], row.get("timer") or "-", _next_run(row), last])
    return columns(table)


def _unsafe(rows: list[dict], listing: Listing) -> list[str]:
    return [f"UNSAFE {row['unit']}: {row['problem']}" for row in rows]


def _jobs(rows: list[dict], listing: Listing) -> list[str]:
    if not rows:
        return []
    table = [["JOB (last heartbeat)", "SOURCE", "LAST HEARTBEAT"]]
    table += [[row["slug"], row["source"], describe(row.get("last"))] for row in rows]
    return [""] + columns(table)


def _timers(rows: list[dict], listing: Listing) -> list[str]:
    if not listing.show_all:
        return []
    if not listing.systemd_up:
        return ["", "timers not monitored yet:", "  (could not look: systemd is not answering here, see the first"
                " line; --root DIR lists from the unit files)"]
    table = [[row["timer"], "->", row["unit"],
              f"(an instance of {row['instanceOf']}: its command above)" if row.get("instanceOf") and
              not row.get("command") else row["command"]] for row in rows]
    return ["", "timers not monitored yet:"] + (columns(table, indent="  ") if table else ["  (none)"])


def _cron(rows: list[dict], listing: Listing) -> list[str]:
    if not listing.show_all:
        return []
    if not rows:
        return ["", "cron jobs not reported yet: none found"]
    table = [[row["owner"], row["schedule"], f"{row['file']}:{row['line']}", row["command"]] for row in rows]
    header, *lines = columns([["OWNER", "SCHEDULE", "WHERE", "COMMAND"]] + table, indent="  ")
    out = ["", "cron jobs not reported yet (put the 'instead:' line in their place; list changes no crontab):", header]
    for line, row in zip(lines, rows):
        out += [line, f"    instead: {row['suggestion']}"]
    return out


def _running(rows: list[dict], listing: Listing) -> list[str]:
    if not rows:
        return []
    table = [["RUNNING", "SINCE", "BY", "NOTE"]]
    for row in rows:
        note = ("ended unreported (a reboot, or its finish was killed): the next flush reports it as interrupted"
                if row["ended"] else f"started while {row['overlaps']} earlier run(s) still ran" if row["overlaps"]
                else "")
        table.append([row["slug"], local(row["startedAt"]), row["unit"] or (f"run {row['command']}"
                      if row["command"] else "-"), note])
    return [""] + columns(table)


def _spool(rows: list[dict], listing: Listing) -> list[str]:
    return [f"spool: {row['waiting']} heartbeat(s) waiting, oldest {_age(row['oldestAt']):.0f}s old"
            " ('seestack-hook flush' sends them)" for row in rows]


def _age(rfc3339: str | None) -> float:
    if not rfc3339:
        return 0.0
    return max(0.0, time.time() - calendar.timegm(time.strptime(rfc3339[:19], "%Y-%m-%dT%H:%M:%S")))


# The table's sections, in order, by the kind of row each shows.
SECTIONS: dict[str, Callable[[list[dict], Listing], list[str]]] = {
    "unit": _units, "unsafe": _unsafe, "job": _jobs, "running": _running, "timer": _timers, "cron": _cron,
    "spool": _spool,
}


def table(listing: Listing) -> list[str]:
    """The lines ``list`` prints for eyes."""
    lines = [f"({note})" for note in listing.notes]
    for kind, section in SECTIONS.items():
        lines += section([row for row in listing.rows if row["kind"] == kind], listing)
    return lines


def render(listing: Listing, output: str = "table") -> list[str]:
    """The lines to print for ``--output`` (table, json: one array of row objects on one
    line, as systemctl's; json-pretty: the same, indented)."""
    if output == "table":
        return table(listing)
    return [json.dumps(listing.rows, indent=2 if output == "json-pretty" else None, ensure_ascii=False)]
