"""Monitoring drop-ins: ``enable`` writes UNIT.d/seestack.conf from the template shipped
in the package (seestack_systemd/systemd/seestack.conf.in), ``disable`` removes exactly that;
``monitored`` says what is monitored (cli/listing.py shows it), and ``risky_units`` which of
those run their root hooks with an environment root does not own (unitenv.py's checks)."""

from __future__ import annotations

import glob
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from seestack_systemd.errors import StateError, UsageError
from seestack_systemd.systemd import programs
from seestack_systemd.systemd.dropin import dropin_flags, render, read_dropin, slug_in
from seestack_systemd.systemd.unitenv import FIX, WHY, environment_files, environment_files_in, unit_risks
from seestack_systemd.files import atomic_write
from seestack_systemd.settings.paths import HOOK_PATH, config_home, missing_hook
from seestack_systemd.slug import expand, slug_from_name

DROPIN_NAME = "seestack.conf"
SYSTEM_UNIT_DIRS = ("etc/systemd/system", "run/systemd/system", "lib/systemd/system", "usr/lib/systemd/system")
# Where a user manager finds units besides the user's own config dir (systemd.unit(5)), under / or a staging root.
USER_UNIT_DIRS = ("etc/systemd/user", "run/systemd/user", "usr/local/lib/systemd/user", "usr/lib/systemd/user")
# What --user needs when systemctl cannot reach the user's manager.
USER_MANAGER_HINT = ("--user needs the user's systemd manager running: log in as that user (a session starts it)"
                     " or run 'loginctl enable-linger USER' as root, and have XDG_RUNTIME_DIR=/run/user/UID set;"
                     " or use --root DIR on the unit files")
UNIT_SUFFIXES = (".service", ".timer")
# systemd's other unit types: none of them is a job that runs and ends.
OTHER_UNIT_TYPES = ("socket", "target", "path", "mount", "automount", "swap", "slice", "scope", "device")
OWN_TIMER = "seestack-flush.timer"  # the agent's own: nothing to monitor there
EXAMPLE_INSTANCES = ("Main_DB", "db.example.com")  # shown by enable for a template
SYSTEMCTL_TIMEOUT_S = 30.0  # an operator's command: a busy manager may be slow, nobody waits on a job


@dataclass
class Change:
    """What enable/disable did, in words for the operator, and what the operator should know."""

    changed: bool
    text: str
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Monitored:
    """One drop-in of ours: the unit, its slug (pattern), the timer named when it was written."""

    service: str
    slug: str
    timer: str | None


def _config_dir(root: str | None, user: bool, environ: Mapping[str, str]) -> str:
    """Where ``enable`` writes drop-ins: root's /etc/systemd/system, or the user's own
    unit directory in their XDG config directory (settings/paths.py), under ``root`` (or /)."""
    if user:
        return os.path.join(root or "/", config_home(environ).lstrip("/"), "systemd", "user")
    return os.path.join(root or "/", "etc/systemd/system")


def systemctl(session: Mapping[str, str] | None, *args: str) -> subprocess.CompletedProcess:
    """``systemctl ARGS`` for an operator's command (``--user`` for the manager of the user
    whose environment is ``session``); StateError when there is no systemctl."""
    try:
        return programs.systemctl(args, SYSTEMCTL_TIMEOUT_S, session)
    except FileNotFoundError:
        raise StateError("systemctl was not found: is this a systemd machine? (--root DIR works without it)") from None


def show_units(session: Mapping[str, str] | None, names: Sequence[str], properties: Sequence[str],
               strict: bool = False) -> list[dict[str, str]]:
    """``systemctl show`` of several units in one call (``session``: see ``systemctl``): one
    dict per unit, in order, by programs.parse_show's rule. ``strict``: StateError when
    systemctl fails (the manager is not reachable), else whatever it printed."""
    done = systemctl(session, *programs.show_args(names, properties))
    if strict and done.returncode:
        raise failed(done, session, f"show {' '.join(names)}",
                     "on a machine without systemd running, --root DIR works on the unit files")
    return programs.parse_show(done.stdout, len(names))


