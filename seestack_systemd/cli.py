"""``seestack-hook``: the only module that reads argv and the environment, prints,
and picks exit codes (``exit_code_for`` and ``main``'s handler: the one error boundary).

The command table is grammar.py's; log lines go out through log.py's Output.
"""

from __future__ import annotations

import os
import sys

from .errors import EX_CONFIG, EX_FAIL, EX_OK, EX_TEMPFAIL, EX_USAGE, ConfigError, SeestackError, UsageError

from .grammar import COMMON_OPTIONS, HOOK_GRAMMAR, PROG, RUN_USAGE, SETTING_FLAGS, build_parser, fast_parse
from .log import Output

TYPE_CHECKING = False  # typing itself is not imported on the hooks' path; mypy reads this as True
if TYPE_CHECKING:
    from typing import Callable

__all__ = ["COMMON_OPTIONS", "HOOK_GRAMMAR", "SETTING_FLAGS", "build_parser", "exit_code_for", "fast_parse", "main"]


def parse(argv: list[str]) -> dict[str, object]:
    """The options for ``argv`` (argparse exits 2 with a usage line on errors)."""
    fast = fast_parse(argv)
    if fast is not None:
        return fast
    if argv and argv[0] == "run":
        try:
            from .runargs import parse_run

            run = parse_run(list(argv[1:]), SETTING_FLAGS)
        except UsageError as e:
            sys.stderr.write(f"{RUN_USAGE}\n{PROG} run: error: {e}\n")
            raise SystemExit(EX_USAGE) from None
        if run is not None:
            return run
    parser = build_parser()
    parsed, extra = parser.parse_known_args(argv)
    if extra:  # said with the subcommand's usage, not the top-level one
        parser.commands[parsed.command].error(f"unrecognized arguments: {' '.join(extra)}")
    ns = vars(parsed)
    ns["settings"] = {name: ns.pop(name, None) for _, name, _ in COMMON_OPTIONS}
    ns.setdefault("strict", False)
    return ns


# --- commands ------------------------------------------------------------------------------

def root_hook(command: str) -> bool:
    """Whether this is a hook systemd runs as root with the unit's environment, which the
    unit's user may control: then no SEESTACK_* variable is read (see config.load)."""
    return command in HOOKS and os.geteuid() == 0


def _hook_notes(environ, out: Output, config_file: str | None) -> None:
    """A root hook says (once per run: in ``finish``) which of the unit's variables it did
    not take, and which ones the dynamic loader already took before our code ran."""
    from .config import DEFAULT_CONFIG_FILE, ignored_variables
    from .unitenv import loader_variables

    ignored = ignored_variables(environ)
    if ignored and "INVOCATION_ID" in environ:
        out.log("warning", f"ignoring {', '.join(ignored)} from the unit's environment: a root hook takes its settings"
                           f" only from {config_file or DEFAULT_CONFIG_FILE} and the drop-in's flags"
                           " (seestack-hook enable UNIT --deadline ...)")
    elif ignored:  # not run by systemd: a root shell's own variables, as untrusted as a unit's
        out.log("warning", f"start/finish as root read only {config_file or DEFAULT_CONFIG_FILE} and their flags:"
                           f" ignoring {', '.join(ignored)}; use --config, --endpoint, --api-key-file ... instead")
    loader = loader_variables(environ)
    if loader:
        out.log("warning", f"the unit's environment sets {', '.join(loader)}, which the dynamic loader honours in this"
                           " root hook before any of its code runs: set them only in files root owns")


def cmd_start(opts, environ, out: Output) -> int:
    from . import config, state
    from .slug import expand

    slug = expand(str(opts["slug"]), opts.get("unit"))  # 'db-dump-%i' -> 'db-dump-main-db'
    trusted = not root_hook("start")
    cfg = config.load(environ, opts["settings"], with_key=False, state_dir_only=True, trust_environment=trusted)
    state.save(cfg.state_dir, slug, state.new_record(environ.get("INVOCATION_ID")))
    return EX_OK


