"""Whether a unit's environment is root's: the check ``enable``, ``list`` and ``check`` make
before root hooks run with it.

systemd hands ``ExecStartPre=+`` and ``ExecStopPost=+`` the unit's ``Environment=`` and
``EnvironmentFile=``. The dynamic loader honours ``LD_PRELOAD`` and ``LD_LIBRARY_PATH`` from
there before any hook code runs, so a hook cannot defend itself: whoever can write an
environment file of the unit (or replace it, through a directory they can write) gets
root. Unit files themselves live in root's directories; environment files often do not.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Mapping, Sequence

SHOW_TIMEOUT_S = 10.0


def hook_notes(environ: Mapping[str, str], config_file: str) -> list[str]:
    """What a root hook says of the unit's environment (``finish``, once per run): the
    SEESTACK_* variables it did not take, and the loader's (``LD_*``), already taken
    before any of its code ran."""
    notes = []
    ignored = ", ".join(sorted(name for name in environ if name.startswith("SEESTACK_")))
    if ignored and "INVOCATION_ID" in environ:
        notes.append(f"ignoring {ignored} from the unit's environment: a root hook takes its settings only from"
                     f" {config_file} and the drop-in's flags (seestack-hook enable UNIT --deadline ...)")
    elif ignored:  # not run by systemd: a root shell's own variables, as untrusted as a unit's
        notes.append(f"start/finish as root read only {config_file} and their flags: ignoring {ignored};"
                     " use --config, --endpoint, --api-key-file ... instead")
    loader = ", ".join(sorted(name for name in environ if name.startswith("LD_")))
    if loader:
        notes.append(f"the unit's environment sets {loader}, which the dynamic loader honours in this root hook"
                     " before any of its code runs: set them only in files root owns")
    return notes


def path_risks(path: str, top: str = "/") -> list[str]:
    """Why ``path`` (an environment file) is not root's alone: not owned by root, writable
    by group or others, or in a directory (up to ``top``, a staging root or /) that someone
    else owns or can write. Symlinks are followed, and the directories on both sides are
    checked. [] when safe."""
    top = os.path.abspath(top)
    risks: list[str] = []
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None  # whoever can create it decides its content: its directories are checked below
    except OSError as e:
        return [f"{path} cannot be checked ({e.strerror})"]
    if st is not None:
        if st.st_uid != 0:
            risks.append(f"{path} is owned by {_owner(st.st_uid)}, not root")
        if st.st_mode & 0o022:
            risks.append(f"{path} is writable by {'group and others' if st.st_mode & 0o002 else 'its group'}"
                         f" (mode {stat.S_IMODE(st.st_mode):04o})")
    seen = set()
    for start in (os.path.dirname(os.path.abspath(path)), os.path.dirname(os.path.realpath(path))):
        directory = start
        while directory not in seen and (directory + "/").startswith(top.rstrip("/") + "/"):
            seen.add(directory)
            risks.extend(_dir_risks(directory))
            parent = os.path.dirname(directory)
            if parent == directory or directory == top:
                break
            directory = parent
    return risks


def _dir_risks(directory: str) -> list[str]:
    try:
        st = os.stat(directory)
    except OSError:
        return []  # missing: its existing parent is what can be written, and it is checked too
    if st.st_uid != 0:
        return [f"its directory {directory} is owned by {_owner(st.st_uid)}, not root"]
    if st.st_mode & 0o022:
        sticky = " (sticky: anyone may create the file)" if st.st_mode & stat.S_ISVTX else ""
        return [f"its directory {directory} is writable by group or others{sticky}"]
    return []


def _owner(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def environment_files(units: Sequence[str]) -> dict[str, list[str]]:
    """unit -> the paths of its ``EnvironmentFile=`` settings, as the system manager loaded
    them ([] for a unit systemd could not show, or for all when there is no systemd)."""
    from seestack_systemd.systemd import programs  # (and subprocess) the hooks import this module only for hook_notes

    if not units:
        return {}
    found: dict[str, list[str]] = {}
    for unit, props in zip(units, programs.show(units, ["Id", "EnvironmentFiles"], SHOW_TIMEOUT_S)):
        # One EnvironmentFiles= line per setting: "/etc/default/x (ignore_errors=yes)".
        found[unit] = [value.rsplit(" (ignore_errors=", 1)[0].strip()
                       for value in programs.values(props, "EnvironmentFiles") if value.strip()]
    return found


def environment_files_in(root: str, unit_file: str | None) -> list[str]:
    """The ``EnvironmentFile=`` paths of a unit in a staging ``root`` (its file and drop-ins),
    each turned into its place under ``root``."""
    import glob  # (and re with it) only here: the hooks import this module

    if not unit_file:
        return []
    sources = [unit_file, *sorted(glob.glob(os.path.join(os.path.dirname(unit_file),
                                                         os.path.basename(unit_file) + ".d", "*.conf")))]
    paths = []
    for source in sources:
        try:
            with open(source, encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            key, _, value = line.partition("=")
            if key.strip() == "EnvironmentFile":
                for word in value.split():
                    paths.append(os.path.join(root, word.lstrip("-").lstrip("/")))
    return paths


def unit_risks(files: list[str], top: str = "/") -> list[str]:
    """One line per risky environment file: the file (as the unit names it) and every risk found."""
    lines = []
    top = os.path.abspath(top)
    for path in files:
        risks = path_risks(path, top)
        if risks:
            shown = "/" + os.path.relpath(path, top) if top != "/" else path
            lines.append(f"EnvironmentFile={shown}: {'; '.join(risks)}")
    return lines


WHY = ("the root hooks run with that environment, and the loader honours LD_PRELOAD from it before any hook"
       " code runs: whoever can write it gets root")
FIX = "make the file and its directories root's (chown root:root; chmod go-w), or move the settings into the unit"