def failed(done: subprocess.CompletedProcess, session: Mapping[str, str] | None, what: str,
           system_hint: str) -> StateError:
    """The error for an operator's systemctl command that failed: what systemctl said, and what
    to do (for --user, how to get the user's manager running; else ``system_hint``)."""
    user = session is not None
    hint = USER_MANAGER_HINT if user else system_hint
    said = programs.first_line(done.stderr)
    return StateError(f"systemctl{' --user' if user else ''} {what} failed: {said}; {hint}")


def daemon_reload(session: Mapping[str, str] | None = None) -> None:
    """``systemctl daemon-reload``, so systemd sees the new or removed drop-in."""
    done = systemctl(session, "daemon-reload")
    if done.returncode:
        raise StateError(f"systemctl daemon-reload failed: {done.stderr.strip()}")


def enable_user_flush(session: Mapping[str, str]) -> list[str]:
    """Enable and start the user's seestack-flush.timer, which replays the user's spool;
    the warning to show when that cannot be done. ``session``: the user's environment."""
    done = systemctl(session, "enable", "--now", OWN_TIMER)
    if done.returncode == 0:
        return []
    said = programs.first_line(done.stderr)
    return [f"could not enable the user unit {OWN_TIMER} ({said}); it ships in the Debian package under"
            " /usr/lib/systemd/user: without it, heartbeats spooled during an outage wait for the next run's hook"]


def normalize_unit(name: str) -> str:
    """``backup`` -> ``backup.service``; refuses anything that is not a plain unit name."""
    if "/" in name or not name or name.startswith("."):
        raise UsageError(f"{name!r} is not a unit name: use NAME.service, NAME.timer or NAME@.service")
    kind = name.rpartition(".")[2]
    if kind in OTHER_UNIT_TYPES:
        raise UsageError(f"{name} is a {kind} unit, which runs no job of its own: give the service that runs the"
                         f" job (NAME.service), or the timer that starts that service (NAME.timer)")
    return name if name.endswith(UNIT_SUFFIXES) else name + ".service"


def unit_dirs(root: str | None, user: bool, environ: Mapping[str, str]) -> list[str]:
    """The directories systemd loads units from, under ``root`` (or /): for --user the
    user's config dir first, then the system-wide user unit dirs."""
    shared = USER_UNIT_DIRS if user else SYSTEM_UNIT_DIRS
    return ([_config_dir(root, user, environ)] if user else []) + [os.path.join(root or "/", d) for d in shared]


def unit_file(root: str | None, user: bool, unit: str, environ: Mapping[str, str]) -> str | None:
    """Where a staging root holds ``unit`` (or its template), or None."""
    dirs = unit_dirs(root, user, environ)
    names = [unit]
    if "@" in unit:
        prefix, _, rest = unit.partition("@")
        names.append(f"{prefix}@.{rest.rsplit('.', 1)[-1]}")
    for d in dirs:
        for n in names:
            if os.path.isfile(os.path.join(d, n)):
                return os.path.join(d, n)
    return None