def cmd_finish(opts, environ, out: Output) -> int:
    from . import config, state, systemd
    from .report import deliver
    from .slug import expand

    slug = expand(str(opts["slug"]), opts.get("unit"))
    env = systemd.StopEnv.from_environ(environ, opts.get("unit"))
    trusted = not root_hook("finish")
    if not trusted:
        _hook_notes(environ, out, opts["settings"].get("config"))
    try:
        cfg = config.load(environ, opts["settings"], trust_environment=trusted, unit=opts.get("unit"))
    except ConfigError:
        # No heartbeat can go out, but this run's start record must not pile up in /run.
        start_cfg = config.load(environ, opts["settings"], with_key=False, state_dir_only=True,
                                trust_environment=trusted)
        state.take(start_cfg.state_dir, slug, env.invocation_id)
        raise
    record, problem = state.take(cfg.state_dir, slug, env.invocation_id)
    # The unit's journal tail is read first: our own warnings must not become the job's "last line".
    run = systemd.finished_run(slug, env, record, cfg, opts.get("status"), os.uname().nodename, os.geteuid() != 0)
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
    return _delivered(deliver(cfg, run, out.log), True)


def cmd_run(opts, environ, out: Output) -> int:
    import signal

    from . import config, state
    from .heartbeat import Run
    from .report import deliver
    from .runargs import success_codes
    from .runner import FORWARDED_SIGNALS, OUTPUT_GRACE_S, run_command
    from .slug import check_slug

    for note in opts.get("notes") or ():
        out.log("warning", note)
    cmd = list(opts["cmd"] or ())
    if not cmd:
        raise UsageError(f"run needs a command: {RUN_USAGE[len('usage: '):]}")
    codes = success_codes(list(opts.get("success_exit") or ()))
    slug = str(opts["slug"])
    try:
        check_slug(slug)
        loaded = config.load(environ, opts["settings"])
        cfg: config.Config | None = loaded
        try:
            loaded.endpoint_parsed()
            loaded.require_key()
        finally:  # before the job: its output must not bury them; and whether or not monitoring works
            _warn(loaded, out)
    except (ConfigError, ValueError) as e:
        # A monitoring problem never keeps the job from running.
        cfg = None
        about = "run: " if isinstance(e, ValueError) else f"{slug}: "  # a bad slug's message names it already
        for warning in getattr(e, "warnings", ()):
            out.log("warning", warning)
        out.log("error", f"{about}{e}; the command runs unmonitored")
    # The job gets our environment minus the key: it is the agent's secret, not the job's.
    job_env = {k: v for k, v in environ.items() if k != "SEESTACK_API_KEY"}
    tail_lines = cfg.output_lines if cfg is not None else 0
    # A signal once the job has ended (cron or a terminal stopping us mid-delivery) is
    # noted, not obeyed: the heartbeat still goes out and we exit with the job's status.
    late: list[int] = []
    for s in FORWARDED_SIGNALS:
        signal.signal(s, lambda signum, _frame: late.append(signum))
    finished = run_command(cmd, codes, job_env, tail_lines,
                           last_line=cfg is not None and cfg.success_message == "last-line")
    opts["job_exit"] = finished.exit_code  # from here on, main's boundary returns it whatever fails
    if finished.launch_error:
        out.log("error", finished.message)
    if finished.output_cut:
        out.log("warning", f"{slug}: the command exited but a process it started still held its output after"
                           f" {OUTPUT_GRACE_S:g}s; stopped reading it")
    if cfg is not None:
        run = Run(slug, "success" if finished.success else "failed", state.new_run_id(), finished.started_at
                  + finished.duration_ms / 1000, finished.duration_ms, finished.started_at, finished.message,
                  os.uname().nodename, {"command": {"argv0": os.path.basename(cmd[0]), "exitCode": finished.exit_code}})
        deliver(cfg, run, out.log)
    for signum in late:
        out.log("warning", f"{signal.Signals(signum).name} arrived after the command ended; exiting with its status")
    # The command's own exit code, whatever happened to the heartbeat.
    return finished.exit_code


def cmd_check(opts, environ, out: Output) -> int:
    from . import config, spool
    from .unitenv import risky_units

    cfg = config.load(environ, opts["settings"], user=bool(opts.get("user")))
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
    for warning in risky_units(None, False, environ):
        out.log("warning", warning)
    if waiting:
        out.log("warning", f"{waiting} heartbeat(s) wait in the spool, the oldest for {age or 0:.0f}s:"
                           " they could not be delivered when sent; 'seestack-hook flush' retries now")
    for warning in _unit_warnings(cfg, bool(opts.get("user")), environ):
        out.log("warning", warning)
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
        return _delivered(deliver(cfg, run, out.log), True)
    return EX_OK


