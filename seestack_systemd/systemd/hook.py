"""What systemd tells an ExecStopPost= hook, turned into a finished Run.

systemd sets $SERVICE_RESULT, $EXIT_CODE and $EXIT_STATUS for ExecStopPost=;
the unit's journal holds its output and ``systemctl show`` its timer. Both
are read through programs.py: by absolute path, with an environment of our own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping  # subprocess (programs.py) loads it on finish's path anyway

from seestack_systemd.settings.config import Config
from seestack_systemd.heartbeat import Run, how_it_ended, tail_within
from seestack_systemd.record import Record
from seestack_systemd.systemd.nextrun import next_elapse_now, next_run_at, schedule, systemd_calendar_next
from seestack_systemd.state import StartRecord, current_boot_id, is_invocation_id, new_run_id

# The journal can get a job's last lines a little after its exit: re-read until
# two reads agree, waiting this long between reads, at most this many times.
JOURNAL_SETTLE_S = 0.05
JOURNAL_MAX_READS = 6
SYSTEMCTL_TIMEOUT_S = 2.0

RESULT_WORDS = {
    "timeout": "ran past its time limit",
    "watchdog": "the watchdog timed out",
    "resources": "systemd could not set up its resources",
    "oom-kill": "the out-of-memory killer stopped it",
    "start-limit-hit": "started too often; systemd refused to start it",
    "protocol": "broke the service start-up protocol",
    "core-dump": "dumped core",
}


class StopEnv(Record):
    """The unit's view of how this run ended, as ExecStopPost= sees it."""

    unit: str | None
    invocation_id: str | None
    service_result: str | None
    exit_code: str | None
    exit_status: str | None

    @classmethod
    def from_environ(cls, environ: dict[str, str], unit: str | None) -> StopEnv:
        """What systemd set for ExecStopPost= in ``environ``; None for each variable it did not set."""
        return cls(
            unit,
            environ.get("INVOCATION_ID") or None,
            environ.get("SERVICE_RESULT") or None,
            environ.get("EXIT_CODE") or None,
            environ.get("EXIT_STATUS") or None,
        )


def summary(env: StopEnv) -> str:
    """One line for an alert: ``exit-code: exited with status 1``, ``signal: killed by SIGKILL``."""
    result = env.service_result or "failed"
    ended = how_it_ended(env.exit_code, env.exit_status)
    words = RESULT_WORDS.get(result)
    if words and ended and result != "core-dump":
        return f"{result}: {words}, {ended}"
    return f"{result}: {ended or words or 'the run failed'}"


def unit_facts(unit: str, session: Mapping[str, str] | None = None) -> dict[str, str]:
    """The unit's invocation, start timestamps, stop timeout and triggering timer (with its
    schedule and, as ``nextRunAt``, its next elapse in Unix time). One ``systemctl show``
    asks for the unit and the timer named after it; a timer of another name costs a second.
    ``session``: the environment of the user whose manager to ask (``--user``); None: the system's."""
    from seestack_systemd.systemd import programs  # (and subprocess) only hooks given a unit pay for it

    base = unit.rsplit(".", 1)[0]
    guess = base + ".timer"
    props = ["Id", "InvocationID", "TriggeredBy", "InactiveExitTimestampMonotonic",
             "ExecMainStartTimestampMonotonic", "TimeoutStopUSec", "TimersCalendar", "TimersMonotonic",
             "RandomizedDelayUSec", "NextElapseUSecRealtime", "NextElapseUSecMonotonic"]
    own, timer = programs.show([unit, guess], props, SYSTEMCTL_TIMEOUT_S, session)
    trigger = next((t for t in own.get("TriggeredBy", "").split() if t.endswith(".timer")), "")
    if trigger and trigger != guess:
        timer = programs.show([trigger], props, SYSTEMCTL_TIMEOUT_S, session)[0]
    facts = {k: own[k] for k in props[:6] if own.get(k)}
    if trigger:
        facts["trigger"] = trigger
        text = schedule(timer)
        if text:
            facts["schedule"] = text
        now_wall, now_mono = time.time(), time.monotonic()
        # Set when systemd has already re-armed the timer (a run started by hand); while the
        # run the timer started is stopping it is empty, and the hook computes it instead.
        upcoming = next_elapse_now(timer, now_wall, now_mono) or \
            next_run_at(timer, own, now_wall, now_mono, systemd_calendar_next)
        if upcoming:
            facts["nextRunAt"] = repr(upcoming)
    return facts


