"""The one path every integration reports through: Run -> body -> (spool replay,
send) -> spool on temporary failure -> last-heartbeat record.

The systemd hooks, the cron wrapper (``run``), ``ping`` and the library all end
here, so delivery, spooling and bookkeeping exist once.
"""

from __future__ import annotations

import json
import os
import time

# Annotations stay unevaluated (postponed): typing is not imported on the hook's path.
# A log callback takes (level: "error" | "warning" | "info", one line of text).
from . import heartbeat, spool
from .config import Config
from .errors import StateError
from .files import atomic_write, read_private, secure_dir
from .heartbeat import Run
from .transport import Connection, Delivery, Target, send


# Replaying the spool first may use at most this share of the deadline, so
# an outage's backlog never crowds out the run that is finishing now.
SPOOL_SHARE = 0.3


def connect(config: Config) -> Connection:
    """A connection to the configured endpoint (ConfigError when one is missing)."""
    target = Target(
        config.endpoint_parsed(), config.require_key(), config.api_key_source, config.timeout,
        config.ca_file, config.https_proxy, config.no_proxy,
    )
    return Connection(target)


def deliver(config: Config, run: Run, log: Callable[[str, str], None]) -> Delivery:
    """Send ``run``'s heartbeat now, within ``config.deadline``; spool it when the
    failure is temporary. Logs what happened; never raises for delivery problems."""
    body = heartbeat.body(run)
    conn = connect(config)
    started = time.monotonic()
    deadline_at = started + config.deadline
    try:
        replay(config, conn, started + config.deadline * SPOOL_SHARE, log)
        delivery = send(conn, body, run.run_id, run.slug, deadline_at)
    finally:
        conn.close()
    took = time.monotonic() - started
    if delivery.delivered:
        log("info", f"{run.slug}: {run.status} heartbeat {delivery.detail} in {took:.2f}s")
    elif delivery.outcome == "temporary":
        where = _spool(config, run, body, log)
        log("warning", f"{run.slug}: heartbeat not delivered after {delivery.attempts} attempt(s) in {took:.1f}s:"
                       f" {delivery.detail}; {where}")
    else:
        log("error", f"{run.slug}: {delivery.detail}; not retried")
    _remember(config, run, delivery, log)
    return delivery


def replay(config: Config, conn: Connection, deadline_at: float, log: Callable[[str, str], None]) -> spool.FlushResult:
    """Deliver what the spool holds, oldest first, before ``deadline_at``."""
    result = spool.flush(config.spool_dir, conn, deadline_at, log)
    if result.sent or result.dropped:
        log("info", f"spool: replayed {result.sent} heartbeat(s), dropped {result.dropped}, {result.left} left")
    return result


def _spool(config: Config, run: Run, body: bytes, log: Callable[[str, str], None]) -> str:
    try:
        if os.path.dirname(config.spool_dir.rstrip("/")) == config.data_dir.rstrip("/"):
            secure_dir(config.data_dir, setting="data_dir")  # a planted link there would redirect the spool
        dropped = spool.put(config.spool_dir, run.run_id, body, run.finished_at,
                            config.spool_max_files, config.spool_max_bytes)
    except StateError as e:
        return f"and it could not be spooled, so it is lost: {e}"
    if dropped:
        log("warning", f"spool full ({config.spool_max_files} files / {config.spool_max_bytes} bytes):"
                       f" dropped the {dropped} oldest heartbeat(s)")
    return f"spooled in {config.spool_dir} for replay"


def last_dir(config: Config) -> str:
    return os.path.join(config.data_dir, "last")


def _remember(config: Config, run: Run, delivery: Delivery, log: Callable[[str, str], None]) -> None:
    """Keep the last heartbeat per slug for ``seestack-hook list`` (best effort)."""
    doc = {
        "status": run.status, "durationMs": run.duration_ms, "finishedAt": run.finished_at,
        "outcome": delivery.outcome, "detail": delivery.detail,
    }
    try:
        secure_dir(config.data_dir, setting="data_dir")
        atomic_write(secure_dir(last_dir(config), setting="data_dir"), run.slug + ".json", json.dumps(doc).encode(),
                     setting="data_dir")
    except StateError as e:
        log("warning", f"could not record the last heartbeat: {e}")


def last_heartbeat(config: Config, slug: str) -> Dict | None:
    """The last heartbeat recorded for ``slug``, or None."""
    try:
        return json.loads(read_private(os.path.join(last_dir(config), slug + ".json")))
    except (OSError, ValueError, StateError):
        return None
