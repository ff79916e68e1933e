"""``seestack-hook``: the only module that reads argv and the environment, prints,
and picks exit codes (``exit_code_for`` and ``main``'s handler: the one error boundary).

The hooks' lines are read by grammar.fast_parse, the others by parser.py's argparse;
COMMANDS maps each command to its ``cmd_*``; log lines go out through log.py's Output.

Each ``cmd_*`` imports its own modules: ``start`` runs before every job and loads some 30
modules, not the 135 of ``finish`` nor argparse and the rest of the other commands
(tests/unit/across/test_structure.py holds both paths to a budget).
"""

from __future__ import annotations

import gc
import os
import sys
import time

from seestack_systemd.errors import (EX_CONFIG, EX_FAIL, EX_OK, EX_TEMPFAIL, EX_USAGE, ConfigError, SeestackError,
                                     StateError, Stopped, UsageError)
from seestack_systemd.cli.grammar import PROG, RUN_USAGE, fast_parse
from seestack_systemd.cli.log import Output, settle_std_streams
from seestack_systemd.settings.table import FLAGS

TYPE_CHECKING = False  # typing itself is not imported on the hooks' path; mypy reads this as True
if TYPE_CHECKING:
    from typing import Callable

    from seestack_systemd.delivery.report import Delivery


def parse(argv: list[str]) -> dict[str, object]:
    """The options for ``argv`` (argparse exits 2 with a usage line on errors)."""
    fast = fast_parse(argv)
    if fast is not None:
        return fast
    if argv and argv[0] == "run":
        try:
            from seestack_systemd.cli.runargs import parse_run

            run = parse_run(list(argv[1:]), FLAGS)
        except UsageError as e:
            sys.stderr.write(f"{RUN_USAGE}\n{PROG} run: error: {e}\n")
            raise SystemExit(EX_USAGE) from None
        if run is not None:
            return run
    from seestack_systemd.cli.parser import build_parser  # argparse: never on the hooks' usual lines

    parser = build_parser()
    parsed, extra = parser.parse_known_args(argv)
    if extra:  # said with the subcommand's usage, not the top-level one
        command = parser.commands[parsed.command]  # type: ignore[attr-defined]  # set by build_parser
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    ns = vars(parsed)
    ns["settings"] = {name: ns.pop(name, None) for name in FLAGS.values()}
    ns.setdefault("strict", False)
    return ns


# --- commands ------------------------------------------------------------------------------

def root_hook(command: str) -> bool:
    """Whether this is a hook systemd runs as root with the unit's environment, which the
    unit's user may control: then no SEESTACK_* variable is read (see config.load)."""
    return command in HOOKS and os.geteuid() == 0


def cmd_start(opts: dict, environ: dict[str, str], out: Output) -> int:
    from seestack_systemd.settings import config
    from seestack_systemd import inflight, state
    from seestack_systemd.slug import expand

    slug = expand(str(opts["slug"]), opts.get("unit"))  # 'db-dump-%i' -> 'db-dump-main-db'
    trusted = not root_hook("start")
    cfg = config.load(environ, opts["settings"], with_key=False, dirs_only=True, trust_environment=trusted)
    record = state.new_record(environ.get("INVOCATION_ID"))
    state.save(cfg.state_dir, slug, record)
    unit = opts.get("unit")
    source = {"systemd": {"unit": str(unit), "invocationId": record.invocation_id}} if unit else \
        {"manual": {"command": "start"}}
    try:
        inflight.begin(cfg.data_dir, record.run_id, slug, record.wall, record.boot_id, os.uname().nodename, source)
    except StateError as e:  # finish still has the start record in /run
        out.log("warning", f"{slug}: {e}; {inflight.UNREPORTED}")
    return EX_OK


