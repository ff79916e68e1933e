"""The one path every integration reports through: Run -> body -> (spool replay,
send) -> spool on temporary failure -> last-heartbeat record.

The systemd hooks, the cron wrapper (``run``), ``ping`` and the library all end
here, so delivery, spooling and bookkeeping exist once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable  # not typing: that is milliseconds of every finish

from seestack_systemd import heartbeat, inflight
# policy and transport (http.client, ssl, urllib: tens of milliseconds) come with this module,
# so that the signatures naming Client resolve: `finish` imports it once the run's end time is read.
from seestack_systemd.delivery import last, policy, spool
from seestack_systemd.delivery.transport import Client, Target
from seestack_systemd.settings.config import Config
from seestack_systemd.errors import StateError, Stopped
from seestack_systemd.files import secure_dir
from seestack_systemd.heartbeat import Run
from seestack_systemd.record import Record
from seestack_systemd.slug import check_slug
from seestack_systemd.state import current_boot_id

# A log callback takes (level: "error" | "warning" | "info", one line of text).

# Replaying the spool first may use at most this share of the deadline, so
# an outage's backlog never crowds out the run that is finishing now.
SPOOL_SHARE = 0.3


class Delivery(Record):
    """How a delivery ended: ``delivered``, ``duplicate`` (already accepted), ``temporary``
    (kept for a later replay) or ``permanent`` (dropped: the backend will never take it)."""

    outcome: str
    detail: str
    status: int | None = None
    attempts: int = 0
    spooled: bool = False  # a kept heartbeat really went into the spool (else it is lost)

    @property
    def delivered(self) -> bool:
        return self.outcome in ("delivered", "duplicate")


def connect(config: Config) -> Client:
    """A client for the configured endpoint (ConfigError when one is missing)."""
    target = Target(
        config.endpoint_parsed(), config.require_key(), config.api_key_source, config.timeout,
        config.ca_file, config.https_proxy, config.no_proxy,
    )
    return Client(target)


def _jitter() -> float:
    return os.urandom(1)[0] / 256


def send(client: Client, body: bytes, run_id: str, slug: str, deadline_at: float,
         sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
         wall: Callable[[], float] = time.time, jitter: Callable[[], float] = _jitter) -> Delivery:
    """Send ``body`` until the policy says done, keep or drop, or ``deadline_at`` (on
    ``clock``) leaves no room for another attempt; retries wait as the policy says."""
    target = client.target
    if deadline_at - clock() < policy.MIN_ATTEMPT_S:
        return Delivery("temporary", "no time was left for an attempt")
    attempt = 0
    while True:
        attempt += 1
        answer = client.post(body, run_id, deadline_at - clock())
        decision = policy.decide(answer, attempt, deadline_at - clock(), wall(), jitter(), slug,
                                 target.key_source, target.ca_file)
        if decision.action != policy.RETRY:
            return Delivery(policy.outcome(decision, answer), decision.detail, answer.status, attempt)
        sleep(decision.delay)


def deliver(config: Config, run: Run, log: Callable[[str, str], None], deadline: float = float("inf"),
            why_short: str = "", stoppable: Callable[[bool], None] = lambda on: None) -> Delivery:
    """Send ``run``'s heartbeat now, within ``config.deadline`` or ``deadline`` when that is
    shorter (``why_short`` says why), after replaying the spool. The heartbeat is in the
    spool before the first attempt and leaves it once delivered or dropped, so a kill at
    any moment keeps it for the next flush. ``stoppable(True)`` is called once it is
    there: from then on the caller may stop the sending (``Stopped``), and the heartbeat
    is kept; ``stoppable(False)`` once the sending is over. Logs what happened; never
    raises for delivery problems."""
    body = heartbeat.body(run)
    said = list(config.warnings)  # a caller that checked the endpoint before has shown its warning
    client = connect(config)
    if client.target.endpoint.warning and client.target.endpoint.warning not in said:
        log("warning", client.target.endpoint.warning)
    held, unspooled = _hold(config, run, body)
    try:
        started = time.monotonic()
        deadline = max(0.0, min(config.deadline, deadline))
        spool_interrupted(config, log)
        try:
            stoppable(True)
            replay(config, client, started + deadline * SPOOL_SHARE, log)
            delivery = send(client, body, run.run_id, run.slug, started + deadline)
        except Stopped as e:
            delivery = Delivery("temporary", f"stopped by {e} before it was delivered")
        finally:
            stoppable(False)
        took = time.monotonic() - started
        if delivery.delivered:
            log("info", f"{run.slug}: {run.status} heartbeat {delivery.detail} in {took:.2f}s")
        elif delivery.outcome == "temporary":
            delivery.spooled, where = _keep(config, held, unspooled, log)
            short = f"{why_short}: " if why_short else ""
            tried = f" after {delivery.attempts} attempt(s) in {took:.1f}s" if delivery.attempts else ""
            log("warning", f"{run.slug}: {short}heartbeat not delivered{tried}: {delivery.detail}; {where}")
        else:
            log("error", f"{run.slug}: {delivery.detail}; not retried")
        if held and not delivery.spooled:
            held.done()
    finally:
        if held:
            held.release()  # whatever escaped, the claim ends: the heartbeat stays for the next flush
    forget(config, run.slug, run.run_id, log)
    _remember(config, run, delivery, log)
    return delivery


def flush(config: Config, log: Callable[[str, str], None]) -> spool.FlushResult | None:
    """``seestack-hook flush``: replay the spool within ``config.deadline``; None when it
    is empty (the flush timer's usual case, also before any endpoint is configured).
    Runs that an earlier boot cut off are spooled first, as failed heartbeats."""
    spool_interrupted(config, log)
    if not spool.entries(config.spool_dir):
        return None
    return replay(config, connect(config), time.monotonic() + config.deadline, log)


def replay(config: Config, client: Client, deadline_at: float, log: Callable[[str, str], None]) -> spool.FlushResult:
    """Deliver what the spool holds, oldest first, before ``deadline_at``."""
    def settled(run_id: str, slug: str, outcome: str, detail: str) -> None:
        forget(config, slug, run_id, log)  # a sender killed after writing it ahead left its run's record
        _settle(config, run_id, slug, outcome, detail, log)

    result = replay_dir(config.spool_dir, client, deadline_at, log, settled=settled)
    if result.sent or result.dropped:
        log("info", f"spool: replayed {result.sent} heartbeat(s), dropped {result.dropped}, {result.left} left")
    return result


def replay_dir(spool_dir: str, client: Client, deadline_at: float, log: Callable[[str, str], None],
               clock: Callable[[], float] = time.monotonic,
               settled: Callable[[str, str, str, str], None] | None = None) -> spool.FlushResult:
    """One attempt per spooled heartbeat, oldest first. Anything but done or drop stops
    the replay (the backend is down, the key is refused, the endpoint is wrong: the rest
    would fare the same), keeping that heartbeat and the rest. ``settled(run_id, slug,
    outcome, detail)`` hears of each heartbeat delivered or dropped."""
    def send_one(run_id: str, body: bytes) -> tuple[str, str]:
        slug = _slug_of(body)
        answer = client.post(body, run_id, deadline_at - clock())
        decision = policy.decide(answer, 1, 0.0, time.time(), 0.5, slug, client.target.key_source,
                                 client.target.ca_file)
        if decision.action == policy.DROP:
            log("error", f"dropping spooled heartbeat for {slug}: {decision.detail}")
        if settled and decision.action in (policy.DONE, policy.DROP):
            settled(run_id, slug, policy.outcome(decision, answer), decision.detail)
        return decision.action, decision.detail

    return spool.flush(spool_dir, send_one, deadline_at, log, clock)


def spool_interrupted(config: Config, log: Callable[[str, str], None]) -> int:
    """Turn each in-progress record an earlier boot left (or a run whose finish was cut
    off, see inflight.begin) into a failed heartbeat in the spool, durably, then remove
    the record; how many. Records of runs still going on this boot are left alone."""
    boot_id = current_boot_id()
    left = [doc for doc in inflight.records(config.data_dir) if boot_id and doc.get("bootId") != boot_id]
    if not left:
        return 0
    boot_started = inflight.boot_started()
    for doc in left:
        try:
            slug, fields = inflight.interrupted(doc, boot_started)
            run = Run(slug=slug, **fields)
        except (KeyError, ValueError, TypeError) as e:
            log("error", f"ignoring the unreadable record of run {doc.get('runId')}: {e}")
            continue

        def to_spool() -> None:
            if spool.holds(config.spool_dir, run.run_id):
                return  # its own heartbeat, written ahead before the sender died, is there
            spool.put(config.spool_dir, run.run_id, heartbeat.body(run), run.finished_at,
                      config.spool_max_files, config.spool_max_bytes)
            log("warning", f"{slug}: {run.message}: spooled a failed heartbeat for it (run {run.run_id})")

        try:
            inflight.settle(config.data_dir, slug, run.run_id, to_spool)
        except (StateError, OSError) as e:
            log("error", f"{slug}: could not report the interrupted run {run.run_id}: {e}")
    return len(left)


def _slug_of(body: bytes) -> str:
    try:
        return str(json.loads(body).get("slug", "?"))
    except (ValueError, AttributeError):
        return "?"


def _hold(config: Config, run: Run, body: bytes) -> tuple[spool.Held | None, str]:
    """Write the heartbeat ahead into the spool: (its claim, '') or (None, why it could not be)."""
    try:
        if os.path.dirname(config.spool_dir.rstrip("/")) == config.data_dir.rstrip("/"):
            secure_dir(config.data_dir, setting="data_dir")  # a planted link there would redirect the spool
        return spool.hold(config.spool_dir, run.run_id, body, run.finished_at), ""
    except StateError as e:
        return None, str(e)


def _keep(config: Config, held: spool.Held | None, unspooled: str,
          log: Callable[[str, str], None]) -> tuple[bool, str]:
    """Leave a held heartbeat in the spool for a replay: (whether it is there, what to say)."""
    if held is None:
        return False, f"and it could not be spooled, so it is lost: {unspooled}"
    try:
        dropped = held.keep(config.spool_max_files, config.spool_max_bytes)
    except StateError as e:
        return True, f"left in {config.spool_dir}, but {e}: a power loss now may lose it"
    if dropped:
        log("warning", f"spool full ({config.spool_max_files} files / {config.spool_max_bytes} bytes):"
                       f" dropped the {dropped} oldest heartbeat(s)")
    return True, f"spooled in {config.spool_dir} for replay"


def forget(config: Config, slug: str, run_id: str, log: Callable[[str, str], None]) -> None:
    """The run's heartbeat is settled (delivered, dropped or spooled): its in-progress record goes."""
    try:
        inflight.end(config.data_dir, check_slug(slug), run_id)  # the slug names a directory: only a valid one
    except ValueError:
        return
    except StateError as e:
        log("warning", f"{slug}: {e}: after a reboot it would be reported as interrupted")


def _remember(config: Config, run: Run, delivery: Delivery, log: Callable[[str, str], None]) -> None:
    """Keep the last heartbeat per slug for ``seestack-hook list`` (best effort)."""
    doc = {
        "status": run.status, "durationMs": run.duration_ms, "finishedAt": run.finished_at,
        "outcome": delivery.outcome, "detail": delivery.detail, "source": run.source, "runId": run.run_id,
    }
    _write_last(config, run.slug, doc, log)


def _settle(config: Config, run_id: str, slug: str, outcome: str, detail: str,
            log: Callable[[str, str], None]) -> None:
    """A replay delivered or dropped ``run_id``: when it is still ``slug``'s last
    heartbeat, say so in its record, so ``list`` no longer shows it spooled."""
    try:
        doc = last.read(config.data_dir, check_slug(slug))  # the slug names a file: only a valid one
    except ValueError:
        return
    if not doc or doc.get("runId") != run_id:
        return  # a newer run's record, or none: that one stays as it is
    doc.update(outcome=outcome, detail=detail)
    _write_last(config, slug, doc, log)


def _write_last(config: Config, slug: str, doc: dict, log: Callable[[str, str], None]) -> None:
    try:
        last.write(config.data_dir, slug, doc)
    except StateError as e:
        log("warning", f"could not record the last heartbeat: {e}")
