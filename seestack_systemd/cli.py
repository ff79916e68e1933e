"""``seestack-hook``: the only module that reads argv and the environment, prints,
and picks exit codes.

``start`` and ``finish`` run around every job, so their command lines are read
by a small parser over the same option table argparse is built from; argparse
(a few milliseconds of imports) is loaded only for help, errors and the other
subcommands.
"""

from __future__ import annotations

import os
import sys

from . import __version__
from .errors import ConfigError, SeestackError, UsageError

PROG = "seestack-hook"
EX_OK, EX_FAIL, EX_USAGE, EX_TEMPFAIL, EX_CONFIG = 0, 1, 2, 75, 78

# Options every subcommand takes: (flag, setting name, help). None of them takes the key itself.
COMMON_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--config", "config", "config file (default /etc/seestack/seestack.conf; env SEESTACK_CONFIG)"),
    ("--api-key-file", "api_key_file", "file holding the API key (env SEESTACK_API_KEY_FILE)"),
    ("--endpoint", "endpoint", "backend base URL (env SEESTACK_ENDPOINT)"),
    ("--state-dir", "state_dir", "where start records live (default /run/seestack; env SEESTACK_STATE_DIR)"),
    ("--data-dir", "data_dir", "where the spool and last heartbeats live (default /var/lib/seestack;"
                               " env SEESTACK_DATA_DIR)"),
    ("--timeout", "timeout", "seconds per HTTP request (default 5)"),
    ("--deadline", "deadline", "seconds for the whole delivery, retries included (default 10)"),
)
SETTING_FLAGS = {flag: name for flag, name, _ in COMMON_OPTIONS}
HOOK_OPTIONS = {"--unit": "unit", "--status": "status"}

EXAMPLES = {
    "start": "ExecStartPre=+-/usr/bin/seestack-hook start --unit %n -- nightly-backup",
    "finish": "ExecStopPost=+-/usr/bin/seestack-hook finish --unit %n -- nightly-backup\n"
              "  seestack-hook finish --status failed nightly-backup     # outside systemd",
    "ping": "seestack-hook ping nightly-backup --status success --message 'manual check'",
    "run": "seestack-hook run nightly-backup --success-exit 0,24 -- rsync -a /srv/ backup:/srv/",
    "check": "seestack-hook check --send nightly-backup",
    "receive": "seestack-hook receive --try      # prints the export lines of a scratch setup\n"
               "  seestack-hook receive --listen 127.0.0.1:8099 --jsonl /tmp/heartbeats.jsonl --reply 503,202",
    "flush": "seestack-hook flush",
    "enable": "seestack-hook enable backup.timer\n  seestack-hook enable 'db-dump@.service' --slug 'db-dump-%i'",
    "disable": "seestack-hook disable backup.service",
    "list": "seestack-hook list --all",
}


class Output:
    """Log lines on stderr: sd-daemon priority prefixes when stderr is the journal."""

    PRIORITY = {"error": "<3>", "warning": "<4>", "info": "<6>"}

    def __init__(self, environ: dict[str, str], quiet_info: bool = False) -> None:
        self.journal = _stderr_is_journal(environ.get("JOURNAL_STREAM", ""))
        self.quiet_info = quiet_info

    def log(self, level: str, text: str) -> None:
        if (level == "info" and self.quiet_info) or sys.stderr is None:  # stderr closed: nowhere to say it
            return
        line = " ".join(str(text).split("\n"))
        if self.journal:
            sys.stderr.write(f"{self.PRIORITY[level]}{line}\n")
        else:
            label = "" if level == "info" else f"{level}: "
            sys.stderr.write(f"{PROG}: {label}{line}\n")
        sys.stderr.flush()


