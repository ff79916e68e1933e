"""The command line's grammar: the hooks' options and every command's example, in tables
that both argparse (parser.py) and the hooks' fast parser are built from.

``start`` and ``finish`` run around every job, so their lines are read by
``fast_parse`` over the same tables; argparse (a few milliseconds of imports) is
loaded only for help, errors and the other commands.
"""

from __future__ import annotations

from seestack_systemd.settings.table import FLAGS

PROG = "seestack-hook"

# The hooks' own options, per command: flag -> (destination, allowed values or None for any,
# help). Both the fast path and argparse are built from it, so they accept the same lines.
HOOK_GRAMMAR: dict[str, dict[str, tuple[str, tuple[str, ...] | None, str]]] = {
    "start": {"--unit": ("unit", None, "the unit's name, as %%n gives it")},
    "finish": {"--unit": ("unit", None, "the unit's name, as %%n gives it"),
               "--status": ("status", ("success", "failed"),
                            "the outcome when $SERVICE_RESULT is not set (outside systemd; default success)")},
}

EXAMPLES = {
    "start": "ExecStartPre=+-/usr/bin/seestack-hook start --unit %n -- nightly-backup",
    "finish": "ExecStopPost=+-/usr/bin/seestack-hook finish --unit %n -- nightly-backup\n"
              "  seestack-hook finish --status failed nightly-backup     # outside systemd",
    "ping": "seestack-hook ping nightly-backup --status success --message 'manual check'",
    "run": "seestack-hook run nightly-backup --success-exit 24 rsync -a /srv/ backup:/srv/\n"
           "  seestack-hook run nightly-backup -- ./backup.sh --full     # '--' is optional",
    "check": "seestack-hook check --send nightly-backup",
    "receive": "seestack-hook receive --try      # prints the export lines of a scratch setup\n"
               "  seestack-hook receive --listen 127.0.0.1:8099 --jsonl /tmp/heartbeats.jsonl --reply 503,202",
    "flush": "seestack-hook flush",
    "enable": "seestack-hook enable backup.timer\n  seestack-hook enable 'db-dump@.service' --slug 'db-dump-%i'",
    "disable": "seestack-hook disable backup.service",
    "list": "seestack-hook list --all\n  seestack-hook list --output=json    # one JSON array of rows, for scripts",
}


def fast_parse(argv: list[str]) -> dict[str, object] | None:
    """Parse ``start``/``finish`` command lines without argparse; None means "let argparse
    do it" (help, errors, abbreviations, anything unusual). A line it accepts, argparse
    accepts with the same meaning (tests/unit/cli/test_grammar.py)."""
    if not argv or argv[0] not in HOOK_GRAMMAR:
        return None
    own = HOOK_GRAMMAR[argv[0]]
    opts: dict[str, object] = {"command": argv[0], "strict": False, "settings": {}}
    settings: dict[str, str] = {}
    positional: list[str] = []
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg == "--":  # the slug follows, even one that starts with '-'; nothing after it
            if len(args) != 1 or positional:
                return None
            positional.extend(args)
            break
        if arg == "--strict":
            opts["strict"] = True
            continue
        if not arg.startswith("-") or arg == "-":
            positional.append(arg)
            continue
        flag, eq, value = arg.partition("=")
        if flag not in FLAGS and flag not in own:
            return None
        if not eq:
            if not args or args[0].startswith("-"):  # argparse reads that as a missing value
                return None
            value = args.pop(0)
        if flag in FLAGS:  # the settings flags (settings/table.py): none of them takes the key itself
            settings[FLAGS[flag]] = value
        else:
            dest, allowed, _ = own[flag]
            if allowed is not None and value not in allowed:
                return None
            opts[dest] = value
    if len(positional) != 1:
        return None
    opts["settings"] = settings
    opts["slug"] = positional[0]
    return opts


RUN_USAGE = f"usage: {PROG} run [OPTIONS] SLUG [--] COMMAND [ARGS...]"
