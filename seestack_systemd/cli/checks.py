"""What ``seestack-hook check`` reports: each setting with where it came from, the
warnings an operator should act on, and the problems that keep heartbeats from going out."""

from __future__ import annotations

from seestack_systemd.cli.listing import list_lines
from seestack_systemd.delivery import spool
from seestack_systemd.settings.config import Config
from seestack_systemd.settings.table import TABLE
from seestack_systemd.errors import ConfigError, SeestackError
from seestack_systemd.systemd.units import risky_units

from collections.abc import Mapping


def settings_table(cfg: Config) -> list[str]:
    """One line per setting: name, value, and [where it came from]; the key only as its hint."""
    found = cfg.config_file or (f"{cfg.config_path} (empty or unreadable; defaults apply)" if cfg.config_path
                                else f"(none at {cfg.config_default}; defaults apply)")
    lines = [f"{'config file':20} {found}    [{cfg.config_source}]"]
    for setting in TABLE:
        if not setting.shown:
            continue
        name = setting.name
        value = getattr(cfg, name)
        where = cfg.sources.get(name, "default" if value == setting.default else "derived")
        shown = ("yes" if value else "no") if isinstance(value, bool) else value
        lines.append(f"{name:20} {shown if shown not in (None, '') else '(not set)'}    [{where}]")
    lines.append(f"{'api_key':20} {cfg.key_hint()}")
    return lines


def problems(cfg: Config) -> list[str]:
    """What keeps any heartbeat from being sent: no usable endpoint, no key."""
    found = []
    for attempt in (cfg.endpoint_parsed, cfg.require_key):
        try:
            attempt()
        except ConfigError as e:
            found.append(str(e))
    return found


def warnings(cfg: Config, user: bool, environ: Mapping[str, str]) -> list[str]:
    """The settings' own warnings, units whose environment a root hook should not trust,
    heartbeats waiting in the spool, and what ``list`` would warn about."""
    found = cfg.send_warnings() + risky_units(None, False, environ)
    waiting, age = spool.stats(cfg.spool_dir)
    if waiting:
        found.append(f"{waiting} heartbeat(s) wait in the spool, the oldest for {age or 0:.0f}s: they could not be"
                     " delivered when sent; 'seestack-hook flush' retries now")
    return found + _unit_warnings(cfg, user, environ)


def _unit_warnings(cfg: Config, user: bool, environ: Mapping[str, str]) -> list[str]:
    """Timers no longer scheduled, instances sharing a slug; nothing where systemd does not answer."""
    try:
        return list_lines(cfg, user=user, environ=dict(environ))[1]
    except (SeestackError, OSError):
        return []
