"""What the ``receive`` server records of each request, and how it prints it.

One human line per request for a terminal (``format_line``) and one JSON object per
request for a file (``jsonl_entry``); neither ever shows the bearer token.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from seestack_systemd.contract import INGEST_PATH, rfc3339
from seestack_systemd.receiver.replies import describe, parse_reply
from seestack_systemd.receiver.validator import bearer_token, parse_json

_LINE_TEXT_MAX = 100


@dataclass(frozen=True)
class Request:
    """One request the receiver recorded, with what it answered."""

    method: str
    path: str
    headers: dict  # names lowercased
    body: bytes
    status: int  # the status sent, or 0 when nothing was sent (hang, reset, broken upload)
    error: str | None  # the first contract violation, or None
    received_at: float  # time.time()
    reply: str = ""  # the scripted reply token that answered it; "" for normal behaviour

    def json(self) -> Any:
        """Return the body parsed as JSON (raises ValueError when it is not)."""
        return json.loads(self.body)


def format_line(req: Request) -> str:
    """Return the one-line human summary of a recorded request, as printed to ``out``.

    e.g. ``23:43:46  daily-report  failed   1.234s  exit-code: exited with status 1``
    followed by ``  [replied 503]`` or ``  [400: <violation>]`` when it was not accepted.
    """
    parts = [time.strftime("%H:%M:%S", time.localtime(req.received_at))]
    try:
        doc = parse_json(req.body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        doc = None
    if req.path == INGEST_PATH and isinstance(doc, dict):
        parts.append(_clean(str(doc.get("slug", "?"))))
        parts.append(f"{_clean(str(doc.get('status', '?'))):<7}")
        parts.append(_duration(doc.get("durationMs")))
        message = doc.get("message")
        if isinstance(message, str) and message.strip():
            parts.append(_clean(message.strip().splitlines()[0]))
    else:
        parts.append(_clean(f"{req.method} {req.path}"))
    tail = _outcome(req)
    if tail:
        parts.append(tail)
    return "  ".join(parts)


def _duration(value: Any) -> str:
    if value is None:
        return "-"
    if type(value) is int and value >= 0:
        # Integer arithmetic: a huge bogus value must not overflow a float.
        seconds, millis = divmod(value, 1000)
        return f"{seconds}.{millis:03d}s"
    return "?"


def _outcome(req: Request) -> str:
    if req.reply:
        said = describe(parse_reply(req.reply))
        return f"[{said}; invalid: {req.error}]" if req.error else f"[{said}]"
    if req.status == 401:
        return "[401: bearer token differs from the receiver's API key]"
    status = str(req.status) if req.status else "no reply"
    if req.error:
        return f"[{status}: {req.error}]"
    if req.status == 409:
        return "[409: duplicate, already accepted]"
    if req.status != 202:
        return f"[replied {status}]"
    return ""


def _clean(text: str) -> str:
    # Bodies come from the network: control characters (terminal escapes) must not reach a terminal.
    text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= _LINE_TEXT_MAX else text[: _LINE_TEXT_MAX - 3] + "..."


def jsonl_entry(req: Request) -> dict:
    """The ``--jsonl`` record of ``req``: its headers (the key masked), body, status and verdict."""
    shown = ("idempotency-key", "user-agent", "content-type")
    headers = {name: req.headers[name] for name in shown if name in req.headers}
    if "authorization" in req.headers:
        shaped = bearer_token(req.headers["authorization"]) is not None
        headers["authorization"] = "Bearer ***" if shaped else "***"
    try:
        body = parse_json(req.body.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        body = req.body.decode("utf-8", errors="replace")
    return {
        "receivedAt": rfc3339(req.received_at),
        "method": req.method,
        "path": req.path,
        "status": req.status,
        "reply": req.reply or None,
        "error": req.error,
        "headers": headers,
        "body": body,
    }
