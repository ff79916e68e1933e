"""What systemd says of the timers ``list`` shows: every timer it knows (or a staging
root's unit files), their properties, and whether a monitored unit's timer will run it again."""

from __future__ import annotations

import glob
import os
from typing import Dict, List, Mapping, Optional, Sequence

from seestack_systemd.errors import StateError
from seestack_systemd.systemd.units import USER_MANAGER_HINT, timer_unit_from_file, instance_of, systemctl, unit_dirs

# LoadState values of a timer that systemd will not run, in the operator's words.
UNLOADED = {"not-found": "removed", "masked": "masked", "error": "failed to load", "bad-setting": "failed to load"}


def timers(root: Optional[str], user: bool, environ: Mapping[str, str]) -> Dict[str, Dict[str, str]]:
    """timer -> {Unit, LoadState, ActiveState, NextElapse...} for every timer systemd (or the staging root) knows,
    template instances included; StateError where systemd does not answer."""
    if root:
        dirs = unit_dirs(root, user, environ)
        found: Dict[str, Dict[str, str]] = {}
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
        first = (listed.stderr.strip().splitlines() or ["no output"])[0]
        hint = USER_MANAGER_HINT if user else "--root DIR lists from the unit files instead"
        raise StateError(f"systemctl{' --user' if user else ''} list-units failed: {first}; {hint}")
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


def show_units(session: Optional[Mapping[str, str]], names: Sequence[str],
               properties: Sequence[str]) -> List[Dict[str, str]]:
    """``systemctl show`` of several units (``session``: see units.systemctl): one dict per unit, in order."""
    done = systemctl(session, "show", "--no-pager", "-p", ",".join(properties), "--", *names)
    blocks = done.stdout.split("\n\n")
    return [dict(line.partition("=")[::2]
                 for line in (blocks[i] if i < len(blocks) else "").splitlines() if "=" in line)
            for i in range(len(names))]


def not_scheduled(timer: Optional[str], props: Optional[Dict[str, str]]) -> Optional[str]:
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
