"""Monitoring drop-ins: ``enable`` writes UNIT.d/seestack.conf from the template in
units/, ``disable`` removes exactly that, ``list`` shows what is monitored."""

from __future__ import annotations

import glob
import os
import subprocess
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Tuple

from .config import Config
from .errors import StateError, UsageError
from .files import atomic_write
from .slug import check_slug, slug_from_name

HOOK_PATH = "/usr/bin/seestack-hook"
DROPIN_NAME = "seestack.conf"
MARKER = "seestack-hook enable"
TEMPLATE_PLACES = (
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "units", "seestack.conf.in"),
    "/usr/share/seestack-systemd/seestack.conf.in",
)
SYSTEM_UNIT_DIRS = ("etc/systemd/system", "run/systemd/system", "lib/systemd/system", "usr/lib/systemd/system")
# Specifiers systemd may expand in a slug; their result is validated by the hook at run time.
SLUG_SPECIFIERS = ("%i", "%j", "%p")
UNIT_SUFFIXES = (".service", ".timer")
OWN_TIMER = "seestack-flush.timer"  # the agent's own: nothing to monitor there


@dataclass
class Change:
    """What enable/disable did, in words for the operator."""

    changed: bool
    text: str
    warnings: Tuple[str, ...] = ()


# Characters a flag's value may hold in a drop-in: systemd would expand '%' and '$', split
# on spaces and unquote quotes and backslashes.
_FLAG_VALUE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/+,=-")
# The per-unit settings enable writes into the drop-in: (setting name, flag), in this order.
DROPIN_FLAGS = (("config", "--config"), ("api_key_file", "--api-key-file"), ("endpoint", "--endpoint"),
                ("state_dir", "--state-dir"), ("data_dir", "--data-dir"), ("timeout", "--timeout"),
                ("deadline", "--deadline"))


def dropin_flags(settings: Mapping[str, Optional[str]]) -> str:
    """`` --deadline 3 ...`` for the hooks' command lines, each value checked as the hook
    will read it; '' when none is given."""
    from .config import SETTINGS, _convert, parse_endpoint

    words = []
    for name, flag in DROPIN_FLAGS:
        value = settings.get(name)
        if value is None:
            continue
        if not value or not set(value) <= _FLAG_VALUE:
            raise UsageError(f"{flag} {value!r}: a drop-in flag may hold only letters, digits and ._:/+,=-")
        if name in SETTINGS:
            _convert(name, value, flag)
        elif not value.startswith("/"):
            raise UsageError(f"{flag} {value!r} must be an absolute path")
        if name == "endpoint":
            parse_endpoint(value)
        words.append(f" {flag} {value}")
    return "".join(words)


def _config_dir(root: Optional[str], user: bool, environ: Mapping[str, str]) -> str:
    if user:
        base = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME", "~"), ".config")
        return os.path.join(root or "/", base.lstrip("/"), "systemd", "user")
    return os.path.join(root or "/", "etc/systemd/system")


def _systemctl(user: bool, *args: str) -> subprocess.CompletedProcess:
    from . import programs

    try:
        return programs.run("systemctl", [*(["--user"] if user else []), *args], timeout=30, text=True,
                            session=os.environ if user else None)
    except FileNotFoundError:
        raise StateError("systemctl was not found: is this a systemd machine? (--root DIR works without it)") from None


def daemon_reload(user: bool = False) -> None:
    """``systemctl daemon-reload``, so systemd sees the new or removed drop-in."""
    done = _systemctl(user, "daemon-reload")
    if done.returncode:
        raise StateError(f"systemctl daemon-reload failed: {done.stderr.strip()}")


def normalize_unit(name: str) -> str:
    """``backup`` -> ``backup.service``; refuses anything that is not a plain unit name."""
    if "/" in name or not name or name.startswith("."):
        raise UsageError(f"{name!r} is not a unit name: use NAME.service, NAME.timer or NAME@.service")
    return name if name.endswith(UNIT_SUFFIXES) else name + ".service"


