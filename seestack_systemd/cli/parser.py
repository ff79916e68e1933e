"""The full argparse parser: help, errors and every command but the hooks' usual lines
(which grammar.fast_parse reads without importing argparse), built from grammar.py's tables
and the settings table."""

from __future__ import annotations

import argparse

from seestack_systemd.cli.grammar import EXAMPLES, HOOK_GRAMMAR, PROG
from seestack_systemd.contract import VERSION
from seestack_systemd.jobs.runner import OUTPUT_GRACE_S
from seestack_systemd.settings.table import BY_NAME, FLAGS, flag_help


def build_parser() -> argparse.ArgumentParser:
    """The full argparse parser, for help text and every subcommand."""
    def settings_parent(title: str) -> argparse.ArgumentParser:
        parent = argparse.ArgumentParser(add_help=False)
        group = parent.add_argument_group(title)
        for flag, name in FLAGS.items():
            group.add_argument(flag, dest=name, metavar=name.split("_")[-1].upper(), help=flag_help(BY_NAME[name]))
        return parent

    common = settings_parent("settings (override the config file and environment)")
    hooks = settings_parent("settings (override the config file, and the environment but for a hook run as root)")
    dropin = settings_parent("settings (written into the drop-in as flags of both hooks)")

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Report every run of a scheduled job to SeeStack cron monitoring.",
        epilog="examples:\n  seestack-hook receive --try           # try it against a local receiver, as any user\n"
               "  seestack-hook enable backup.timer     # monitor a timer's service\n"
               "  seestack-hook check --send backup     # verify the setup end to end\n"
               "  seestack-hook list --all              # what is monitored, what is not\n\n"
               "Run 'seestack-hook COMMAND --help' for each command; see seestack-hook(1).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parser.commands = {}  # type: ignore[attr-defined]  # name -> its parser, for its usage on errors

    def command(name: str, text: str, settings: bool = True) -> argparse.ArgumentParser:
        parents = [dropin if name == "enable" else hooks if name in HOOK_GRAMMAR else common] if settings else []
        p = sub.add_parser(name, parents=parents, help=text, description=text,
                           epilog=f"example:\n  {EXAMPLES[name]}", formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.commands[name] = p  # type: ignore[attr-defined]
        return p

    strict_help = {"start": "exit non-zero when the start cannot be recorded (78 bad configuration, 1 any other"
                            " error, e.g. the state directory) instead of 0",
                   "finish": "exit non-zero on failure (75 kept for replay, 78 bad configuration, 1 refused or any"
                             " other error) instead of 0"}
    for name, text in (("start", "record the start of a run (ExecStartPre=); touches no network"),
                       ("finish", "report the run that just stopped (ExecStopPost=)")):
        p = command(name, text)
        p.add_argument("slug", help="the monitor's slug: lowercase letters, digits and '-'")
        for flag, (dest, allowed, own_help) in HOOK_GRAMMAR[name].items():
            p.add_argument(flag, dest=dest, choices=allowed, help=own_help)
        p.add_argument("--strict", action="store_true", help=strict_help[name])

    p = command("ping", "send one heartbeat by hand")
    p.add_argument("slug")
    p.add_argument("--status", required=True, choices=("success", "failed"))
    p.add_argument("--message", help="text shown with the heartbeat (at most 4096 bytes are sent)")
    p.add_argument("--duration-ms", type=int, metavar="N", help="how long the run took")

    p = command("run", "run a command and report how it ended (for cron)")
    p.description = (
        "Run COMMAND and report how it ended (for cron).\n\n"
        "After SLUG, the first word that is not one of run's own options starts the\n"
        "command, '--' or not; everything from there on is the command's. An unknown\n"
        "option before the command is reported in one line and skipped: the command\n"
        "still runs. Only a line with no command is a usage error.\n\n"
        "stdout and stderr pass through as they come. Once the command's own process\n"
        f"has exited, its output is read for a grace period of at most {_grace()} s, so a\n"
        "background child left holding it never keeps run waiting.\n\n"
        "run exits with the command's own status (128+N when killed by signal N),\n"
        "whatever happens to the heartbeat.")
    p.add_argument("slug")
    p.add_argument("--success-exit", action="append", metavar="CODES",
                   help="exit codes that count as success besides 0, comma-separated, each 0-255"
                        " (like systemd's SuccessExitStatus=)")
    p.add_argument("cmd", nargs="*", metavar="[--] COMMAND [ARGS...]", help="the command to run")

    p = command("check", "validate the configuration and show where each setting comes from")
    p.add_argument("--send", metavar="SLUG", help="also send a success heartbeat for SLUG")
    p.add_argument("--user", action="store_true", help="the user's setup (~/.config/seestack, user units)")

    p = command("receive", "run a local SeeStack-compatible receiver for trying a setup", settings=False)
    p.add_argument("--listen", default="127.0.0.1:8099", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:8099; port 0 picks a free one)")
    p.add_argument("--jsonl", metavar="FILE", help="also append each heartbeat to FILE as JSON lines")
    p.add_argument("--reply", default="", metavar="CODES",
                   help="answer the first requests with these replies, comma-separated: an HTTP status (503),"
                        " STATUS:SECONDS to add Retry-After (429:2), hang (never answer), reset (reset the"
                        " connection) or trickle (a 202 sent one byte a second); e.g. 503,503,202")
    p.add_argument("--try", dest="try_setup", action="store_true",
                   help="make a scratch setup (key, config, state and data in a new directory of your own) and"
                        " print the export lines that point seestack-hook at it and at this receiver")

    command("flush", "deliver the heartbeats waiting in the spool")

    for name, text in (("enable", "add monitoring to a unit (writes a drop-in; settings given become its flags)"),
                       ("disable", "remove the monitoring drop-in from a unit")):
        p = command(name, text, settings=name == "enable")
        p.add_argument("unit", metavar="UNIT", help="NAME.service, NAME.timer, NAME@.service or an instance")
        if name == "enable":
            p.add_argument("--slug", help="monitor slug (default: derived from the unit name); may use %%i")
            p.add_argument("--force", action="store_true",
                           help="replace monitoring under another slug; or add root hooks to a unit whose"
                                " EnvironmentFile= root does not own (a warning says the risk)")
        p.add_argument("--root", metavar="DIR", help="operate on a staging root; implies --no-reload")
        flush = "; also enables the user's seestack-flush.timer" if name == "enable" else ""
        p.add_argument("--user", action="store_true", help="a user unit (~/.config/systemd/user; with --root,"
                       " units also from DIR/etc/systemd/user and DIR/usr/lib/systemd/user); needs the user's"
                       f" systemd manager (a login or loginctl enable-linger){flush}")
        p.add_argument("--no-reload", action="store_true", help="do not run systemctl daemon-reload")

    p = command("list", "show monitored units, their timers and last heartbeats")
    p.add_argument("--all", action="store_true", help="also show timers that are not monitored yet, and cron jobs"
                   " not wrapped with seestack-hook run (with the crontab line to use instead)")
    p.add_argument("--root", metavar="DIR", help="look at a staging root")
    p.add_argument("--user", action="store_true", help="user units")
    p.add_argument("-o", "--output", choices=("table", "json", "json-pretty"), default="table",
                   help="table (default) for eyes; json: one array of row objects, each with a \"kind\""
                        " (unit, job, timer, cron, unsafe, spool), for scripts; json-pretty: the same, indented")
    return parser


def _grace() -> str:
    return f"{OUTPUT_GRACE_S:g}"
