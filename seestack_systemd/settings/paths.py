"""Where the agent's files live by default: system-wide for root, per user otherwise;
and which ``seestack-hook`` a drop-in calls.

Root (system units, the root hooks) uses /etc/seestack, /run/seestack and
/var/lib/seestack, and never looks at the environment for them: the root hooks
run with the unit's environment, which its user may control. A non-root user
(user units, ``--user``, ``run``/``ping``/the library as that user) follows the
XDG base directory spec, so that a user's hooks read the user's own config:

    config     $XDG_CONFIG_HOME/seestack/seestack.conf  (~/.config/seestack/seestack.conf)
    state      $XDG_RUNTIME_DIR/seestack                (/run/user/UID/seestack)
    data/spool $XDG_STATE_HOME/seestack                 (~/.local/state/seestack)
"""

from __future__ import annotations

import os
import pwd
from _collections_abc import Mapping  # os has loaded it; collections.abc is a module more on start's path

from seestack_systemd.errors import UsageError
from seestack_systemd.settings.table import TABLE

# The paths whose default differs for a user (defaults): the system's are the settings table's.
SYSTEM = {s.name: str(s.default) for s in TABLE if s.user_default}
HOOK_PATH = "/usr/bin/seestack-hook"  # the Debian package's command


def find_hook(argv0: str, executable: str, root: str | None = None) -> str:
    """The absolute path of the running install's ``seestack-hook``, which a drop-in will
    call: the command itself, else the one beside the interpreter (a venv's bin/), else
    /usr/bin/seestack-hook (for a staging ``root``, even when it is not on this host)."""
    candidates = [os.path.abspath(argv0)] if os.path.basename(argv0) == "seestack-hook" else []
    candidates += [os.path.join(os.path.dirname(executable), "seestack-hook"), HOOK_PATH]
    found = next((c for c in candidates if os.path.isfile(c) and os.access(c, os.X_OK)), None)
    if found is None and not root:
        raise UsageError(f"no seestack-hook command found (beside {executable}, or {HOOK_PATH}):"
                         " run enable with the seestack-hook of the install that should run the hooks")
    return found or HOOK_PATH


def invoked_as(argv0: str) -> str:
    """The command line that runs this install again, for advice to paste into a shell:
    ``seestack-hook`` when we were run as that command; else (``python3 -m seestack_systemd``,
    e.g. from a checkout, which has no ``seestack-hook``) the module, from the directory
    that holds the package, since another shell may be elsewhere."""
    if os.path.basename(argv0) == "seestack-hook":
        return "seestack-hook"
    import shlex  # here: only receive --try words a command line, and start imports this module

    top = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return f"cd {shlex.quote(top)} && python3 -m seestack_systemd"


def missing_hook(hook: str, root: str | None) -> str | None:
    """A one-line warning when the ``hook`` a staging root's drop-in calls exists neither
    under ``root`` nor on this host (systemd would skip it without a word), else None."""
    if not root or os.path.isfile(hook) or os.path.isfile(os.path.join(root, hook.lstrip("/"))):
        return None
    return (f"the drop-in calls {hook}, which exists neither under {root} nor on this host: install"
            f" seestack-systemd there (the .deb, or pip install .) before it boots, or the hooks are skipped")


def is_user_mode(euid: int, user_flag: bool = False) -> bool:
    """User paths with ``--user``, or whenever the process is not root."""
    return user_flag or euid != 0


def _xdg(environ: Mapping[str, str], name: str, fallback: str) -> str:
    # The spec: a relative value is invalid and must be ignored.
    value = environ.get(name, "")
    return value if value.startswith("/") else fallback


def home_dir(environ: Mapping[str, str], euid: int) -> str:
    """$HOME, else the password database's entry for ``euid``."""
    home = environ.get("HOME", "")
    if home.startswith("/"):
        return home
    try:
        return pwd.getpwuid(euid).pw_dir
    except KeyError:
        return "/nonexistent"


def config_home(environ: Mapping[str, str], euid: int | None = None) -> str:
    """A user's XDG config directory: $XDG_CONFIG_HOME when absolute, else ~/.config of
    ``home_dir`` (of ``euid``, this process's by default). The user's seestack.conf and the
    user's systemd units (units.py) both live under it."""
    euid = os.geteuid() if euid is None else euid
    return _xdg(environ, "XDG_CONFIG_HOME", os.path.join(home_dir(environ, euid), ".config"))


def defaults(environ: Mapping[str, str], user: bool, euid: int | None = None) -> dict:
    """``{"config", "state_dir", "data_dir"}``: the system paths, or ``user``'s XDG ones."""
    if not user:
        return dict(SYSTEM)
    euid = os.geteuid() if euid is None else euid
    home = home_dir(environ, euid)
    data = os.path.join(_xdg(environ, "XDG_STATE_HOME", os.path.join(home, ".local", "state")), "seestack")
    runtime = _xdg(environ, "XDG_RUNTIME_DIR", "")
    if not runtime and os.path.isdir(f"/run/user/{euid}"):
        runtime = f"/run/user/{euid}"
    return {
        "config": os.path.join(config_home(environ, euid), "seestack", "seestack.conf"),
        # Without a runtime directory (a cron job outside a login session) start records
        # go under the data directory: they still never outlive a run by much.
        "state_dir": os.path.join(runtime, "seestack") if runtime else os.path.join(data, "run"),
        "data_dir": data,
    }