def _unit_warnings(cfg, user: bool, environ) -> list:
    """What ``list`` would warn about (timers no longer scheduled, instances sharing a
    slug); nothing where systemd does not answer."""
    from .listing import list_lines

    try:
        return list_lines(cfg, user=user, environ=environ)[1]
    except (SeestackError, OSError):
        return []


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
        if opts.get("jsonl") and e.filename == opts["jsonl"]:  # open() names its file; bind() names none
            raise SeestackError(f"cannot open the --jsonl file {opts['jsonl']}: {e.strerror or e}; give a file"
                                " in a directory that exists and that you can write") from None
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
        from .listing import list_lines

        cfg = config.load(environ, opts["settings"], with_key=False, user=user)
        lines, warnings = list_lines(cfg, root=root, user=user, show_all=bool(opts.get("all")), environ=environ)
        for line in lines:
            print(line)
        for warning in warnings:
            out.log("warning", warning)
        return EX_OK
    reload = not (opts.get("no_reload") or root)
    if opts["command"] == "enable":
        # The drop-in calls this install's own command (a staging root: the package's, by default).
        from .paths import HOOK_PATH, find_hook, missing_hook

        hook = find_hook(sys.argv[0], sys.executable) or (HOOK_PATH if root else None)
        if hook is None:
            raise UsageError(f"no seestack-hook command found (beside {sys.executable}, or {HOOK_PATH}):"
                             " run enable with the seestack-hook of the install that should run the hooks")
        change = units.enable(str(opts["unit"]), opts.get("slug"), root=root, user=user, force=bool(opts.get("force")),
                              environ=environ, settings=opts.get("settings") or {}, hook=hook)
        change.warnings += [w for w in [missing_hook(hook, root)] if w]
    else:
        change = units.disable(str(opts["unit"]), root=root, user=user, environ=environ)
    if change.changed and reload:
        units.daemon_reload(user)
    print(change.text)
    if user and reload and opts["command"] == "enable":
        change.warnings += units.enable_user_flush()
    for warning in change.warnings:
        out.log("warning", warning)
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
    """0 when delivered, or whatever happened unless ``strict``; else 75 when the
    heartbeat waits in the spool for a replay, or 1 (refused, or lost: it could not be spooled)."""
    if delivery.delivered or not strict:
        return EX_OK
    return EX_TEMPFAIL if delivery.spooled else EX_FAIL


def _settle_std_streams() -> None:
    """Flush stdout/stderr now; when one is broken, point it at /dev/null so the exit-time
    flush cannot turn the command's status into Python's 120."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            try:
                fd = os.open(os.devnull, os.O_WRONLY)
                os.dup2(fd, stream.fileno())
                os.close(fd)
            except (OSError, ValueError):
                pass


def exit_code_for(error: BaseException, command: str, strict: bool) -> int:
    """The one map from errors to exit codes: each error's own code (errors.py), a bug's
    EX_FAIL; but the hooks exit 0 whatever went wrong (a monitoring failure must not fail
    or block the job) unless --strict, and a usage error is always one."""
    if isinstance(error, UsageError):
        return EX_USAGE
    if command in HOOKS and not strict:
        return EX_OK
    return error.exit_code if isinstance(error, SeestackError) else EX_FAIL


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
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # noqa: BLE001 - the one boundary: a line and an exit code for every error
        for warning in getattr(e, "warnings", ()):
            out.log("warning", warning)
        if isinstance(e, (SeestackError, OSError)):
            slug = opts.get("slug")
            prefix = f"{slug}: " if command in HOOKS and slug and not isinstance(e, ValueError) else ""
            if isinstance(e, OSError):
                text = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
            else:
                text = str(e)
            unaffected = "; the job is not affected" if command in HOOKS and not strict else ""
            out.log("error", f"{command}: {prefix}{text}{unaffected}")
        else:  # a bug of ours: it must not fail the job either
            out.log("error", f"{command}: internal error {type(e).__name__}: {e}; please report it")
        if "job_exit" in opts:  # run's job has ended: its code stands, whatever the heartbeat's fate
            return int(str(opts["job_exit"]))
        return exit_code_for(e, command, strict)
    finally:
        if command == "run":
            _settle_std_streams()
