"""One run of a job as the heartbeat the ingest contract describes (seestack-ingest-api.md),
and how a run ended in the words its message starts with (the hooks' and ``run``'s alike)."""

from __future__ import annotations

import json
import signal

from seestack_systemd.contract import MESSAGE_LIMIT_BYTES, SDK, STATUSES, TRUNCATION_MARK, rfc3339
from seestack_systemd.errors import InvalidValue
from seestack_systemd.record import Record

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


# systemd's own exit statuses (systemd.exec(5)) for the ways a job can fail to start.
EXEC_STATUSES = {
    200: "CHDIR: the working directory could not be entered",
    203: "EXEC: the command could not be executed; is the binary missing or not executable?",
    204: "STDOUT: standard output could not be set up",
    206: "NICE", 209: "STDIN: standard input could not be set up",
    210: "CHROOT", 214: "SETSCHEDULER", 216: "GROUP: the group could not be found",
    217: "USER: the user could not be found",
    218: "CAPABILITIES", 222: "RUNTIME_DIRECTORY", 225: "KEYRING", 226: "NAMESPACE: the sandbox could not be set up",
    227: "NO_NEW_PRIVILEGES", 228: "SECCOMP", 233: "STATE_DIRECTORY", 238: "LOGS_DIRECTORY",
    243: "CREDENTIALS: a credential could not be loaded",
}


def signal_name(value: str) -> str:
    """``KILL`` or ``9`` -> ``SIGKILL``; a number that is no signal stays ``signal 99``."""
    if value.isdigit():
        try:
            return signal.Signals(int(value)).name
        except ValueError:
            return f"signal {value}"
    return value if value.startswith("SIG") else f"SIG{value}"


def how_it_ended(exit_code: str | None, exit_status: str | None) -> str:
    """``exited with status 1``, ``killed by SIGKILL``, ``dumped core after SIGSEGV``."""
    if not exit_code:
        return ""
    status = exit_status or "?"
    if exit_code == "exited":
        text = f"exited with status {status}"
        if status.isdigit() and int(status) in EXEC_STATUSES:
            text += f" ({EXEC_STATUSES[int(status)]})"
        return text
    if exit_code == "killed":
        return f"killed by {signal_name(status)}"
    if exit_code == "dumped":
        return f"dumped core after {signal_name(status)}"
    return f"{exit_code} {status}"


def tail_within(head: str, lines: list[str], limit: int = MESSAGE_LIMIT_BYTES) -> str:
    """``head`` then as many of the *last* ``lines`` as fit in ``limit`` bytes: the end of
    a job's output says why it failed, so that is what is kept. When output had to be
    left out, the message ends with the contract's ``…[truncated]``."""
    mark = "\n" + TRUNCATION_MARK
    room = limit - len(head.encode("utf-8")) - 1 - len(mark.encode("utf-8"))
    kept: list[str] = []
    cut = False
    for line in reversed(lines):
        data = line.encode("utf-8")
        if len(data) + 1 > room:
            if not kept and room > 64:
                # One huge last line: its end is still the part worth reading.
                kept.append("…" + data[-(room - 4):].decode("utf-8", "ignore"))
            cut = True
            break
        kept.append(line)
        room -= len(data) + 1
    text = "\n".join([head, *reversed(kept)]) if kept else head
    return text + mark if cut else text


def note_overlap(run: Run, found: dict) -> None:
    """Say in ``run``'s heartbeat that it started while ``found`` other runs of its job were
    still going: in ``source.overlap`` always, and on the message's second line when it
    failed (the first is the reason, the rest the output, which a long tail may cut)."""
    if not found:
        return
    n, since = int(found["earlierRuns"]), rfc3339(float(found["since"]))
    runs = "run of this job was" if n == 1 else "runs of this job were"
    words = f"started while {n} earlier {runs} still running (since {since})"
    run.source = dict(run.source or {}, overlap={"earlierRuns": n, "since": since})
    if run.status == "failed":
        head, newline, rest = (run.message or "failed").partition("\n")
        run.message = f"{head}\n{words}{newline}{rest}"