def _unit_file(root: Optional[str], user: bool, unit: str, environ: Mapping[str, str]) -> Optional[str]:
    """Where a staging root holds ``unit`` (or its template), or None."""
    dirs = [_config_dir(root, user, environ)] if user else [os.path.join(root or "/", d) for d in SYSTEM_UNIT_DIRS]
    names = [unit]
    if "@" in unit:
        prefix, _, rest = unit.partition("@")
        names.append(f"{prefix}@.{rest.rsplit('.', 1)[-1]}")
    for d in dirs:
        for n in names:
            if os.path.isfile(os.path.join(d, n)):
                return os.path.join(d, n)
    return None


def resolve(unit: str, root: Optional[str], user: bool, environ: Mapping[str, str]) -> Tuple[str, Optional[str]]:
    """(the service to monitor, the timer named) for what the operator typed; checks it exists."""
    unit = normalize_unit(unit)
    timer = unit if unit.endswith(".timer") else None
    if root:
        path = _unit_file(root, user, unit, environ)
        if not path:
            raise UsageError(f"unit {unit} not found under {root}")
        if timer:
            service = _timer_unit_from_file(path) or unit[: -len(".timer")] + ".service"
            if not _unit_file(root, user, service, environ):
                raise UsageError(f"{timer} triggers {service}, which is not found under {root}")
            return service, timer
        return unit, None
    if unit.endswith("@.service"):
        # systemctl show takes no template names: look for the template's file.
        if not _unit_file(None, user, unit, environ):
            raise UsageError(f"template unit {unit} not found")
        return unit, None
    props = _show(user, unit, ["LoadState", "Unit"])
    if props.get("LoadState") in ("not-found", "", None):
        raise UsageError(f"unit {unit} not found: check the name with 'systemctl list-unit-files {unit}'")
    if timer:
        service = props.get("Unit") or unit[: -len(".timer")] + ".service"
        return service, timer
    return unit, None


def _timer_unit_from_file(path: str) -> Optional[str]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            key, _, value = line.partition("=")
            if key.strip() == "Unit":
                return value.strip()
    return None


def _show(user: bool, unit: str, properties: List[str]) -> Dict[str, str]:
    done = _systemctl(user, "show", "--no-pager", "-p", ",".join(properties), "--", unit)
    if done.returncode:
        first = (done.stderr.strip().splitlines() or ["no output"])[0]
        raise StateError(f"systemctl show {unit} failed: {first}; on a machine without systemd running,"
                         " --root DIR works on the unit files")
    return dict(line.partition("=")[::2] for line in done.stdout.splitlines() if "=" in line)


def default_slug(service: str) -> str:
    """The slug derived from a unit name: ``db_dump@x.service`` -> ``db-dump-x``."""
    base = service[: -len(".service")] if service.endswith(".service") else service
    return slug_from_name(base)


def check_slug_pattern(slug: str) -> str:
    """A slug as written in a drop-in: valid, or valid once systemd expands %i/%j/%p."""
    probe = slug
    for spec in SLUG_SPECIFIERS:
        probe = probe.replace(spec, "x")
    if "%" in probe:
        raise ValueError(f"slug {slug!r}: only the specifiers {', '.join(SLUG_SPECIFIERS)} may be used in it")
    check_slug(probe)
    return slug


def render(unit: str, slug: str, hook: str = HOOK_PATH, flags: str = "") -> str:
    """The drop-in text for ``unit`` monitored as ``slug``."""
    for place in TEMPLATE_PLACES:
        if os.path.exists(place):
            with open(place, encoding="utf-8") as f:
                template = f.read()
            break
    else:
        raise StateError(f"the drop-in template is missing (looked in {', '.join(TEMPLATE_PLACES)}): reinstall the package")
    # The per-unit flags go before each hook's '-- SLUG'.
    template = template.replace(" -- @SLUG@", f"{flags} -- @SLUG@")
    return template.replace("@UNIT@", unit).replace("@SLUG@", slug).replace("@HOOK@", hook)