def journal_tail(invocation_id: str, lines: int, sleep: Callable[[float], None] = time.sleep,
                 unit: str | None = None) -> list[str]:
    """The last ``lines`` lines this invocation wrote: read once when journald has closed
    ``unit``'s output streams (journal_streams), else read until the journal has settled."""
    import subprocess  # and programs, journal_streams: as in unit_facts, only a hook given a unit pays

    from seestack_systemd.systemd import programs
    from seestack_systemd.systemd.journal_streams import wait_closed

    argv = [f"_SYSTEMD_INVOCATION_ID={invocation_id}", "-o", "cat", "--no-pager", "-q", "-n", str(lines)]
    previous = None
    settled = bool(unit) and wait_closed(str(unit), sleep=sleep)
    for _ in range(1 if settled else JOURNAL_MAX_READS):
        try:
            out = programs.run("journalctl", argv, timeout=SYSTEMCTL_TIMEOUT_S).stdout.decode("utf-8", "replace")
        except (OSError, subprocess.SubprocessError):
            return []
        if out == previous or settled:
            previous = out
            break
        previous = out
        sleep(JOURNAL_SETTLE_S)
    return (previous or "").splitlines()


def finished_run(
    slug: str,
    env: StopEnv,
    record: StartRecord | None,
    config: Config,
    status: str | None = None,
    host: str | None = None,
    facts: Mapping[str, str] | None = None,
) -> Run:
    """The heartbeat for a run that just stopped: status from $SERVICE_RESULT (``status``
    when outside systemd), duration from the start record or else from systemd, a
    message a person reads in an alert, the ``source.systemd`` context and, for a timer's
    run, ``nextRunAt``. ``facts``: what ``unit_facts`` says of the unit ({} outside systemd)."""
    now_wall, now_mono = time.time(), time.monotonic()
    if env.service_result:
        # exec-condition: ExecCondition= chose to skip this run; systemd counts that as success.
        status = "success" if env.service_result in ("success", "exec-condition") else "failed"
    status = status or "success"
    facts = facts or {}

    duration = started_at = None
    if record:
        duration = record.duration_ms(now_wall, now_mono, current_boot_id())
        started_at = record.wall
    elif facts.get("InvocationID") == env.invocation_id:
        # Our ExecStartPre= never ran (an earlier one failed): systemd knows the start.
        start_us = facts.get("InactiveExitTimestampMonotonic") or facts.get("ExecMainStartTimestampMonotonic")
        if start_us and start_us.isdigit() and int(start_us) > 0:
            elapsed = max(0.0, now_mono - int(start_us) / 1e6)
            duration, started_at = int(round(elapsed * 1000)), now_wall - elapsed

    output: list[str] = []
    wants_output = config.output_lines if status == "failed" else (1 if config.success_message == "last-line" else 0)
    if wants_output and env.invocation_id and env.unit:
        output = journal_tail(env.invocation_id, wants_output, unit=env.unit)
    if status == "failed":
        message = tail_within(summary(env) if env.service_result else "failed", output)
    elif env.service_result == "exec-condition":
        message = "skipped: its ExecCondition= said not to run"
    else:
        message = output[-1] if output else ""

    source: dict[str, object] = {}
    if env.unit:
        systemd: dict[str, str] = {"unit": env.unit}
        for key, value in (("invocationId", env.invocation_id), ("serviceResult", env.service_result),
                           ("exitCode", env.exit_code), ("exitStatus", env.exit_status),
                           ("trigger", facts.get("trigger")), ("schedule", facts.get("schedule"))):
            if value:
                systemd[key] = value
        source["systemd"] = systemd
    run_id = record.run_id if record else _run_id_for(env)
    next_run = float(facts["nextRunAt"]) if facts.get("nextRunAt") else None
    return Run(slug, status, run_id, now_wall, duration, started_at, message, host, source, next_run)


def _run_id_for(env: StopEnv) -> str:
    """Without a start record the invocation id (a UUID's 128 bits) still names the run
    uniquely, so a replayed heartbeat keeps one id; outside systemd a new one."""
    i = env.invocation_id
    if i and is_invocation_id(i):
        return f"{i[:8]}-{i[8:12]}-{i[12:16]}-{i[16:20]}-{i[20:]}"
    return new_run_id()
