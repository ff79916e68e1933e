"""When a timer will next elapse, for the heartbeat's ``nextRunAt`` and for ``list``.

While the ExecStopPost= hook runs, systemd has not re-armed the timer yet: it does
that once the service is inactive, so ``NextElapseUSec*`` is empty then (seen on
systemd 247, 252 and 257). The hook therefore computes what systemd will compute,
from the same inputs and by the same rules (timer.c ``timer_enter_waiting``):

- ``OnCalendar=``: the next match of each expression, as ``systemd-analyze calendar``
  computes it in systemd's own time zone;
- ``OnUnitActiveSec=``: the service's activation (``InactiveExitTimestampMonotonic``)
  plus the span; ``OnUnitInactiveSec=``: now (the service is stopping) plus the span;
- ``OnActiveSec=``/``OnBootSec=``/``OnStartupSec=``: their fixed time when still ahead;
- the earliest of these, plus ``RandomizedDelaySec=`` in full: the random part is drawn
  only at re-arm, so the latest moment it allows is the one the backend can rely on.

Monotonic times become wall time by the offset between the two clocks now.
"""

from __future__ import annotations

import time
from collections.abc import Callable

ANALYZE_TIMEOUT_S = 2.0
# systemd's format_timespan() units, in seconds.
SPAN_UNITS = {"y": 31557600.0, "month": 2629800.0, "w": 604800.0, "d": 86400.0, "h": 3600.0, "min": 60.0,
              "s": 1.0, "ms": 1e-3, "us": 1e-6, "μs": 1e-6}


def parse_timespan(text: str) -> float | None:
    """``5min 26.635563s`` -> 326.635563 seconds; None for ``infinity``, '' or garbage."""
    text = text.strip()
    if not text or text == "infinity":
        return None
    if text.isdigit():
        return int(text) / 1e6  # a bare number is microseconds
    total = 0.0
    for token in text.split():
        number = token.rstrip("abcdefghijklmnopqrstuvwxyzμ")
        unit = token[len(number):]
        try:
            total += float(number) * SPAN_UNITS[unit]
        except (ValueError, KeyError):
            return None
    return total


def parse_timestamp(text: str) -> float | None:
    """``Tue 2026-12-01 22:02:12 UTC`` (systemctl's format) -> Unix time; None when unset.
    A zone other than UTC is the local one, whose abbreviation settles DST."""
    words = text.split()
    if words and not words[0][:1].isdigit():
        words = words[1:]  # the weekday
    if len(words) < 2:
        return None
    day, clock = words[0], words[1]
    zone = words[2] if len(words) > 2 else ""
    whole, _, fraction = clock.partition(".")
    # By hand, not time.strptime: that imports re, calendar, datetime and locale on finish's path.
    try:
        fields = [int(x) for x in day.split("-") + whole.split(":")]
        extra = float("0." + fraction) if fraction else 0.0
    except ValueError:
        return None
    if len(fields) != 6:
        return None
    if zone in ("UTC", "GMT", "Z"):
        return utc_seconds(*fields) + extra
    dst = 1 if zone and zone == time.tzname[1] else 0 if zone and zone == time.tzname[0] else -1
    year, month, day_of_month, hour, minute, second = fields
    return time.mktime((year, month, day_of_month, hour, minute, second, 0, 0, dst)) + extra


def utc_seconds(year: int, month: int, day: int, hour: int, minute: int, second: int) -> float:
    """calendar.timegm() for one date, without importing calendar (days from the civil date)."""
    year -= month <= 2
    era, year_of_era = divmod(year, 400)
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year - 719468
    return float(days * 86400 + hour * 3600 + minute * 60 + second)


def entries(timer: dict) -> list[tuple[str, str, str]]:
    """A timer's triggers, the one reading of its ``systemctl show`` properties
    ``TimersCalendar=`` and ``TimersMonotonic=`` (in that order), each ``{ OnCalendar=daily ;
    next_elapse=... }`` once per line or several on one -> [("OnCalendar", "daily", "...")]."""
    found = []
    for key in ("TimersCalendar", "TimersMonotonic"):
        for block in timer.get(key, "").split("}"):
            block = block.strip(" \n{")
            if not block:
                continue
            setting, _, rest = block.partition(";")
            name, _, spec = setting.strip().partition("=")
            found.append((name, spec.strip(), rest.strip().partition("next_elapse=")[2].strip()))
    return found


def schedule(timer: dict) -> str:
    """What the heartbeat's ``source.systemd.schedule`` says: ``OnCalendar=*-*-* 02:00:00; OnActiveUSec=2s``."""
    return "; ".join(f"{name}={spec}" for name, spec, _ in entries(timer))


def next_elapse_now(timer: dict, now_wall: float, now_mono: float) -> float | None:
    """The next elapse systemd has scheduled (``list``; empty while the service runs)."""
    real = parse_timestamp(timer.get("NextElapseUSecRealtime", ""))
    mono = parse_timespan(timer.get("NextElapseUSecMonotonic", ""))
    candidates = [t for t in (real, now_wall + (mono - now_mono) if mono else None) if t]
    return min(candidates) if candidates else None


def next_run_at(timer: dict, service: dict, now_wall: float, now_mono: float,
                calendar_next: Callable[[list], list]) -> float | None:
    """When ``timer`` will next elapse after the run of ``service`` that is stopping now.
    ``timer`` and ``service`` are ``systemctl show`` properties (TimersCalendar,
    TimersMonotonic, RandomizedDelayUSec; InactiveExitTimestampMonotonic);
    ``calendar_next(specs)`` gives the next match of each calendar expression."""
    monotonic: list[float] = []
    specs: list[str] = []
    for name, spec, next_text in entries(timer):
        if name == "OnCalendar":  # the one kind TimersCalendar= holds (timer.c's TIMER_CALENDAR)
            specs.append(spec)
            continue
        span = parse_timespan(spec)
        if span is None:
            continue
        if name == "OnUnitActiveUSec":
            started = service.get("InactiveExitTimestampMonotonic", "")
            if started.isdigit() and int(started):
                monotonic.append(int(started) / 1e6 + span)
        elif name == "OnUnitInactiveUSec":
            monotonic.append(now_mono + span)
        else:
            fixed = parse_timespan(next_text)
            if fixed is not None and fixed > now_mono:
                monotonic.append(fixed)
    candidates = [now_wall + (m - now_mono) for m in monotonic]
    if specs:
        candidates += [t for t in calendar_next(specs) if t is not None and t > now_wall - 1]
    if not candidates:
        return None
    return min(candidates) + (parse_timespan(timer.get("RandomizedDelayUSec", "")) or 0.0)


def systemd_calendar_next(specs: list) -> list:
    """The next elapse of each calendar expression, by ``systemd-analyze calendar``."""
    import subprocess

    from seestack_systemd.systemd import programs  # by absolute path, with an environment of our own

    try:
        out = programs.run("systemd-analyze", ["calendar", "--", *specs], timeout=ANALYZE_TIMEOUT_S, text=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    # The '(in UTC):' line appears when the local zone is not UTC; 'Next elapse:' is local.
    keys = ("(in UTC):",) if "(in UTC):" in out else ("Next elapse:",)
    return [parse_timestamp(line.split(":", 1)[1]) for line in out.splitlines() if line.strip().startswith(keys)]