class StopOnTerm:
    """SIGTERM in ``finish`` (systemd's stop timeout, a shutdown): only noted until the
    heartbeat is in the spool; while it is being sent, it stops the sending (``Stopped``),
    which keeps it; after that, noted again: keeping or forgetting must not be cut short."""

    def __init__(self) -> None:
        import signal

        self.pending = self.armed = False
        signal.signal(signal.SIGTERM, self.handle)

    def handle(self, signum: int, frame: object) -> None:
        if self.armed:
            self.armed = False  # one Stopped: a second SIGTERM must not break the keeping
            raise Stopped("SIGTERM")
        self.pending = True

    def stoppable(self, on: bool) -> None:
        """deliver's hook: True once the heartbeat is in the spool, False once sent or kept."""
        self.armed = on and not self.pending
        if on and self.pending:
            raise Stopped("SIGTERM")


def cmd_finish(opts: dict, environ: dict[str, str], out: Output) -> int:
    from seestack_systemd.settings import config
    from seestack_systemd import inflight, state
    from seestack_systemd.systemd import hook
    from seestack_systemd.heartbeat import note_overlap
    from seestack_systemd.systemd.nextrun import parse_timespan
    from seestack_systemd.slug import expand

    stop = StopOnTerm()
    slug = expand(str(opts["slug"]), opts.get("unit"))
    env = hook.StopEnv.from_environ(environ, opts.get("unit"))
    trusted = not root_hook("finish")
    notes: list[str] = []
    if not trusted:  # unitenv only for a root hook: finish runs around every job
        from seestack_systemd.systemd.unitenv import hook_notes

        notes = hook_notes(environ, opts["settings"].get("config") or config.DEFAULT_CONFIG_FILE)
    try:
        cfg = config.load(environ, opts["settings"], trust_environment=trusted, unit=opts.get("unit"))
    except ConfigError:
        out.warn(notes)  # the variables set in vain may be why nothing is configured
        # No heartbeat can go out, but this run's records must not pile up (nor be reported after a reboot).
        start_cfg = config.load(environ, opts["settings"], with_key=False, dirs_only=True,
                                trust_environment=trusted)
        lost, _ = state.take(start_cfg.state_dir, slug, env.invocation_id)
        if lost:
            _forget_run(start_cfg.data_dir, slug, lost.run_id)
        raise
    record, problem = state.take(cfg.state_dir, slug, env.invocation_id)
    try:
        asked = None
        if env.unit and env.invocation_id:  # systemd's facts only of a run it named
            from seestack_systemd.systemd.ask import Asked  # (and subprocess) only a hook given a unit pays

            session = environ if os.geteuid() != 0 else None  # a user's own unit: its manager
            asked = Asked(env, session, hook.output_wanted(hook.outcome(env, opts.get("status")), cfg))
        try:
            # The delivery's modules (urllib, http.client, ssl: tens of ms) load while systemd answers.
            from seestack_systemd.delivery.policy import stop_bound
            from seestack_systemd.delivery.report import deliver

            # Read before any line of ours: our own warnings must not become the job's "last line".
            facts, output = asked.answers() if asked else ({}, [])
        finally:
            if asked:
                asked.close()
        run = hook.finished_run(slug, env, record, cfg, opts.get("status"), os.uname().nodename, facts, output,
                                ended=(float(str(opts["started_wall"])), float(str(opts["started"]))))
        note_overlap(run, inflight.overlap(cfg.data_dir, slug, run.run_id))
        out.warn(notes)
        out.warn(cfg.send_warnings())
        if problem:
            out.log("warning", f"{slug}: {problem}; durationMs comes from systemd or is null")
        # systemd kills a hook at the unit's stop timeout: the delivery ends before that, keeping the heartbeat.
        deadline, why = stop_bound(cfg.deadline, parse_timespan(facts.get("TimeoutStopUSec", "")),
                                   time.monotonic() - float(str(opts["started"])))
        delivery = deliver(cfg, run, out.log, deadline, why, stoppable=stop.stoppable)
    except Exception:  # no heartbeat was written (no endpoint, a bug): said by main, never later as a reboot
        if record:
            _forget_run(cfg.data_dir, slug, record.run_id)
        raise
    return _delivered(delivery, bool(opts.get("strict")))


def _forget_run(data_dir: str, slug: str, run_id: str) -> None:
    """Remove a run's in-progress record on the way out of an error (which says what matters)."""
    from seestack_systemd import inflight

    try:
        inflight.end(data_dir, slug, run_id)
    except StateError:
        pass