def resolve(unit: str, root: str | None, user: bool, environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(the service to monitor, the timer named) for what the operator typed; checks it exists."""
    unit = normalize_unit(unit)
    timer = unit if unit.endswith(".timer") else None
    if unit.endswith("@.timer"):
        # A template timer: its instances trigger the instances of a template service.
        path = unit_file(root, user, unit, environ)
        if not path:
            raise UsageError(f"template unit {unit} not found")
        return timer_unit_from_file(path) or unit[: -len(".timer")] + ".service", unit
    if root:
        path = unit_file(root, user, unit, environ)
        if not path:
            raise UsageError(f"unit {unit} not found under {root}")
        if timer:
            service = timer_unit_from_file(path) or unit[: -len(".timer")] + ".service"
            if not unit_file(root, user, service, environ):
                raise UsageError(f"{timer} triggers {service}, which is not found under {root}")
            return service, timer
        timer = unit[: -len(".service")] + ".timer"
        return unit, timer if unit_file(root, user, timer, environ) else None
    if unit.endswith("@.service"):
        # systemctl show takes no template names: look for the template's file.
        if not unit_file(None, user, unit, environ):
            raise UsageError(f"template unit {unit} not found")
        timer = unit[: -len(".service")] + ".timer"
        return unit, timer if unit_file(None, user, timer, environ) else None
    props = show_units(environ if user else None, [unit], ["LoadState", "Unit", "TriggeredBy"], strict=True)[0]
    if props.get("LoadState") in ("not-found", "", None):
        raise UsageError(f"unit {unit} not found: check the name with 'systemctl list-unit-files {unit}'")
    if timer:
        service = props.get("Unit") or unit[: -len(".timer")] + ".service"
        return service, timer
    return unit, next((t for t in props.get("TriggeredBy", "").split() if t.endswith(".timer")), None)


def timer_unit_from_file(path: str) -> str | None:
    """The ``Unit=`` a timer's unit file names, or None (then it triggers the service of its own name)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            key, _, value = line.partition("=")
            if key.strip() == "Unit":
                return value.strip()
    return None


def default_slug(service: str) -> str:
    """The slug derived from a unit name: ``db_dump@x.service`` -> ``db-dump-x``."""
    base = service[: -len(".service")] if service.endswith(".service") else service
    return slug_from_name(base)


def instance_of(service: str, instance: str) -> str:
    """``db-dump@.service`` + ``Main_DB`` -> ``db-dump@Main_DB.service``."""
    prefix, _, suffix = service.partition("@")
    return f"{prefix}@{instance}{suffix[suffix.index('.'):]}" if suffix else service


def check_slug_pattern(slug: str, service: str = "probe@probe.service") -> str:
    """A slug as written in a drop-in: valid, or valid once the hook expands its
    specifiers (%i, %I, %p, %P, %j, %J) for ``service``. The instance specifiers need a
    template (``name@.service``) or one of its instances: any other unit has no instance."""
    if "@" not in service and ("%i" in slug.replace("%%", "") or "%I" in slug.replace("%%", "")):
        raise UsageError(f"slug {slug!r} uses %i/%I, the instance name, but {service} is not a template"
                         " (name@.service), so it has none: use a fixed slug, or enable the template")
    expand(slug, instance_of(service, "probe") if "%" in slug else None)
    return slug


def dropin_path(service: str, root: str | None, user: bool, environ: Mapping[str, str]) -> str:
    """Where ``enable`` writes ``service``'s drop-in (UNIT.d/seestack.conf)."""
    return os.path.join(_config_dir(root, user, environ), service + ".d", DROPIN_NAME)


def _template_notes(service: str, slug: str) -> tuple[str, list[str]]:
    """What enable says of a template: the slugs example instances get, or the advice to use %i."""
    if "@." not in service:
        return "", []
    if "%" not in slug:
        prefix = slug_from_name(service.partition("@")[0])
        return "", [f"every instance of {service} reports as '{slug}', so their runs mix in one monitor;"
                    f" to give each its own, use --slug '{prefix}-%i'"]
    examples = ", ".join(f"{instance_of(service, i)} as '{expand(slug, instance_of(service, i))}'"
                         for i in EXAMPLE_INSTANCES)
    return f"; instances report with %i made a slug (lower case, other characters '-'), e.g. {examples}", []


def enable(unit: str, slug: str | None, root: str | None = None, user: bool = False, force: bool = False,
           environ: Mapping[str, str] = {}, settings: Mapping[str, str | None] = {},
           hook: str = HOOK_PATH) -> Change:
    """Write the monitoring drop-in for ``unit`` calling ``hook`` (idempotent; ``force`` to
    change the slug, or to monitor a unit whose environment is not root's), with
    ``settings`` as flags."""
    service, timer = resolve(unit, root, user, environ)
    derived = slug is None
    slug = check_slug_pattern(slug if slug is not None else default_slug(service), service)
    path = dropin_path(service, root, user, environ)
    text = render(service, slug, hook, dropin_flags(settings), timer)
    risks = unit_env_risks(service, root, user, environ)
    if risks and not force:
        raise UsageError(f"refusing to add root hooks to {service}: {'; '.join(risks)}; {WHY}. Fix: {FIX};"
                         " or add --force to accept the risk")
    examples, warnings = _template_notes(service, slug)
    warnings += [f"{service}: root hooks added although {r}: {WHY}" for r in risks]
    current = slug_in(path)
    if hook != HOOK_PATH:
        warnings.append(f"the drop-in calls {hook}, not {HOOK_PATH}: it stops reporting if that install is"
                        " moved or removed; the Debian package installs " + HOOK_PATH)
    missing = missing_hook(hook, root)
    if missing:
        warnings.append(missing)
    if os.path.lexists(path) and current is None:
        raise UsageError(f"{path} exists and was not written by seestack-hook: move it away first")
    if current == slug:
        try:
            with open(path, encoding="utf-8") as f:
                if f.read() == text:
                    return Change(False, f"{service} is already monitored as '{slug}'{examples}", warnings)
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
    return Change(True, f"monitoring {service}{via} as '{slug}'{named}{examples}: create a monitor with this slug"
                        f" in the SeeStack console; wrote {path}", warnings)


def disable(unit: str, root: str | None = None, user: bool = False, environ: Mapping[str, str] = {}) -> Change:
    """Remove exactly the drop-in ``enable`` wrote (and its directory when left empty)."""
    unit = normalize_unit(unit)
    service = unit
    if unit.endswith("@.timer"):
        service = timer_unit_from_file(unit_file(root, user, unit, environ) or "/nonexistent") or \
            unit[: -len(".timer")] + ".service"
    elif unit.endswith(".timer"):
        named = (timer_unit_from_file(unit_file(root, user, unit, environ) or "/nonexistent") if root
                 else show_units(environ if user else None, [unit], ["Unit"], strict=True)[0].get("Unit"))
        service = named or unit[: -len(".timer")] + ".service"
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


def monitored(root: str | None, user: bool, environ: Mapping[str, str]) -> list[Monitored]:
    """Every drop-in of ours, sorted by unit."""
    pattern = os.path.join(_config_dir(root, user, environ), "*.d", DROPIN_NAME)
    found = []
    for path in sorted(glob.glob(pattern)):
        mine = read_dropin(path)
        if mine:
            found.append(Monitored(os.path.basename(os.path.dirname(path))[: -len(".d")], *mine))
    return found


def unit_env_risks(service: str, root: str | None, user: bool, environ: Mapping[str, str]) -> list[str]:
    """Why the root hooks must not run with ``service``'s environment ([] when they may).
    User units run their hooks as the user: no privilege to gain there."""
    if user:
        return []
    if root or "@." in service:  # systemctl shows no template: read its files
        return unit_risks(environment_files_in(root or "/", unit_file(root, False, service, environ)), root or "/")
    return unit_risks(environment_files([service]).get(service, []))


def risky_units(root: str | None, user: bool, environ: Mapping[str, str]) -> list[str]:
    """One warning per monitored unit whose root hooks run with an environment root does not own."""
    services = [entry.service for entry in monitored(root, user, environ)]
    if user or not services:
        return []
    files = {} if root else environment_files([s for s in services if "@." not in s])
    found = []
    for service in services:
        risks = (unit_env_risks(service, root, user, environ) if root or "@." in service
                 else unit_risks(files.get(service, [])))
        if risks:
            found.append(f"{service}: its root hooks run with an environment others can change: {'; '.join(risks)};"
                         f" {FIX}")
    return found
