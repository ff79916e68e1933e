"""The Run of each command that is not a hook (the hooks' comes from systemd.hook.finished_run):
``ping``'s and ``check --send``'s, said by hand, and ``run``'s, from how its command ended."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from seestack_systemd.settings import config
from seestack_systemd import inflight
from seestack_systemd.errors import ConfigError, StateError, UsageError
from seestack_systemd.heartbeat import Run, note_overlap
from seestack_systemd.record import Record
from seestack_systemd.slug import check_slug
from seestack_systemd.state import current_boot_id, new_run_id


class Finished(Record):
    """How ``run``'s command ended (runner.run_command): the exit code to pass on, and a
    message for the heartbeat. A Record, not a dataclass: ``ping`` imports this module
    too, and dataclasses would add a quarter to its start-up."""

    exit_code: int
    success: bool
    message: str
    duration_ms: int
    started_at: float
    launch_error: bool = False  # the command could not be started at all
    output_cut: bool = False  # a background child still held its output when the grace period ended


def ping_run(slug: str, status: str, duration_ms: int | None, message: str | None, host: str,
             now: float | None = None) -> Run:
    """The heartbeat ``ping`` sends: a run that ended ``now``, ``duration_ms`` long when given."""
    if duration_ms is not None and duration_ms < 0:
        raise UsageError("--duration-ms must be 0 or more")
    now = time.time() if now is None else now
    started = now - duration_ms / 1000 if duration_ms is not None else None
    return Run(check_slug(slug), status, new_run_id(), now, duration_ms, started, message, host,
               {"manual": {"command": "ping"}})


def check_run(slug: str, host: str, now: float | None = None) -> Run:
    """The test heartbeat of ``check --send SLUG``: a success that took no time."""
    return Run(check_slug(slug), "success", new_run_id(), time.time() if now is None else now, 0, None,
               "seestack-hook check --send", host, {"manual": {"command": "check"}})


def monitoring(environ: dict, settings: dict, slug: str) -> tuple[config.Config | None, list[str], str]:
    """The config ``run`` reports with, the warnings to show before the command starts (its
    output must not bury them), and why the command runs unmonitored ("" when it does not):
    a monitoring problem never keeps the job from running."""
    try:
        check_slug(slug)
        cfg = config.load(environ, settings)
    except (ConfigError, ValueError) as e:
        about = "run: " if isinstance(e, ValueError) else f"{slug}: "  # a bad slug's message names it already
        return None, list(getattr(e, "warnings", ())), f"{about}{e}; the command runs unmonitored"
    try:
        cfg.endpoint_parsed()
        cfg.require_key()
    except ConfigError as e:
        return None, list(cfg.warnings), f"{slug}: {e}; the command runs unmonitored"
    return cfg, cfg.send_warnings(), ""


def begin_run(cfg: config.Config, slug: str, argv: list[str],
              log: Callable[[str, str], None]) -> tuple[str, dict[str, object]]:
    """``run``'s in-progress record (so a reboot mid-run is still reported): the run's id, and
    the other runs of ``slug`` it found still going (see inflight.begin). A record that
    cannot be written is said through ``log(level, text)``, and the command runs all the same."""
    run_id = new_run_id()
    try:
        return run_id, inflight.begin(cfg.data_dir, run_id, slug, time.time(), current_boot_id(),
                                      os.uname().nodename, {"command": {"argv0": os.path.basename(argv[0])}},
                                      os.getpid())
    except StateError as e:
        log("warning", f"{slug}: {e}; {inflight.UNREPORTED}")
    return run_id, {}


def command_run(slug: str, argv: list[str], finished: Finished, host: str, run_id: str = "",
                overlap: dict[str, object] | None = None) -> Run:
    """The heartbeat for the command ``run`` ran (``argv``), from how it ended; ``run_id``
    the one its in-progress record has (a new one when ''), ``overlap`` what that found."""
    run = Run(slug, "success" if finished.success else "failed", run_id or new_run_id(),
              finished.started_at + finished.duration_ms / 1000, finished.duration_ms, finished.started_at,
              finished.message, host,
              {"command": {"argv0": os.path.basename(argv[0]), "exitCode": finished.exit_code}})
    note_overlap(run, overlap or {})
    return run
