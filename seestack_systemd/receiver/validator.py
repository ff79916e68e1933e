"""The ingest contract's request validator, shared by the ``receive`` server and the tests.

``validate()`` names the first way a request breaks seestack-ingest-api.md, as a short
sentence that never contains the bearer token; the helpers parse the way the backend would.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from seestack_systemd.contract import INGEST_PATH, MESSAGE_LIMIT_BYTES, SDK_NAME, STATUSES, TIME_EXAMPLE
from seestack_systemd.slug import check_slug

_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", re.ASCII)
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII | re.IGNORECASE)
# RFC 7235: the scheme is case-insensitive; the token is one run of visible ASCII.
_BEARER_RE = re.compile(r"bearer ([!-~]+)", re.ASCII | re.IGNORECASE)


def validate(method: str, path: str, headers: Mapping[str, str], body: bytes) -> str | None:
    """Return the first way a request breaks the ingest contract, as a short sentence, or None.

    ``headers`` may use any case for names. Messages never contain the bearer token.
    """
    if path != INGEST_PATH:
        return f"unknown path {show(path)}: heartbeats go to POST {INGEST_PATH}"
    if method != "POST":
        return f"method must be POST, not {show(method)}"
    lowered = {name.lower(): value for name, value in headers.items()}
    error = _check_headers(lowered)
    if error:
        return error
    try:
        doc = parse_json(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"body is not valid UTF-8 ({exc.reason} at byte {exc.start})"
    except ValueError as exc:
        return f"body is not valid JSON: {exc}"
    if not isinstance(doc, dict):
        return f"body must be a JSON object, not {json_type(doc)}"
    return _check_fields(doc, lowered["idempotency-key"])


def _check_headers(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization")
    if auth is None:
        return "missing Authorization header: send 'Authorization: Bearer <api key>'"
    if bearer_token(auth) is None:
        # Never echo the value: it may well be the key in a wrong shape.
        return "Authorization header must be 'Bearer <api key>' with a non-empty key"
    content_type = headers.get("content-type")
    if content_type is None:
        return "missing Content-Type header: send 'Content-Type: application/json'"
    mime, *params = [part.strip().lower() for part in content_type.split(";")]
    if mime != "application/json" or any(p.replace(" ", "").replace('"', "") != "charset=utf-8" for p in params):
        return f"Content-Type must be application/json, not {show(content_type)}"
    agent = headers.get("user-agent", "")
    if not agent.startswith(SDK_NAME + "/") or len(agent) == len(SDK_NAME) + 1:
        return f"User-Agent must start with '{SDK_NAME}/<version>', not {show(agent)}"
    if not headers.get("idempotency-key", "").strip():
        return "missing Idempotency-Key header: send the heartbeat's runId"
    return None


def _check_fields(doc: dict, idempotency_key: str) -> str | None:
    for name in ("slug", "status", "durationMs", "runId", "finishedAt", "sdk"):
        if name not in doc:
            return f"missing required field {name!r}"
    slug = doc["slug"]
    if not isinstance(slug, str):
        return f"slug must be a string, not {json_type(slug)}"
    try:
        check_slug(slug)
    except ValueError as exc:
        return str(exc)
    if doc["status"] not in STATUSES:
        return f"status must be 'success' or 'failed', not {show(doc['status'])}"
    duration = doc["durationMs"]
    # type() rather than isinstance(): JSON true/false arrive as bool, a subclass of int.
    if duration is not None and (type(duration) is not int or duration < 0):
        return f"durationMs must be an integer >= 0 or null, not {show(duration)}"
    run_id = doc["runId"]
    if not isinstance(run_id, str) or not _UUID_RE.fullmatch(run_id):
        return f"runId must be a UUID string, not {show(run_id)}"
    if run_id != idempotency_key:
        return f"runId {run_id!r} differs from the Idempotency-Key header {show(idempotency_key)}"
    error = _check_time("finishedAt", doc["finishedAt"])
    if error:
        return error
    sdk = doc["sdk"]
    if not isinstance(sdk, dict):
        return f"sdk must be an object, not {json_type(sdk)}"
    if sdk.get("name") != SDK_NAME:
        return f"sdk.name must be {SDK_NAME!r}, not {show(sdk.get('name'))}"
    if not isinstance(sdk.get("version"), str) or not sdk["version"]:
        return f"sdk.version must be a non-empty string, not {show(sdk.get('version'))}"
    return _check_optional_fields(doc)


def _check_optional_fields(doc: dict) -> str | None:
    if "message" in doc:
        message = doc["message"]
        if not isinstance(message, str):
            return f"message must be a string, not {json_type(message)}"
        try:
            size = len(message.encode("utf-8"))
        except UnicodeEncodeError:
            # JSON \ud800-style escapes decode to lone surrogates, which UTF-8 cannot carry.
            return "message contains an unpaired surrogate escape, so it is not valid UTF-8"
        if size > MESSAGE_LIMIT_BYTES:
            return f"message is {size} bytes of UTF-8, more than the {MESSAGE_LIMIT_BYTES} allowed"
    for name in ("startedAt", "nextRunAt"):
        error = _check_time(name, doc[name]) if name in doc else None
        if error:
            return error
    if "host" in doc and not isinstance(doc["host"], str):
        return f"host must be a string, not {json_type(doc['host'])}"
    if "source" in doc and not isinstance(doc["source"], dict):
        return f"source must be an object, not {json_type(doc['source'])}"
    return None


def _check_time(name: str, value: Any) -> str | None:
    problem = f"{name} must be RFC 3339 UTC with milliseconds like {TIME_EXAMPLE}, not {show(value)}"
    if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
        return problem
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return f"{name} {value!r} is not a real date and time"
    return None


def bearer_token(value: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` value, or None when it has another shape."""
    match = _BEARER_RE.fullmatch(value)
    return match.group(1) if match else None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str) -> Any:
    """Parse JSON as the backend would; raises ValueError (NaN, Infinity, too deep included)."""
    # Python's json accepts NaN and Infinity by default; the backend would not.
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("it is nested too deeply") from None


def json_type(value: Any) -> str:
    """Name a parsed JSON value's type for an error message: ``null``, ``a string``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for quoting untrusted input in a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def small_int(text: str) -> int | None:
    """``text`` as a non-negative int when it is up to 18 ASCII digits, else None."""
    # isdigit() alone accepts digits such as '²' that int() rejects; the length cap keeps
    # a 60,000-digit header from reaching int(), which refuses (3.11+) or labours over it.
    if text.isascii() and text.isdigit() and len(text) <= 18:
        return int(text)
    return None