def cmd_ping(opts: dict, environ: dict[str, str], out: Output) -> int:
    from seestack_systemd.settings import config
    from seestack_systemd.delivery.report import deliver
    from seestack_systemd.jobs.runs import ping_run

    run = ping_run(str(opts["slug"]), str(opts["status"]), opts.get("duration_ms"), opts.get("message"),
                   os.uname().nodename)
    cfg = config.load(environ, opts["settings"])
    out.warn(cfg.send_warnings())
    # An operator's check: unlike the hooks, it exits non-zero when the heartbeat did not get through.
    return _delivered(deliver(cfg, run, out.log), True)


def cmd_run(opts: dict, environ: dict[str, str], out: Output) -> int:
    import signal

    from seestack_systemd.delivery.report import deliver
    from seestack_systemd.cli.runargs import success_codes
    from seestack_systemd.jobs.runner import FORWARDED_SIGNALS, OUTPUT_GRACE_S, run_command
    from seestack_systemd.jobs.runs import begin_run, command_run, monitoring

    out.warn(opts.get("notes") or ())
    cmd = list(opts["cmd"] or ())
    if not cmd:
        raise UsageError(f"run needs a command: {RUN_USAGE[len('usage: '):]}")
    codes = success_codes(list(opts.get("success_exit") or ()))
    slug = str(opts["slug"])
    cfg, warnings, unmonitored = monitoring(environ, opts["settings"], slug)
    out.warn(warnings)
    if unmonitored:
        out.log("error", unmonitored)
    # The job gets our environment minus the key: it is the agent's secret, not the job's.
    job_env = {k: v for k, v in environ.items() if k != "SEESTACK_API_KEY"}
    tail_lines = cfg.output_lines if cfg is not None else 0
    run_id, overlap = begin_run(cfg, slug, cmd, out.log) if cfg is not None else ("", {})
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
        deliver(cfg, command_run(slug, cmd, finished, os.uname().nodename, run_id, overlap), out.log)
    for signum in late:
        out.log("warning", f"{signal.Signals(signum).name} arrived after the command ended; exiting with its status")
    # The command's own exit code, whatever happened to the heartbeat.
    return finished.exit_code


def cmd_check(opts: dict, environ: dict[str, str], out: Output) -> int:
    from seestack_systemd.cli import checks
    from seestack_systemd.settings import config
    from seestack_systemd.delivery.report import deliver
    from seestack_systemd.jobs.runs import check_run

    # The test heartbeat (and its slug's check) first, so that "configuration OK" means it.
    run = check_run(str(opts["send"]), os.uname().nodename) if opts.get("send") else None
    cfg = config.load(environ, opts["settings"], user=bool(opts.get("user")))
    problems = checks.problems(cfg)
    print("\n".join(checks.settings_table(cfg)), flush=True)  # before the warnings on stderr
    out.warn(checks.warnings(cfg, bool(opts.get("user")), environ))
    for problem in problems:
        out.log("error", problem)
    if problems:
        return EX_CONFIG
    print("configuration OK", flush=True)
    return _delivered(deliver(cfg, run, out.log), True) if run else EX_OK