def dropin_path(service: str, root: Optional[str], user: bool, environ: Mapping[str, str]) -> str:
    return os.path.join(_config_dir(root, user, environ), service + ".d", DROPIN_NAME)


def slug_in(path: str) -> Optional[str]:
    """The slug an existing drop-in of ours reports as, or None when it is not ours."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    if MARKER not in text:
        return None
    for line in text.splitlines():
        if line.startswith("ExecStopPost=") and " finish " in line:  # the slug is the last word
            return line.split()[-1]
    return None


def enable(unit: str, slug: Optional[str], root: Optional[str] = None, user: bool = False, force: bool = False,
           environ: Mapping[str, str] = {}, settings: Mapping[str, Optional[str]] = {}) -> Change:
    """Write the monitoring drop-in for ``unit`` (idempotent; ``force`` to change the slug,
    or to monitor a unit whose environment is not root's), with ``settings`` as flags."""
    from .unitenv import FIX, WHY, unit_env_risks

    service, timer = resolve(unit, root, user, environ)
    derived = slug is None
    slug = check_slug_pattern(slug if slug is not None else default_slug(service))
    path = dropin_path(service, root, user, environ)
    text = render(service, slug, flags=dropin_flags(settings))
    risks = unit_env_risks(service, root, user, environ)
    if risks and not force:
        raise UsageError(f"refusing to add root hooks to {service}: {'; '.join(risks)}; {WHY}. Fix: {FIX};"
                         " or add --force to accept the risk")
    warnings = tuple(f"{service}: root hooks added although {r}: {WHY}" for r in risks)
    current = slug_in(path)
    if os.path.lexists(path) and current is None:
        raise UsageError(f"{path} exists and was not written by seestack-hook: move it away first")
    if current == slug:
        try:
            with open(path, encoding="utf-8") as f:
                if f.read() == text:
                    return Change(False, f"{service} is already monitored as '{slug}'", warnings)
        except OSError:
            pass
    elif current is not None and not force:
        raise UsageError(f"{service} is already monitored as '{current}'; add --force to switch it to '{slug}'")
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, 0o755, exist_ok=True)
    except OSError as e:
        raise StateError(f"cannot create {directory}: {e.strerror}") from None
    atomic_write(directory, DROPIN_NAME, text.encode("utf-8"), mode=0o644)
    via = f" (triggered by {timer})" if timer else ""
    named = " (derived from the unit name; --slug sets another)" if derived else ""
    return Change(True, f"monitoring {service}{via} as '{slug}'{named}: create a monitor with this slug in the"
                        f" SeeStack console; wrote {path}", warnings)


def disable(unit: str, root: Optional[str] = None, user: bool = False, environ: Mapping[str, str] = {}) -> Change:
    """Remove exactly the drop-in ``enable`` wrote (and its directory when left empty)."""
    unit = normalize_unit(unit)
    service = unit
    if unit.endswith(".timer"):
        service = (_timer_unit_from_file(_unit_file(root, user, unit, environ) or "/nonexistent") if root else
                   _show(user, unit, ["Unit"]).get("Unit")) or unit[: -len(".timer")] + ".service"
    path = dropin_path(service, root, user, environ)
    if slug_in(path) is None:
        if os.path.lexists(path):
            raise UsageError(f"{path} was not written by seestack-hook; leaving it alone")
        return Change(False, f"{service} is not monitored")
    os.unlink(path)
    try:
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass  # other drop-ins of the operator's remain
    return Change(True, f"stopped monitoring {service}: removed {path}")


def monitored(root: Optional[str], user: bool, environ: Mapping[str, str]) -> List[Tuple[str, str]]:
    """(service, slug) for every drop-in of ours, sorted by unit."""
    pattern = os.path.join(_config_dir(root, user, environ), "*.d", DROPIN_NAME)
    found = []
    for path in sorted(glob.glob(pattern)):
        slug = slug_in(path)
        if slug:
            found.append((os.path.basename(os.path.dirname(path))[: -len(".d")], slug))
    return found


