"""``run``'s command line, read so that the job always runs: after SLUG, the first word
that is not one of run's own options starts the command, with ``--`` or without; an
unknown option is noted, not fatal. Only a line with no command is a usage error."""

from __future__ import annotations

import difflib

from seestack_systemd.errors import UsageError


def parse_run(args: list[str], setting_flags: dict[str, str]) -> dict[str, object] | None:
    """``run``'s command line: options and SLUG, then the command from the first word that
    is not one of run's options (``--`` or not). An unknown option is skipped with a note
    (its value too when it looks like a misspelt option that takes one): the job runs.
    ``setting_flags`` maps the setting flags run takes to setting names. None for ``--help``."""
    value_options = {"--success-exit": "success_exit", **setting_flags}
    opts: dict[str, object] = {"command": "run", "success_exit": [], "settings": {}, "notes": [], "slug": None,
                               "cmd": []}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--" or not arg.startswith("-") or arg == "-":
            if arg == "--" and opts["slug"] is None and i < len(args):
                arg, i = args[i], i + 1
            elif arg == "--":
                opts["cmd"] = args[i:]
                break
            if opts["slug"] is None:
                opts["slug"] = arg
                continue
            opts["cmd"] = args[i - 1:]
            break
        if arg in ("-h", "--help"):
            return None
        flag, eq, value = arg.partition("=")
        if flag in value_options:
            if not eq:
                if i >= len(args):
                    raise UsageError(f"{flag} needs a value")
                value, i = args[i], i + 1
            if flag == "--success-exit":
                opts["success_exit"].append(value)  # type: ignore[attr-defined]
            else:
                opts["settings"][value_options[flag]] = value  # type: ignore[index]
            continue
        close = difflib.get_close_matches(flag, value_options, 1, 0.75)
        if close and not eq and i < len(args):
            arg, i = f"{arg} {args[i]}", i + 1
        hint = f" (did you mean {close[0]}?)" if close else ""
        note = f"run: unknown option {arg!r} ignored{hint}; the command runs"
        opts["notes"].append(note)  # type: ignore[attr-defined]
    return opts


def success_codes(values: list[str]) -> list[int]:
    """0 and the codes of every ``--success-exit`` (comma-separated, each 0-255)."""
    codes = {0}
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or int(part) > 255:
                raise UsageError(f"--success-exit {value!r}: use exit codes from 0 to 255 separated by commas, e.g. 24")
            codes.add(int(part))
    return sorted(codes)
