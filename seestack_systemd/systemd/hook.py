"""What systemd tells an ExecStopPost= hook, turned into a finished Run.

systemd sets $SERVICE_RESULT, $EXIT_CODE and $EXIT_STATUS for ExecStopPost=;
the unit's journal holds its output and ``systemctl show`` its timer: ask.py reads
those, and ``finished_run`` makes the Run from all of it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from seestack_systemd.settings.config import Config
from seestack_systemd.heartbeat import Run, how_it_ended, tail_within
from seestack_systemd.record import Record
from seestack_systemd.state import StartRecord, current_boot_id, is_invocation_id, new_run_id

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


def outcome(env: StopEnv, status: str | None) -> str:
    """success or failed: from $SERVICE_RESULT, else ``status`` (outside systemd), else success."""
    if env.service_result:
        # exec-condition: ExecCondition= chose to skip this run; systemd counts that as success.
        return "success" if env.service_result in ("success", "exec-condition") else "failed"
    return status or "success"


def output_wanted(status: str, config: Config) -> int:
    """How many of the run's last journal lines its heartbeat carries: output_lines for a
    failure, the last line of a success (success_message = last-line), else none."""
    return config.output_lines if status == "failed" else (1 if config.success_message == "last-line" else 0)


def finished_run(
    slug: str,
    env: StopEnv,
    record: StartRecord | None,
    config: Config,
    status: str | None = None,
    host: str | None = None,
    facts: Mapping[str, str] | None = None,
    output: list[str] | None = None,
    ended: tuple[float, float] | None = None,
) -> Run:
    """The heartbeat for a run that just stopped: status from $SERVICE_RESULT (``status``
    when outside systemd), duration from the start record or else from systemd, a
    message a person reads in an alert, the ``source.systemd`` context and, for a timer's
    run, ``nextRunAt``. ``facts``: what ``ask.unit_facts`` says of the unit ({} outside
    systemd); ``output``: the run's last journal lines (``output_wanted`` of them);
    ``ended``: when the run ended, (wall, monotonic) time (the hook's own start), else now."""
    now_wall, now_mono = ended or (time.time(), time.monotonic())
    status = outcome(env, status)
    facts = facts or {}
    output = output or []

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
