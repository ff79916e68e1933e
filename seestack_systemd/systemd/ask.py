"""What ``finish`` asks systemd of a stopped unit: one ``systemctl show`` of the unit and
its timer, and the run's journal tail. Each is started before the delivery's imports
(``ask_systemd``, ``ask_journal``) and read after them (``unit_facts``, ``journal_tail``),
so systemd answers while the hook imports. Every helper runs through programs.py: by
absolute path, with an environment of our own. Only a hook given a unit imports this.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping

from seestack_systemd.systemd import programs
from seestack_systemd.systemd.hook import StopEnv
from seestack_systemd.systemd.journal_streams import wait_closed
from seestack_systemd.systemd.nextrun import next_elapse_now, next_run_at, schedule, systemd_calendar_next

# The journal can get a job's last lines a little after its exit: re-read until
# two reads agree, waiting this long between reads, at most this many times.
JOURNAL_SETTLE_S = 0.05
JOURNAL_MAX_READS = 6
SYSTEMCTL_TIMEOUT_S = 2.0

# What finish asks systemctl show of the unit and of its timer.
UNIT_PROPERTIES = ("Id", "InvocationID", "TriggeredBy", "InactiveExitTimestampMonotonic",
                   "ExecMainStartTimestampMonotonic", "TimeoutStopUSec", "TimersCalendar", "TimersMonotonic",
                   "RandomizedDelayUSec", "NextElapseUSecRealtime", "NextElapseUSecMonotonic")


def ask_systemd(unit: str, session: Mapping[str, str] | None = None) -> subprocess.Popen | None:
    """Start the one ``systemctl show`` of ``unit`` and the timer named after it, for
    ``unit_facts(asked=)`` to read: finish imports its delivery while systemd answers."""
    return programs.ask_show([unit, _own_timer(unit)], UNIT_PROPERTIES, session)


def _own_timer(unit: str) -> str:
    return unit.rsplit(".", 1)[0] + ".timer"


def unit_facts(unit: str, session: Mapping[str, str] | None = None, asked: subprocess.Popen | None = None,
               clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
               calendar_next: Callable[[list[str]], list[float | None]] = systemd_calendar_next,
               timeout: float = SYSTEMCTL_TIMEOUT_S) -> dict[str, str]:
    """The unit's invocation, start timestamps, stop timeout and triggering timer (with its
    schedule and, as ``nextRunAt``, its next elapse in Unix time). One ``systemctl show``
    asks for the unit and the timer named after it (``asked``: the one ``ask_systemd``
    started); a timer of another name costs a second. ``session``: the environment of the
    user whose manager to ask (``--user``); None: the system's."""
    guess = _own_timer(unit)
    own, timer = programs.show([unit, guess], UNIT_PROPERTIES, timeout, session, asked)
    trigger = next((t for t in own.get("TriggeredBy", "").split() if t.endswith(".timer")), "")
    if trigger and trigger != guess:
        timer = programs.show([trigger], UNIT_PROPERTIES, SYSTEMCTL_TIMEOUT_S, session)[0]
    facts = {k: own[k] for k in UNIT_PROPERTIES[:6] if own.get(k)}
    if trigger:
        facts["trigger"] = trigger
        text = schedule(timer)
        if text:
            facts["schedule"] = text
        now_wall, now_mono = clock(), monotonic()
        # Set when systemd has already re-armed the timer (a run started by hand); while the
        # run the timer started is stopping it is empty, and the hook computes it instead.
        upcoming = next_elapse_now(timer, now_wall, now_mono) or \
            next_run_at(timer, own, now_wall, now_mono, calendar_next)
        if upcoming:
            facts["nextRunAt"] = repr(upcoming)
    return facts


def ask_journal(env: StopEnv, lines: int) -> subprocess.Popen | None:
    """Start reading the run's journal tail now, when journald has closed the unit's output
    streams already (the tail is then complete), for ``journal_tail(asked=)``; None when
    there is nothing to read yet or at all (journal_tail then waits and reads)."""
    if not (lines and env.invocation_id and env.unit) or not wait_closed(env.unit, timeout=0):
        return None
    try:
        return programs.spawn("journalctl", _journal_args(env.invocation_id, lines))
    except OSError:
        return None


def _journal_args(invocation_id: str, lines: int) -> list[str]:
    return [f"_SYSTEMD_INVOCATION_ID={invocation_id}", "-o", "cat", "--no-pager", "-q", "-n", str(lines)]


def journal_tail(invocation_id: str, lines: int, sleep: Callable[[float], None] = time.sleep,
                 unit: str | None = None, asked: subprocess.Popen | None = None,
                 timeout: float = SYSTEMCTL_TIMEOUT_S) -> list[str]:
    """The last ``lines`` lines this invocation wrote: read once when journald has closed
    ``unit``'s output streams (journal_streams), else read until the journal has settled.
    ``asked``: the read ``ask_journal`` started once they were closed."""
    argv = _journal_args(invocation_id, lines)
    previous = None
    settled = asked is not None or (bool(unit) and wait_closed(str(unit), sleep=sleep))
    for _ in range(1 if settled else JOURNAL_MAX_READS):
        try:
            child = asked or programs.spawn("journalctl", argv)
            out = programs.collect(child, timeout if child is asked else SYSTEMCTL_TIMEOUT_S).stdout.decode(
                "utf-8", "replace")
        except (OSError, subprocess.SubprocessError):
            return []
        if out == previous or settled:
            previous = out
            break
        previous = out
        sleep(JOURNAL_SETTLE_S)
    return (previous or "").splitlines()


class Asked:
    """finish's questions of a unit that systemd named (``env.unit``, ``env.invocation_id``),
    started at once; ``answers`` reads them, ``close`` kills and reaps a helper whose answer
    was never read. ``lines``: how many journal lines the heartbeat carries (0: none read)."""

    def __init__(self, env: StopEnv, session: Mapping[str, str] | None, lines: int,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.env, self.session, self.lines, self.monotonic = env, session, lines, monotonic
        self.asked_at = monotonic()
        self.unit_child = ask_systemd(str(env.unit), session)
        self.journal_child = ask_journal(env, lines)

    def answers(self) -> tuple[dict[str, str], list[str]]:
        """(``unit_facts``, the journal tail) of the run. Both helpers share one SYSTEMCTL_TIMEOUT_S,
        counted from when they were asked: two slow ones keep the unit's stop waiting once, not twice."""
        facts = unit_facts(str(self.env.unit), self.session, self.unit_child, timeout=self._left())
        output = journal_tail(str(self.env.invocation_id), self.lines, unit=self.env.unit,
                              asked=self.journal_child, timeout=self._left()) if self.lines else []
        return facts, output

    def _left(self) -> float:
        return max(0.0, SYSTEMCTL_TIMEOUT_S - (self.monotonic() - self.asked_at))

    def close(self) -> None:
        """No helper outlives the hook, whatever happened since they were asked."""
        for child in (self.unit_child, self.journal_child):
            programs.discard(child)