def _timers(root: Optional[str], user: bool, environ: Mapping[str, str]) -> Dict[str, Dict[str, str]]:
    """timer -> {Unit, NextElapseUSecRealtime} for every timer systemd (or the root) knows."""
    if root:
        dirs = [_config_dir(root, user, environ)] if user else [os.path.join(root, d) for d in SYSTEM_UNIT_DIRS]
        found: Dict[str, Dict[str, str]] = {}
        for d in dirs:
            for path in sorted(glob.glob(os.path.join(d, "*.timer"))):
                name = os.path.basename(path)
                found.setdefault(name, {"Unit": _timer_unit_from_file(path) or name[:-6] + ".service"})
        return found
    # Loaded timers (instances too) and installed ones: systemd unloads an idle timer nothing references.
    listed = _systemctl(user, "list-units", "--type=timer", "--all", "--no-legend", "--plain", "--no-pager")
    if listed.returncode:
        first = (listed.stderr.strip().splitlines() or ["no output"])[0]
        raise StateError(f"systemctl list-units failed: {first}; --root DIR lists from the unit files instead")
    loaded = listed.stdout
    files = _systemctl(user, "list-unit-files", "--type=timer", "--no-legend", "--no-pager").stdout
    words = [line.split()[0] for line in (loaded + "\n" + files).splitlines() if line.split()]
    timers = sorted({w for w in words if w.endswith(".timer") and "@." not in w})
    if not timers:
        return {}
    from .systemd import show

    found = {}
    for timer, props in zip(timers, show(timers, ["Id", "Unit", "NextElapseUSecRealtime"])):
        found[timer] = props
    return found


def list_lines(config: Config, root: Optional[str] = None, user: bool = False, show_all: bool = False,
               environ: Mapping[str, str] = {}) -> List[str]:
    """The table ``seestack-hook list`` prints."""
    import time

    from . import spool
    from .report import last_heartbeat

    timers = _timers(root, user, environ)
    by_service = {props.get("Unit"): timer for timer, props in timers.items()}
    lines = [f"{'UNIT':32} {'SLUG':24} {'TIMER':24} {'NEXT RUN':20} LAST HEARTBEAT"]
    watched = set()
    for service, slug in monitored(root, user, environ):
        watched.add(service)
        timer = by_service.get(service, "")
        next_run = (timers.get(timer, {}).get("NextElapseUSecRealtime") or "-") if timer else "-"
        last = last_heartbeat(config, slug) if "%" not in slug else None
        if last:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last["finishedAt"]))
            took = f"{last['durationMs'] / 1000:.1f}s" if last.get("durationMs") is not None else "-"
            sent = {"delivered": "delivered", "duplicate": "delivered", "temporary": "spooled"}.get(
                last.get("outcome"), "refused")
            last_text = f"{last['status']} {took} at {when}, {sent}"
        else:
            last_text = "none yet"
        lines.append(f"{service:32} {slug:24} {timer or '-':24} {next_run:20} {last_text}")
    if len(lines) == 1:
        lines.append("(no monitored units: add one with 'seestack-hook enable NAME.timer')")
    from .unitenv import risky_units

    lines.extend(f"UNSAFE {line}" for line in risky_units(root, user, environ))
    if show_all:
        lines.append("")
        lines.append("timers not monitored yet:")
        missing = [(t, p.get("Unit", "")) for t, p in sorted(timers.items())
                   if p.get("Unit") not in watched and t != OWN_TIMER]
        for timer, service in missing:
            lines.append(f"  {timer:32} -> {service:32} seestack-hook enable {timer}")
        if not missing:
            lines.append("  (none)")
    waiting, age = spool.stats(config.spool_dir)
    if waiting:
        lines.append(f"spool: {waiting} heartbeat(s) waiting, oldest {age or 0:.0f}s old ('seestack-hook flush' sends them)")
    return lines
