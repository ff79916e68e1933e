"""Every setting, once: its name, default, kind, environment variable, flag and help,
whether the drop-in carries it and whether ``check`` shows it.

The config file's parser, the environment, argparse and the hooks' fast parser, the
drop-in's flags, ``check``'s table and the library's ``configure()`` are all read off
``TABLE``; tests/unit/settings/test_table.py holds the man page and the shipped config
file to it. The rows are in the order ``check`` shows them, the order an operator reads
them: where heartbeats go, where runs are kept, how long a delivery may take, how the
connection is made, what a message holds, how much may wait; the flags keep the order
of the drop-ins written so far.
"""

from __future__ import annotations

from seestack_systemd.record import Record


class Setting(Record):
    """One setting. ``kind`` says how its text is checked and converted (config.convert):
    text, seconds, count, bool, choice, path; ``source`` for the settings that say where
    the others come from (the config file, the key), which ``Config`` does not hold as
    values. ``help`` is the command-line flag's help ('' when there is no flag);
    ``user_default``, the default for a user, where it differs, as help shows it
    (paths.defaults computes it; tests/unit/settings/test_table.py holds the two alike);
    ``choices``, a choice's values."""

    name: str
    default: object
    kind: str
    env: str = ""
    help: str = ""
    dropin: bool = False
    shown: bool = True
    user_default: str = ""
    choices: tuple[str, ...] = ()


TABLE: tuple[Setting, ...] = (
    Setting("config", "/etc/seestack/seestack.conf", "source", "SEESTACK_CONFIG", "config file",
            user_default="~/.config/seestack/seestack.conf", dropin=True, shown=False),
    Setting("api_key_file", None, "source", "SEESTACK_API_KEY_FILE", "file holding the API key", dropin=True,
            shown=False),
    Setting("api_key", None, "source", "SEESTACK_API_KEY", shown=False),
    Setting("endpoint", None, "text", "SEESTACK_ENDPOINT", "backend base URL", dropin=True),
    Setting("state_dir", "/run/seestack", "path", "SEESTACK_STATE_DIR", "where start records live",
            user_default="$XDG_RUNTIME_DIR/seestack", dropin=True),
    Setting("data_dir", "/var/lib/seestack", "path", "SEESTACK_DATA_DIR", "where the spool and last heartbeats live",
            user_default="~/.local/state/seestack", dropin=True),
    Setting("spool_dir", "", "path", "SEESTACK_SPOOL_DIR"),  # '' means DATA_DIR/spool
    Setting("timeout", 5.0, "seconds", "SEESTACK_TIMEOUT", "seconds per HTTP request", dropin=True),
    Setting("deadline", 10.0, "seconds", "SEESTACK_DEADLINE", "seconds for the whole delivery, retries included",
            dropin=True),
    Setting("allow_insecure_http", False, "bool"),
    Setting("ca_file", None, "path"),
    Setting("https_proxy", None, "text"),
    Setting("no_proxy", None, "text"),
    Setting("output_lines", 20, "count"),
    Setting("success_message", "last-line", "choice", choices=("last-line", "none")),
    Setting("spool_max_files", 1000, "count"),
    Setting("spool_max_bytes", 10 * 1024 * 1024, "count"),
)


def flag(name: str) -> str:
    """How the command line spells setting ``name``'s option: ``--api-key-file``."""
    return f"--{name.replace('_', '-')}"


BY_NAME = {s.name: s for s in TABLE}
# The settings Config holds as values (the others say where settings come from).
VALUES = {s.name: s for s in TABLE if s.kind != "source"}
# Names the config file may set: every setting but the file itself.
IN_FILE = [s.name for s in TABLE if s.name != "config"]
# Every setting with a flag takes it on every command but receive and disable, spelled from its name.
FLAGS = {flag(s.name): s.name for s in TABLE if s.help}
DROPIN = [s.name for s in TABLE if s.dropin]


def flag_help(setting: Setting) -> str:
    """The flag's help line: what it sets, its defaults and its environment variable."""
    default = setting.default
    shown = f"{default:g}" if isinstance(default, float) else default
    notes = [f"default {shown}" + (f", or {setting.user_default} for a user" if setting.user_default else "")] \
        if default else []
    return f"{setting.help} ({'; '.join([*notes, f'env {setting.env}'])})"
