"""What to do with every answer, in one table: done, retry, keep or drop.

This is the contract's Responses table as data. ``decide`` is pure: the answer
(a status with its headers and body, or the exception that stood in for one),
the attempt number, the time left, the wall clock and a jitter draw go in; a
``Decision`` comes out. The single send, the spool replay and the library all
call it, so nothing else decides. Parsing a server's bytes here never raises.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Mapping
from types import MappingProxyType

from seestack_systemd.record import Record

DONE, RETRY, KEEP, DROP = "done", "retry", "keep", "drop"

BACKOFF_FIRST_S = 0.5  # the first retry waits about this long...
BACKOFF_CAP_S = 4.0  # ...doubling each time up to this
BACKOFF_MAX_EXPONENT = 8  # 2**8 * 0.5 s is far past the cap: no float ever overflows
BACKOFF_FLOOR_S = 0.25  # no retry sooner than this, whatever Retry-After says
MIN_ATTEMPT_S = 0.05  # no attempt starts with less time left than this
MAX_ERROR_TEXT = 300  # characters of a server's error shown in a log line
# A root hook's delivery ends this long before systemd's stop timeout would kill it (the
# interpreter's start, keeping the heartbeat and exiting come after the last attempt)...
STOP_MARGIN_S = 0.5
STOP_MARGIN_SHARE = 0.1  # ...plus this share of the timeout

_KEY = "the backend rejected the API key from {key_source} (HTTP {status}): check that it is current and not revoked"
_FOREIGN = ("{url} answered HTTP {status} without the ingest API's JSON error: a wrong path or a proxy"
            " in front of the API; check endpoint")

# status -> (action, what the log line says). {api} marks statuses that drop only when
# the body is the API's own JSON {"error": ...}; otherwise the answer is someone else's.
STATUSES: dict[int, tuple[str, str]] = {
    200: (DONE, "delivered (HTTP {status})"),
    201: (DONE, "delivered (HTTP {status})"),
    202: (DONE, "delivered (HTTP {status})"),
    204: (DONE, "delivered (HTTP {status})"),
    409: (DONE, "already accepted earlier (HTTP 409, a replay)"),
    400: (DROP, "{api}the backend refused the heartbeat as malformed (HTTP 400): {error}"),
    404: (DROP, "{api}no monitor '{slug}' in this project (HTTP 404): create it in the SeeStack console"),
    413: (DROP, "{api}the backend refused the heartbeat as too large (HTTP 413): {error}"),
    401: (KEEP, _KEY),
    403: (KEEP, _KEY),
    408: (RETRY, "the backend answered HTTP {status}{colon_error}"),
    429: (RETRY, "the backend answered HTTP {status}{colon_error}"),
    500: (RETRY, "the backend answered HTTP {status}{colon_error}"),
    502: (RETRY, "the backend answered HTTP {status}{colon_error}"),
    503: (RETRY, "the backend answered HTTP {status}{colon_error}"),
    504: (RETRY, "the backend answered HTTP {status}{colon_error}"),
}
# The first digit of any other status.
CLASSES: dict[int, tuple[str, str]] = {
    1: (KEEP, "{url} gave HTTP {status} as its final answer: check endpoint"),
    3: (KEEP, "{url} redirects (HTTP {status}) to {location}: set endpoint to the final base URL"),
}
OTHER_STATUS = (KEEP, "{url} answered HTTP {status}, which the ingest API never sends: check endpoint")

# What a delivery's end is called in the last-heartbeat record and `list`; an answer's own
# status may name it more exactly.
OUTCOMES = {DONE: "delivered", RETRY: "temporary", KEEP: "temporary", DROP: "permanent"}
STATUS_OUTCOMES = {409: "duplicate"}

# Exceptions in place of an answer, most specific first: (type, action, what the log line says).
FAILURES: tuple[tuple[type, str, str], ...] = (
    (ssl.SSLCertVerificationError, KEEP,
     "the TLS certificate of {host} could not be verified ({error}): {tls_fix}"),
    (socket.timeout, RETRY, "no answer from {url} in time (timeout per request, deadline in all)"),
    (TimeoutError, RETRY, "no answer from {url} in time (timeout per request, deadline in all)"),
    (ConnectionRefusedError, RETRY, "connection refused by {url}"),
    (ConnectionResetError, RETRY, "connection reset by {url}"),
    (socket.gaierror, RETRY, "cannot resolve {host}: {error}"),
    (http.client.HTTPException, RETRY, "{url} sent an answer that is not valid HTTP ({error})"),
    (ValueError, RETRY, "{url} sent an answer that is not valid HTTP ({error})"),
    (OSError, RETRY, "cannot reach {url}: {error}"),
)


class Answer(Record):
    """What one attempt got: a status with lowercased headers and the body read so far,
    or the exception that stood in for an answer."""

    url: str
    status: int | None = None
    headers: Mapping[str, str] = MappingProxyType({})  # a default is shared: an immutable one
    body: bytes = b""
    error: BaseException | None = None


class Decision(Record):
    """``action`` (DONE, RETRY, KEEP, DROP), the seconds to wait before a retry, the log line."""

    action: str
    delay: float = 0.0
    detail: str = ""


def outcome(decision: Decision, answer: Answer) -> str:
    """What the delivery that ended with ``decision`` on ``answer`` is called."""
    return STATUS_OUTCOMES.get(answer.status or 0) or OUTCOMES[decision.action]


def decide(answer: Answer, attempt: int, left: float, now: float, jitter: float = 0.5,
           slug: str = "?", key_source: str = "?", ca_file: str | None = None) -> Decision:
    """Decide ``answer`` of attempt number ``attempt`` (1 for the first), with ``left``
    seconds before the deadline and ``now`` the wall clock (for a Retry-After date).
    ``jitter`` in [0, 1) spreads a fleet's retries; tests pass a fixed one."""
    action, template = _rule(answer)
    facts = _facts(answer, slug, key_source, ca_file)
    if "{api}" in template and facts["error"] is None:
        action, template = KEEP, _FOREIGN
    detail = template.replace("{api}", "").format(**facts)
    if action != RETRY:
        return Decision(action, 0.0, detail)
    backoff = min(BACKOFF_CAP_S, BACKOFF_FIRST_S * 2 ** min(max(attempt, 1) - 1, BACKOFF_MAX_EXPONENT))
    delay = max(BACKOFF_FLOOR_S, backoff * (0.5 + jitter / 2))
    asked = retry_after(answer.headers.get("retry-after", ""), now)
    if asked is not None:
        delay = max(delay, asked)
    if delay + MIN_ATTEMPT_S > left:
        if asked is not None and asked > left:
            detail += f" (Retry-After {asked:.0f}s is past the deadline)"
        return Decision(KEEP, 0.0, detail)
    return Decision(RETRY, delay, detail)


