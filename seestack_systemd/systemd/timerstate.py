"""What systemd says of the timers ``list`` shows: every timer it knows (or a staging
root's unit files), their properties, and whether a monitored unit's timer will run it again."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping

from seestack_systemd.systemd.units import failed, instance_of, show_units, systemctl, timer_unit_from_file, unit_dirs

# LoadState values of a timer that systemd will not run, in the operator's words.
UNLOADED = {"not-found": "removed", "masked": "masked", "error": "failed to load", "bad-setting": "failed to load"}


def timers(root: str | None, user: bool, environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """timer -> {Unit, LoadState, ActiveState, NextElapse...} for every timer systemd (or the staging root) knows,
    template instances included; StateError where systemd does not answer."""
    if root:
        dirs = unit_dirs(root, user, environ)
        found: dict[str, dict[str, str]] = {}
        for d in dirs:
            # Enabled instances (x@a.timer) are the symlinks in the .wants/ directories.
            found_files = glob.glob(os.path.join(d, "*.timer")) + glob.glob(os.path.join(d, "*.wants", "*.timer"))
            for path in sorted(found_files):
                name = os.path.basename(path)
                unit = timer_unit_from_file(path) if os.path.exists(path) else None
                if "@" in name and not name.endswith("@.timer"):
                    unit = instance_of(unit, name.partition("@")[2][: -len(".timer")]) if unit and "@." in unit \
                        else unit
                masked = os.path.realpath(path) == os.devnull  # systemctl mask's symlink
                found.setdefault(name, {"Unit": unit or name[:-6] + ".service",
                                        "LoadState": "masked" if masked else "loaded", "ActiveState": "active"})
        return found
    # Loaded timers (instances too) and installed ones: systemd unloads an idle timer nothing references.
    session = environ if user else None
    listed = systemctl(session, "list-units", "--type=timer", "--all", "--no-legend", "--plain", "--no-pager")
    if listed.returncode:
        raise failed(listed, session, "list-units", "--root DIR lists from the unit files instead")
    files = systemctl(session, "list-unit-files", "--type=timer", "--no-legend", "--no-pager").stdout
    words = [line.split()[0] for line in (listed.stdout + "\n" + files).splitlines() if line.split()]
    names = sorted({w for w in words if w.endswith(".timer")})
    # systemctl show takes no template names (x@.timer): they stand for their instances.
    found = {name: {"Unit": name[: -len(".timer")] + ".service", "LoadState": "loaded", "ActiveState": "active"}
             for name in names if "@." in name}
    loaded = [name for name in names if "@." not in name]
    props = ["Id", "Unit", "LoadState", "ActiveState", "UnitFileState", "NextElapseUSecRealtime",
             "NextElapseUSecMonotonic"]
    found.update(zip(loaded, show_units(session, loaded, props) if loaded else []))
    return found


def not_scheduled(timer: str | None, props: dict[str, str] | None) -> str | None:
    """Why a monitored unit's ``timer`` will not run it again (removed, masked, failed to
    load, disabled, stopped), or None while it is scheduled (or the unit has no timer)."""
    if not timer:
        return None
    if props is None:
        return "removed"
    load = props.get("LoadState", "")
    if load and load != "loaded":
        return UNLOADED.get(load, load)
    if props.get("ActiveState", "active") not in ("active", "activating", "reloading"):
        return "disabled" if props.get("UnitFileState") == "disabled" else "stopped"
    return None
