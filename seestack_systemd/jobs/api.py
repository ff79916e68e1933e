"""The library: the SeeStack SDK's ``start_job`` / ``finish_job``, plus ``monitor``.

It reads the same configuration as the CLI (flags aside) and reports through
the same core. A delivery failure is logged on the ``seestack_systemd`` logger,
never raised: the job's own errors and control flow are its own.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from seestack_systemd.settings import config as config_mod
from seestack_systemd.settings.table import BY_NAME, VALUES
from seestack_systemd.errors import ConfigError, SeestackError
from seestack_systemd.heartbeat import Run, check_status
from seestack_systemd.delivery.report import deliver
from seestack_systemd.slug import check_slug
from seestack_systemd.state import new_run_id

logger = logging.getLogger("seestack_systemd")
_overrides: dict[str, Any] = {}
_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}


def configure(**settings: Any) -> None:
    """Override settings in code, e.g. ``configure(endpoint="https://...", api_key_file="/etc/seestack/key")``.

    Names are the config file's (``endpoint``, ``timeout``, ``deadline``, ``api_key_file``...);
    ``api_key`` may be given directly here. ``configure()`` with no arguments clears overrides.
    """
    unknown = sorted(set(settings) - set(BY_NAME))
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}: known ones are {', '.join(sorted(BY_NAME))}")
    for name, value in settings.items():
        if name in VALUES and value is not None:
            try:  # a bad value in code is the developer's to fix now, not a log line at each finish
                config_mod.convert(name, str(value), _argument(name))
                if name == "endpoint" and value:  # its form; plain http off loopback is judged with the rest
                    config_mod.parse_endpoint(str(value), allow_insecure_http=True)
            except ConfigError as e:
                raise ValueError(str(e)) from None
    if not settings:
        _overrides.clear()
    _overrides.update(settings)


def _argument(name: str) -> str:
    """How errors name a setting given in code: the configure() argument, not a CLI flag."""
    return f"configure({name}=...)"


def _config() -> config_mod.Config:
    flags = {k: (str(v) if v is not None else None) for k, v in _overrides.items() if k != "api_key"}
    cfg = config_mod.load(dict(os.environ), flags, flag_name=_argument)
    if _overrides.get("api_key"):
        cfg.api_key, cfg.api_key_source = str(_overrides["api_key"]), "configure(api_key=...)"
    return cfg


@dataclass
class JobHandle:
    """A started job: its slug, run id and start by both clocks."""

    slug: str
    run_id: str = field(default_factory=new_run_id)
    started_at: float = field(default_factory=time.time)
    started_mono: float = field(default_factory=time.monotonic)
    finished: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)


def start_job(slug: str) -> JobHandle:
    """Start timing a run of monitor ``slug`` (``ValueError`` for an invalid slug)."""
    return JobHandle(check_slug(slug))


def finish_job(handle: JobHandle, status: str, message: str | None = None) -> bool:
    """Report the run now as ``"success"`` or ``"failed"``; return whether it was delivered.

    Raises ``ValueError`` for a bad status or a handle already finished; delivery
    problems are logged, never raised.
    """
    check_status(status)
    with handle._lock:
        if handle.finished:
            raise ValueError(f"job {handle.slug!r} (run {handle.run_id}) was already finished")
        handle.finished = True
    duration = max(0, int(round((time.monotonic() - handle.started_mono) * 1000)))
    run = Run(handle.slug, status, handle.run_id, time.time(), duration, handle.started_at,
              message, os.uname().nodename, {"library": {"pid": os.getpid()}})
    try:
        return deliver(_config(), run, lambda level, text: logger.log(_LEVELS[level], "%s", text)).delivered
    except Exception as e:  # noqa: BLE001 - the library's one boundary: monitoring must never break the job
        # The logger's name already says whose line this is: no "seestack:" prefix of our own.
        known = isinstance(e, (SeestackError, OSError))
        why = e if known else f"internal error {type(e).__name__}: {e}; please report it"
        logger.error("%s: heartbeat not sent: %s", handle.slug, why)
        return False


def _outcome(exc_type: type[BaseException] | None, exc: BaseException | None) -> tuple[str, str | None]:
    """How a block that ended with ``exc`` is reported: (status, message)."""
    if exc_type is None or exc_type is GeneratorExit:  # GeneratorExit: the consumer stopped early, no failure
        return "success", None
    if isinstance(exc, SystemExit) and exc.code in (0, None):  # sys.exit(0) is a clean end
        return "success", None
    text = str(exc)
    return "failed", f"{exc_type.__name__}: {text}" if text else exc_type.__name__


class monitor:
    """Report a piece of work as one run of monitor ``slug``: success, or failed with the
    exception's type and message. The exception is always re-raised.

    - ``with monitor("slug"):`` and ``async with monitor("slug"):``
    - ``@monitor("slug")`` on a function, a generator function, an ``async def`` or an
      async generator function: the run starts when the work starts (the call, the first
      ``next()``, the first ``await``) and ends when it really ends (return, raise, the
      generator exhausted or closed).

    In async code the heartbeat is delivered in a worker thread (``asyncio.to_thread``),
    so the event loop keeps running while it is sent.
    """

    def __init__(self, slug: str) -> None:
        if callable(slug):
            name = getattr(slug, "__name__", repr(slug))
            raise TypeError(f"monitor needs the monitor's slug: write @monitor(\"my-job\") above {name}(),"
                            " not @monitor")
        self.slug = check_slug(slug)
        self.handle: JobHandle | None = None

    def __enter__(self) -> JobHandle:
        self.handle = start_job(self.slug)
        return self.handle

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Finish the run as the block ended; returns None, so the job's exception propagates."""
        if self.handle is not None and not self.handle.finished:
            finish_job(self.handle, *_outcome(exc_type, exc))

    async def __aenter__(self) -> JobHandle:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.handle is not None and not self.handle.finished:
            await asyncio.to_thread(finish_job, self.handle, *_outcome(exc_type, exc))

    def __call__(self, func: Callable) -> Callable:
        slug = self.slug
        if inspect.isasyncgenfunction(func):
            @functools.wraps(func)
            async def async_gen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
                async with monitor(slug):
                    # What `yield from` does for generators, by hand: asend/athrow/aclose reach func.
                    agen = func(*args, **kwargs)
                    try:
                        item = await agen.__anext__()
                    except StopAsyncIteration:
                        return
                    while True:
                        try:
                            sent = yield item
                        except GeneratorExit:
                            await agen.aclose()
                            raise
                        except BaseException as e:  # noqa: BLE001 - thrown in by the consumer, for func to handle
                            step = agen.athrow(e)
                        else:
                            step = agen.asend(sent)
                        try:
                            item = await step
                        except StopAsyncIteration:
                            return
            return async_gen_wrapper
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def coroutine_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with monitor(slug):
                    return await func(*args, **kwargs)
            return coroutine_wrapper
        if inspect.isgeneratorfunction(func):
            @functools.wraps(func)
            def generator_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
                with monitor(slug):
                    return (yield from func(*args, **kwargs))
            return generator_wrapper

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with monitor(slug):
                return func(*args, **kwargs)
        return wrapper
