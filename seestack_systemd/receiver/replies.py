"""The ``receive --reply`` script: the answers the receiver gives instead of the contract's own.

A script such as ``503,429:2,hang,reset,trickle,202`` lets an operator or a test
exercise a client's retries, timeouts and error handling (see ``seestack-hook receive --help``).
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

from seestack_systemd.receiver.validator import small_int

MISBEHAVIOURS = ("hang", "reset", "trickle")
_TOKEN_HELP = (
    "use an HTTP status 200-599 (e.g. 503), STATUS:SECONDS to add Retry-After (e.g. 429:2),"
    " 'hang', 'reset' or 'trickle'"
)


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status (optionally with Retry-After) or a misbehaviour."""

    kind: str  # "status", "hang", "reset" or "trickle"
    status: int = 0  # what gets sent: 0 for hang and reset
    retry_after: int | None = None

    def __str__(self) -> str:
        if self.kind != "status":
            return self.kind
        if self.retry_after is None:
            return str(self.status)
        return f"{self.status}:{self.retry_after}"


def parse_replies(spec: str) -> list[Reply]:
    """Parse a comma-separated reply script such as ``"503,429:2,hang,202"``.

    Raises ValueError naming the first bad token. An empty spec is an empty script.
    """
    if not spec.strip():
        return []
    return [parse_reply(token.strip()) for token in spec.split(",")]


def parse_reply(token: str) -> Reply:
    """Parse one token of a reply script; raises ValueError saying what is allowed."""
    word = token.lower()
    if word in MISBEHAVIOURS:
        return Reply(word, 202 if word == "trickle" else 0)
    status_text, colon, seconds_text = token.partition(":")
    status = small_int(status_text)
    if status is None or not 200 <= status <= 599:
        raise ValueError(f"invalid reply {token!r}: {_TOKEN_HELP}")
    if not colon:
        return Reply("status", status)
    seconds = small_int(seconds_text)
    if seconds is None:
        raise ValueError(f"invalid reply {token!r}: Retry-After must be whole seconds >= 0, e.g. 429:2")
    return Reply("status", status, seconds)


def as_reply(item: Reply | int | str) -> Reply:
    """A Reply from a Reply, a status number or a token."""
    if isinstance(item, Reply):
        return item
    return parse_reply(str(item).strip())


def reply_payload(status: int) -> dict | None:
    """The JSON body sent with a scripted status: none for 204 and 304."""
    if status in (204, 304):
        return None
    if 200 <= status < 300:
        return {"accepted": True}
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "status"
    return {"error": f"scripted reply: {status} {phrase}"}


def describe(reply: Reply) -> str:
    """What the receiver did for ``reply``, as the printer shows it: ``replied 429, Retry-After: 2``."""
    if reply.kind == "status":
        said = f"replied {reply.status}"
        if reply.retry_after is not None:
            said += f", Retry-After: {reply.retry_after}"
        return said
    if reply.kind == "trickle":
        return "replied 202 one byte a second"
    return f"{reply.kind}: no reply"
