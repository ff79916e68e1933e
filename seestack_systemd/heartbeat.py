"""One run of a job as the heartbeat the ingest contract describes (seestack-ingest-api.md)."""

from __future__ import annotations

import json

from seestack_systemd.contract import MESSAGE_LIMIT_BYTES, SDK, STATUSES, TRUNCATION_MARK, rfc3339
from seestack_systemd.errors import InvalidValue
from seestack_systemd.record import Record

__all__ = ["MESSAGE_LIMIT_BYTES", "TRUNCATION_MARK", "Run", "body", "check_status", "clean_message"]

# Control characters other than newline and tab would garble an alert or a terminal.
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10))
_CONTROL[127] = None


class Run(Record):
    """What is known about one finished run; ``body()`` turns it into the wire format."""

    slug: str
    status: str
    run_id: str
    finished_at: float
    duration_ms: int | None = None
    started_at: float | None = None
    message: str | None = None
    host: str | None = None
    source: dict | None = None  # free-form context, e.g. {"systemd": {...}}
    next_run_at: float | None = None  # when the triggering timer next elapses (Unix time)


def check_status(status: str) -> str:
    """Return ``status`` when it is one the contract knows, else raise ``ValueError``."""
    if status not in STATUSES:
        raise InvalidValue(f"invalid status {status!r}: use 'success' or 'failed'")
    return status


def clean_message(text: object, limit: int = MESSAGE_LIMIT_BYTES) -> str:
    """Make ``text`` safe to send: valid UTF-8, no control characters but newline and
    tab, at most ``limit`` bytes, cut on a character boundary and marked ``…[truncated]``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = str(text).encode("utf-8", "replace").decode("utf-8").translate(_CONTROL)
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(TRUNCATION_MARK.encode("utf-8"))
    # errors="ignore" drops the partial multi-byte character left at the cut.
    return data[:room].decode("utf-8", "ignore") + TRUNCATION_MARK


def body(run: Run) -> bytes:
    """The request body for ``run``: compact UTF-8 JSON, optional fields only when known."""
    doc: dict = {
        "slug": run.slug,
        "status": run.status,
        "durationMs": run.duration_ms,
        "runId": run.run_id,
        "finishedAt": rfc3339(run.finished_at),
    }
    if run.started_at is not None:
        doc["startedAt"] = rfc3339(run.started_at)
    if run.message:
        doc["message"] = clean_message(run.message)
    if run.host:
        doc["host"] = run.host
    if run.next_run_at is not None:
        doc["nextRunAt"] = rfc3339(run.next_run_at)
    if run.source:
        doc["source"] = run.source
    doc["sdk"] = SDK
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