def _stderr_is_journal(value: str) -> bool:
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(2)
        return dev.isdigit() and ino.isdigit() and (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except OSError:
        return False


# --- command lines -------------------------------------------------------------------------

def fast_parse(argv: list[str]) -> dict[str, object] | None:
    """Parse ``start``/``finish`` command lines without argparse; None means "let argparse
    do it" (help, errors, anything unusual)."""
    if not argv or argv[0] not in ("start", "finish"):
        return None
    opts: dict[str, object] = {"command": argv[0], "strict": False, "settings": {}}
    positional: list[str] = []
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg == "--":  # what follows is the slug, even one that starts with '-'
            positional.extend(args)
            break
        if arg == "--strict":
            opts["strict"] = True
            continue
        if not arg.startswith("-"):
            positional.append(arg)
            continue
        flag, eq, value = arg.partition("=")
        if flag not in SETTING_FLAGS and flag not in HOOK_OPTIONS:
            return None
        if not eq:
            if not args:
                return None
            value = args.pop(0)
        if flag in SETTING_FLAGS:
            opts["settings"][SETTING_FLAGS[flag]] = value  # type: ignore[index]
        else:
            opts[HOOK_OPTIONS[flag]] = value
    if len(positional) != 1 or opts.get("status") not in (None, "success", "failed"):
        return None
    opts["slug"] = positional[0]
    return opts


def build_parser():
    """The full argparse parser, for help text and every subcommand."""
    import argparse

    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("settings (override the config file and environment)")
    for flag, name, text in COMMON_OPTIONS:
        group.add_argument(flag, dest=name, metavar=name.split("_")[-1].upper(), help=text)

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
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parser.commands = {}  # type: ignore[attr-defined]  # name -> its parser, for its usage on errors

    def command(name: str, text: str, settings: bool = True):
        p = sub.add_parser(name, parents=[common] if settings else [], help=text, description=text,
                           epilog=f"example:\n  {EXAMPLES[name]}", formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.commands[name] = p  # type: ignore[attr-defined]
        return p

    strict_help = "exit non-zero on failure (75 undelivered, 78 bad configuration) instead of 0"
    p = command("start", "record the start of a run (ExecStartPre=); touches no network")
    p.add_argument("slug", help="the monitor's slug: lowercase letters, digits and '-'")
    p.add_argument("--unit", help="the unit's name, as %%n gives it")
    p.add_argument("--strict", action="store_true", help=strict_help)

    p = command("finish", "report the run that just stopped (ExecStopPost=)")
    p.add_argument("slug", help="the monitor's slug")
    p.add_argument("--unit", help="the unit's name, as %%n gives it")
    p.add_argument("--status", choices=("success", "failed"),
                   help="the outcome when $SERVICE_RESULT is not set (outside systemd; default success)")
    p.add_argument("--strict", action="store_true", help=strict_help)

    p = command("ping", "send one heartbeat by hand")
    p.add_argument("slug")
    p.add_argument("--status", required=True, choices=("success", "failed"))
    p.add_argument("--message", help="text shown with the heartbeat (at most 4096 bytes are sent)")
    p.add_argument("--duration-ms", type=int, metavar="N", help="how long the run took")

    p = command("run", "run a command and report how it ended (for cron)")
    p.add_argument("slug")
    p.add_argument("--success-exit", default="0", metavar="CODES",
                   help="exit codes that count as success, comma-separated (default 0)")
    p.add_argument("cmd", nargs="*", metavar="-- COMMAND [ARGS...]",
                   help="the command to run; put -- before it so its options stay its own")

    p = command("check", "validate the configuration and show where each setting comes from")
    p.add_argument("--send", metavar="SLUG", help="also send a success heartbeat for SLUG")

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

    for name, text in (("enable", "add monitoring to a unit (writes a drop-in)"),
                       ("disable", "remove the monitoring drop-in from a unit")):
        p = command(name, text, settings=False)
        p.add_argument("unit", metavar="UNIT", help="NAME.service, NAME.timer, NAME@.service or an instance")
        if name == "enable":
            p.add_argument("--slug", help="monitor slug (default: derived from the unit name); may use %%i")
            p.add_argument("--force", action="store_true", help="replace monitoring under another slug")
        p.add_argument("--root", metavar="DIR", help="operate on a staging root; implies --no-reload")
        p.add_argument("--user", action="store_true", help="a user unit (~/.config/systemd/user)")
        p.add_argument("--no-reload", action="store_true", help="do not run systemctl daemon-reload")

    p = command("list", "show monitored units, their timers and last heartbeats")
    p.add_argument("--all", action="store_true", help="also show timers that are not monitored yet")
    p.add_argument("--root", metavar="DIR", help="look at a staging root")
    p.add_argument("--user", action="store_true", help="user units")
    return parser


def parse(argv: list[str]) -> dict[str, object]:
    """The options for ``argv`` (argparse exits 2 with a usage line on errors)."""
    fast = fast_parse(argv)
    if fast is not None:
        return fast
    command: list[str] = []
    if argv and argv[0] == "run" and "--" in argv:
        # Everything after '--' is the job's; options may stand before or after the slug.
        split = list(argv).index("--")
        argv, command = list(argv[:split]), list(argv[split + 1:])
    parser = build_parser()
    parsed, extra = parser.parse_known_args(argv)
    if extra:  # said with the subcommand's usage, not the top-level one
        parser.commands[parsed.command].error(f"unrecognized arguments: {' '.join(extra)}")
    ns = vars(parsed)
    if command:
        ns["cmd"] = command
    ns["settings"] = {name: ns.pop(name, None) for _, name, _ in COMMON_OPTIONS}
    ns.setdefault("strict", False)
    return ns


# --- commands ------------------------------------------------------------------------------

def cmd_start(opts, environ, out: Output) -> int:
    from . import config, state
    from .slug import check_slug

    slug = check_slug(str(opts["slug"]))
    cfg = config.load(environ, opts["settings"], with_key=False, state_dir_only=True)
    state.save(cfg.state_dir, slug, state.new_record(environ.get("INVOCATION_ID")))
    return EX_OK


def cmd_finish(opts, environ, out: Output) -> int:
    from . import config, state, systemd
    from .report import deliver
    from .slug import check_slug

    slug = check_slug(str(opts["slug"]))
    env = systemd.StopEnv.from_environ(environ, opts.get("unit"))
    try:
        cfg = config.load(environ, opts["settings"])
    except ConfigError:
        # No heartbeat can go out, but this run's start record must not pile up in /run.
        start_cfg = config.load(environ, opts["settings"], with_key=False, state_dir_only=True)
        state.take(start_cfg.state_dir, slug, env.invocation_id)
        raise
    record, problem = state.take(cfg.state_dir, slug, env.invocation_id)
    # The unit's journal tail is read first: our own warnings must not become the job's "last line".
    run = systemd.finished_run(slug, env, record, cfg, opts.get("status"), os.uname().nodename)
    _warn(cfg, out)
    if problem:
        out.log("warning", f"{slug}: {problem}; durationMs comes from systemd or is null")
    return _delivered(deliver(cfg, run, out.log), bool(opts.get("strict")))


def cmd_ping(opts, environ, out: Output) -> int:
    import time

    from . import config, state
    from .heartbeat import Run
    from .report import deliver
    from .slug import check_slug

    slug = check_slug(opts["slug"])
    duration = opts.get("duration_ms")
    if duration is not None and duration < 0:
        raise UsageError("--duration-ms must be 0 or more")
    cfg = config.load(environ, opts["settings"])
    _warn(cfg, out)
    now = time.time()
    run = Run(slug, opts["status"], state.new_run_id(), now, duration,
              now - duration / 1000 if duration is not None else None, opts.get("message"), os.uname().nodename,
              {"manual": {"command": "ping"}})
    # An operator's check: unlike the hooks, it exits non-zero when the heartbeat did not get through.
    return _delivered(deliver(cfg, run, out.log), strict=True)


def cmd_run(opts, environ, out: Output) -> int:
    from . import config, state
    from .heartbeat import Run
    from .report import deliver
    from .runner import run_command
    from .slug import check_slug

    cmd = list(opts["cmd"])
    if not cmd:
        raise UsageError("run needs a command: seestack-hook run SLUG -- COMMAND [ARGS...]")
    try:
        codes = [int(c) for c in str(opts["success_exit"]).split(",") if c.strip()]
    except ValueError:
        raise UsageError(f"--success-exit {opts['success_exit']!r}: use exit codes separated by commas, e.g. 0,24") from None
    slug = str(opts["slug"])
    try:
        check_slug(slug)
        cfg: config.Config | None = config.load(environ, opts["settings"])
        cfg.endpoint_parsed()
        cfg.require_key()
    except (ConfigError, ValueError) as e:
        # A monitoring problem never keeps the job from running.
        cfg = None
        about = "run: " if isinstance(e, ValueError) else f"{slug}: "  # a bad slug's message names it already
        out.log("error", f"{about}{e}; the command runs unmonitored")
    # The job gets our environment minus the key: it is the agent's secret, not the job's.
    job_env = {k: v for k, v in environ.items() if k != "SEESTACK_API_KEY"}
    tail_lines = cfg.output_lines if cfg is not None else 0
    finished = run_command(cmd, codes, job_env, tail_lines)
    if finished.launch_error:
        out.log("error", finished.message)
    if cfg is not None:
        _warn(cfg, out)
        run = Run(slug, "success" if finished.success else "failed", state.new_run_id(), finished.started_at
                  + finished.duration_ms / 1000, finished.duration_ms, finished.started_at, finished.message,
                  os.uname().nodename, {"command": {"argv0": os.path.basename(cmd[0]), "exitCode": finished.exit_code}})
        try:
            deliver(cfg, run, out.log)
        except Exception as e:  # noqa: BLE001 - whatever happens to the heartbeat, the job's code stands
            out.log("error", f"{slug}: heartbeat not sent: {e}")
    # The command's own exit code, whatever happened to the heartbeat.
    return finished.exit_code


def cmd_check(opts, environ, out: Output) -> int:
    from . import config, spool

    cfg = config.load(environ, opts["settings"])
    problems = []
    for attempt in (cfg.endpoint_parsed, cfg.require_key):
        try:
            attempt()
        except ConfigError as e:
            problems.append(str(e))
    print(f"{'config file':20} {cfg.config_file or '(none found; defaults apply)'}")
    for name in ("endpoint", "timeout", "deadline", "state_dir", "data_dir", "spool_dir", "allow_insecure_http",
                 "ca_file", "https_proxy", "no_proxy", "output_lines", "success_message",
                 "spool_max_files", "spool_max_bytes"):
        value = getattr(cfg, name)
        where = cfg.sources.get(name, "default" if value == config.SETTINGS[name][0] else "derived")
        shown = ("yes" if value else "no") if isinstance(value, bool) else value
        print(f"{name:20} {shown if shown not in (None, '') else '(not set)'}    [{where}]")
    print(f"{'api_key':20} {cfg.key_hint()}")
    waiting, age = spool.stats(cfg.spool_dir)
    for warning in cfg.warnings:
        out.log("warning", warning)
    if waiting:
        out.log("warning", f"{waiting} heartbeat(s) wait in the spool, the oldest for {age or 0:.0f}s:"
                           " they could not be delivered when sent; 'seestack-hook flush' retries now")
    for problem in problems:
        out.log("error", problem)
    if problems:
        return EX_CONFIG
    print("configuration OK", flush=True)
    if opts.get("send"):
        from .heartbeat import Run
        from .report import deliver
        from .slug import check_slug
        from .state import new_run_id
        import time

        run = Run(check_slug(opts["send"]), "success", new_run_id(), time.time(), 0, None,
                  "seestack-hook check --send", os.uname().nodename, {"manual": {"command": "check"}})
        return _delivered(deliver(cfg, run, out.log), strict=True)
    return EX_OK


def cmd_receive(opts, environ, out: Output) -> int:
    from .config import parse_endpoint
    from .receiver import Receiver, parse_replies

    host, _, port = str(opts["listen"]).rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit():
        raise UsageError(f"--listen {opts['listen']!r}: use HOST:PORT, e.g. 127.0.0.1:8099")
    try:
        replies = parse_replies(opts["reply"]) if opts["reply"] else []
    except ValueError as e:
        raise UsageError(f"--reply: {e}") from None
    try:
        receiver = Receiver(host, int(port), replies=replies, jsonl=opts.get("jsonl"), out=sys.stdout)
    except OSError as e:
        raise SeestackError(f"cannot listen on {opts['listen']}: {e.strerror or e}") from None
    endpoint, insecure = receiver.endpoint, False
    try:
        parse_endpoint(endpoint)
        hint = f"endpoint = {endpoint}"
    except ConfigError:  # plain http to a non-loopback address: the agent refuses it unless told otherwise
        hint, insecure = f"endpoint = {endpoint} with allow_insecure_http = yes (plain http:// off loopback)", True
    if opts.get("try_setup"):
        from . import scratch

        setup = scratch.make(endpoint, insecure_http=insecure)
        receiver.expect_key(setup.api_key)
        print(f"# A scratch setup in {setup.directory}: paste these lines into another shell, so that nothing\n"
              "# touches the production config, state or spool (any user can):")
        print("\n".join(setup.exports))
        print(f"# then: seestack-hook check --send demo\n# the hooks as root read no environment: start|finish"
              f" --config {setup.config_file} SLUG\n# when done: rm -r {setup.directory}")
    print(f"listening on {receiver.url} ({hint}); Ctrl-C stops", flush=True)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    return EX_OK


def cmd_flush(opts, environ, out: Output) -> int:
    import time

    from . import config, spool
    from .report import connect, replay

    cfg = config.load(environ, opts["settings"])
    _warn(cfg, out)
    if not spool.entries(cfg.spool_dir):
        return EX_OK  # the timer's usual case, also before any endpoint is configured
    conn = connect(cfg)
    try:
        result = replay(cfg, conn, time.monotonic() + cfg.deadline, out.log)
    finally:
        conn.close()
    if result.left:
        out.log("warning", f"spool: {result.left} heartbeat(s) still waiting: {result.stopped_by}")
        return EX_TEMPFAIL
    return EX_OK


def cmd_units(opts, environ, out: Output) -> int:
    from . import config, units

    root, user = opts.get("root"), bool(opts.get("user"))
    if opts["command"] == "list":
        cfg = config.load(environ, opts["settings"], with_key=False)
        for line in units.list_lines(cfg, root=root, user=user, show_all=bool(opts.get("all")), environ=environ):
            print(line)
        return EX_OK
    reload = not (opts.get("no_reload") or root)
    if opts["command"] == "enable":
        change = units.enable(str(opts["unit"]), opts.get("slug"), root=root, user=user, force=bool(opts.get("force")),
                              environ=environ)
    else:
        change = units.disable(str(opts["unit"]), root=root, user=user, environ=environ)
    if change.changed and reload:
        units.daemon_reload(user)
    print(change.text)
    return EX_OK


COMMANDS: dict[str, Callable] = {
    "start": cmd_start, "finish": cmd_finish, "ping": cmd_ping, "run": cmd_run, "check": cmd_check,
    "receive": cmd_receive, "flush": cmd_flush, "enable": cmd_units, "disable": cmd_units, "list": cmd_units,
}
HOOKS = ("start", "finish")


def _warn(cfg, out: Output) -> None:
    for warning in cfg.warnings:
        out.log("warning", warning)
    if cfg.endpoint and cfg.endpoint.startswith("http://") and cfg.allow_insecure_http:
        out.log("warning", f"sending the API key over plain http:// to {cfg.endpoint} (allow_insecure_http = yes)")


def _delivered(delivery, strict: bool) -> int:
    """0 when delivered, or whatever happened unless ``strict``; else 75 (temporary) or 1."""
    if delivery.delivered or not strict:
        return EX_OK
    return EX_TEMPFAIL if delivery.outcome == "temporary" else EX_FAIL


def exit_code_for(error: BaseException, command: str, strict: bool) -> int:
    """The one map from errors to exit codes. Hooks exit 0 whatever went wrong (a
    monitoring failure must not fail or block the job) unless --strict."""
    if isinstance(error, UsageError):
        return EX_USAGE
    if command in HOOKS and not strict:
        return EX_OK
    if isinstance(error, ConfigError):
        return EX_CONFIG
    if isinstance(error, ValueError):  # a bad slug or status
        return EX_USAGE
    return EX_FAIL


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``seestack-hook`` and ``python3 -m seestack_systemd``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ)
    opts = parse(argv)
    command = str(opts["command"])
    out = Output(environ, quiet_info=command == "start")
    strict = bool(opts.get("strict"))
    try:
        return COMMANDS[command](opts, environ, out)
    except (SeestackError, ValueError, OSError) as e:
        slug = opts.get("slug")
        prefix = f"{slug}: " if command in HOOKS and slug and not isinstance(e, ValueError) else ""
        if isinstance(e, OSError) and not isinstance(e, SeestackError):
            text = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
        else:
            text = str(e)
        out.log("error", f"{command}: {prefix}{text}" + ("; the job is not affected" if command in HOOKS and not strict else ""))
        return exit_code_for(e, command, strict)
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - a bug of ours must not fail the job either
        out.log("error", f"{command}: internal error {type(e).__name__}: {e}; please report it")
        return EX_OK if command in HOOKS and not strict else EX_FAIL