def cmd_receive(opts: dict, environ: dict[str, str], out: Output) -> int:
    import signal

    from seestack_systemd.receiver.receive import endpoint_hint, listen

    receiver = listen(str(opts["listen"]), str(opts["reply"] or ""), opts.get("jsonl"), sys.stdout)
    hint, insecure = endpoint_hint(receiver.endpoint)
    if opts.get("try_setup"):
        from seestack_systemd.cli import scratch
        from seestack_systemd.settings.paths import invoked_as

        setup = scratch.make(receiver.endpoint, insecure_http=insecure)
        receiver.expect_key(setup.api_key)
        print("\n".join(scratch.instructions(setup, invoked_as(sys.argv[0]))))
    print(f"listening on {receiver.url} ({hint}); Ctrl-C stops", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stops as Ctrl-C does: KeyboardInterrupt
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    return EX_OK


def cmd_flush(opts: dict, environ: dict[str, str], out: Output) -> int:
    from seestack_systemd.settings import config
    from seestack_systemd.delivery.report import flush

    cfg = config.load(environ, opts["settings"])
    out.warn(cfg.send_warnings())
    result = flush(cfg, out.log)
    if result and result.left:
        out.log("warning", f"spool: {result.left} heartbeat(s) still waiting: {result.stopped_by}")
        return EX_TEMPFAIL
    return EX_OK


def cmd_units(opts: dict, environ: dict[str, str], out: Output) -> int:
    from seestack_systemd.settings import config
    from seestack_systemd.systemd import units

    root, user = opts.get("root"), bool(opts.get("user"))
    session = environ if user else None  # whose systemd manager systemctl talks to (None: the system's)
    if opts["command"] == "list":
        from seestack_systemd.cli.listing import list_lines

        cfg = config.load(environ, opts["settings"], with_key=False, user=user)
        lines, warnings = list_lines(cfg, root=root, user=user, show_all=bool(opts.get("all")), environ=environ,
                                     output=str(opts.get("output") or "table"))
        print("\n".join(lines), flush=True)  # before the warnings on stderr
        out.warn(warnings)
        return EX_OK
    reload = not (opts.get("no_reload") or root)
    if opts["command"] == "enable":
        # The drop-in calls this install's own command (a staging root: the package's, by default).
        from seestack_systemd.settings.paths import find_hook

        change = units.enable(str(opts["unit"]), opts.get("slug"), root=root, user=user, force=bool(opts.get("force")),
                              environ=environ, settings=opts.get("settings") or {},
                              hook=find_hook(sys.argv[0], sys.executable, root))
    else:
        change = units.disable(str(opts["unit"]), root=root, user=user, environ=environ)
    if change.changed and reload:
        units.daemon_reload(session)
    print(change.text)
    if user and reload and opts["command"] == "enable":
        change.warnings += units.enable_user_flush(environ)
    out.warn(change.warnings)
    return EX_OK


COMMANDS: dict[str, Callable] = {
    "start": cmd_start, "finish": cmd_finish, "ping": cmd_ping, "run": cmd_run, "check": cmd_check,
    "receive": cmd_receive, "flush": cmd_flush, "enable": cmd_units, "disable": cmd_units, "list": cmd_units,
}
HOOKS = ("start", "finish")


def _delivered(delivery: Delivery, strict: bool) -> int:
    """0 when delivered, or whatever happened unless ``strict``; else 75 when the
    heartbeat waits in the spool for a replay, or 1 (refused, or lost: it could not be spooled)."""
    if delivery.delivered or not strict:
        return EX_OK
    return EX_TEMPFAIL if delivery.spooled else EX_FAIL


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
    started, started_wall = time.monotonic(), time.time()  # for a hook, when the run ended
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = dict(os.environ)
    opts = parse(argv)
    opts["started"], opts["started_wall"] = started, started_wall
    command = str(opts["command"])
    out = Output(environ, quiet_info=command == "start")
    strict = bool(opts.get("strict"))
    try:
        return COMMANDS[command](opts, environ, out)
    except KeyboardInterrupt:
        return 130
    except Stopped as e:  # after the heartbeat was settled: nothing is left to keep
        out.log("warning", f"{command}: stopped by {e}")
        return exit_code_for(e, command, strict)
    except Exception as e:  # noqa: BLE001 - the one boundary: a line and an exit code for every error
        out.warn(getattr(e, "warnings", ()))
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
            settle_std_streams()


def entry() -> None:
    """``seestack-hook`` as installed (and ``python3 -m seestack_systemd``): ``main``, whose
    code is the exit status. A hook, a process of a few dozen milliseconds around every job,
    runs without the cyclic garbage collector (its passes over the objects the imports make
    are ~1.7 ms of each ``finish``), and leaves with ``os._exit``: the interpreter's own
    teardown of the modules it loaded is some 5 ms of each ``finish`` and 2 ms of each
    ``start`` (benchmarks/RESULTS.md). By then every file is written and closed and every
    child reaped; the std streams are flushed here."""
    argv = sys.argv[1:]
    hook = bool(argv[:1]) and argv[0] in HOOKS
    if hook:
        gc.disable()
    code = main(argv)
    if hook:
        settle_std_streams()
        os._exit(code)
    sys.exit(code)