def stop_bound(deadline: float, stop_timeout: float | None, spent: float) -> tuple[float, str]:
    """The delivery deadline of a hook that systemd kills ``stop_timeout`` seconds after
    it started (None: never), ``spent`` seconds already gone: (seconds, why it is shorter
    than ``deadline``, or '')."""
    if stop_timeout is None:
        return deadline, ""
    left = stop_timeout - STOP_MARGIN_S - stop_timeout * STOP_MARGIN_SHARE - spent
    if left >= deadline:
        return deadline, ""
    left = max(0.0, left)
    return left, (f"systemd's stop timeout ({stop_timeout:g} s) leaves {left:.1f} s of the delivery deadline"
                  f" ({deadline:g} s): raise the unit's TimeoutStopSec= or lower deadline")


def _rule(answer: Answer) -> tuple[str, str]:
    if answer.status is None:
        for kind, action, template in FAILURES:
            if isinstance(answer.error, kind):
                return action, template
        return RETRY, "cannot reach {url}: {error}"
    return STATUSES.get(answer.status) or CLASSES.get(answer.status // 100) or OTHER_STATUS


def _facts(answer: Answer, slug: str, key_source: str, ca_file: str | None) -> dict:
    """The words a log line may use. ``error`` is the API's own error text (None when the
    body is not the API's), or for a failure what the exception says."""
    err = answer.error
    if answer.status is not None:
        error = api_error(answer.headers, answer.body)
    else:
        said = getattr(err, "verify_message", None) or getattr(err, "strerror", None) or str(err or "")
        error = _clean(said) or type(err).__name__
    return {
        "status": answer.status, "url": answer.url, "slug": slug, "key_source": key_source,
        "host": answer.url.split("://", 1)[-1].split("/", 1)[0],
        "error": error, "colon_error": f": {error}" if error and answer.status is not None else "",
        "location": _clean(answer.headers.get("location", "")) or "(no Location)",
        "tls_fix": f"check ca_file ({ca_file})" if ca_file else
                   "install the CA into the system store (update-ca-certificates), or set ca_file",
    }


def api_error(headers: Mapping[str, str], body: bytes) -> str | None:
    """The ingest API's own error text: a JSON object with an ``error`` field sent as
    ``application/json``; None for any other body (someone else answered)."""
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return None
    try:
        doc = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(doc, dict) or "error" not in doc:
        return None
    return _clean(str(doc["error"])) or "(no reason given)"


def retry_after(value: str, now: float) -> float | None:
    """Seconds a Retry-After header asks for (delay-seconds or an HTTP-date), None for garbage."""
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value) if len(value) <= 9 else None  # beyond ~31 years is garbage, not a wait
    # Here: finish imports policy before it reads the run's end, and the email package would delay that.
    from email.utils import mktime_tz, parsedate_tz

    try:
        parsed = parsedate_tz(value)
        return None if parsed is None else max(0.0, mktime_tz(parsed) - now)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _clean(text: str) -> str:
    # A server's words go into a journal line: one line, printable, bounded.
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:MAX_ERROR_TEXT]
