"""The one systemd layer: programs.py runs systemctl and parses ``systemctl show`` once, by
one rule for repeated keys; a timer's triggers are read by nextrun.entries alone; the hook,
enable, list and the environment-file check all go through them. systemctl's output here
is recorded text (systemd 252), fed where programs.py would run the real one."""

import os
import subprocess
import tempfile
import unittest
from unittest import mock

from seestack_systemd.errors import StateError
from seestack_systemd.settings import paths
from seestack_systemd.systemd import ask, hook, nextrun, programs, unitenv, units

# `systemctl show -p ... -- job.service job.timer` while job.service's ExecStopPost= runs.
SERVICE_BLOCK = ("Id=job.service\nInvocationID=0123456789abcdef0123456789abcdef\nTriggeredBy=job.timer\n"
                 "InactiveExitTimestampMonotonic=391478308\nExecMainStartTimestampMonotonic=391480000\n"
                 "TimeoutStopUSec=1min 30s\nRandomizedDelayUSec=0\nNextElapseUSecMonotonic=infinity\n")
TIMER_BLOCK = ("Id=job.timer\nTimersMonotonic={ OnUnitActiveUSec=7s ; next_elapse=6min 31.464474s }\n"
               "TimersMonotonic={ OnActiveUSec=2s ; next_elapse=6min 24.457596s }\n"
               "RandomizedDelayUSec=0\nNextElapseUSecRealtime=\nNextElapseUSecMonotonic=infinity\n")


class Systemctl:
    """A real ``systemctl`` program for programs.py to find (PROGRAM_DIRS points at its
    directory while the ``with`` lasts): it answers ``replies`` in turn, each a text it
    prints, or TIMEOUT (it sleeps), or MISSING (there is no systemctl at all); ``calls``
    is what it was asked: (its arguments but --user, whether --user was given)."""

    TIMEOUT, MISSING = object(), object()

    def __init__(self, *replies, returncode=0, stderr=""):
        self.replies, self.returncode, self.stderr = replies, returncode, stderr
        self.calls: list = []

    def __enter__(self):
        self._dir = tempfile.TemporaryDirectory()
        bin_dir = self._dir.name
        self._log = os.path.join(bin_dir, "calls")
        lines = ["#!/bin/sh", f'echo "$*" >> {self._log}', f"n=$(wc -l < {self._log})"]
        for i, reply in enumerate(self.replies, 1):
            with open(os.path.join(bin_dir, f"reply.{i}"), "w") as f:
                f.write(reply if isinstance(reply, str) else "")
            if reply is self.TIMEOUT:
                lines.append(f'[ "$n" = {i} ] && exec sleep 5')
        lines += [f'cat "{bin_dir}/reply.$n"', f"printf '%s' '{self.stderr}' >&2", f"exit {self.returncode}"]
        if self.MISSING not in self.replies:
            with open(os.path.join(bin_dir, "systemctl"), "w") as f:
                f.write("\n".join(lines) + "\n")
            os.chmod(os.path.join(bin_dir, "systemctl"), 0o755)
        self._patch = mock.patch.object(programs, "PROGRAM_DIRS", (bin_dir,))
        self._patch.start()
        return self

    def __exit__(self, *exc):
        self._patch.stop()
        if os.path.exists(self._log):
            with open(self._log) as f:
                for line in f.read().splitlines():
                    words = line.split(" ")
                    self.calls.append(([w for w in words if w != "--user"], "--user" in words))
        self._dir.cleanup()


class ParseShow(unittest.TestCase):
    def test_blocks_in_order(self):
        """one dict per unit asked for, in order; {} for a block systemctl did not print"""
        self.assertEqual(programs.parse_show("Id=a.service\nX=1\n\nId=b.timer\n", 3),
                         [{"Id": "a.service", "X": "1"}, {"Id": "b.timer"}, {}])
        self.assertEqual(programs.parse_show("", 1), [{}])

    def test_repeated_keys_keep_every_value(self):
        """a key printed on several lines keeps each value, in order (values() splits them); '=' in a value stays"""
        [props] = programs.parse_show("EnvironmentFiles=/etc/a (ignore_errors=no)\nEnvironment=A=1 B=2\n"
                                      "EnvironmentFiles=/etc/my dir/b (ignore_errors=yes)\nId=x.service\n", 1)
        self.assertEqual(programs.values(props, "EnvironmentFiles"),
                         ["/etc/a (ignore_errors=no)", "/etc/my dir/b (ignore_errors=yes)"])
        self.assertEqual(props["Environment"], "A=1 B=2")
        self.assertEqual(programs.values(props, "Id"), ["x.service"])
        self.assertEqual(programs.values(props, "Missing"), [])

    def test_show_without_systemctl(self):
        """show gives {} per unit when systemctl is missing or times out"""
        for reply in (Systemctl.MISSING, Systemctl.TIMEOUT):
            with Systemctl(reply):
                self.assertEqual(programs.show(["a.service", "a.timer"], ["Id"], 0.3), [{}, {}])

    def test_user_manager(self):
        """a session's environment asks that user's manager (--user), with its session variables only"""
        with tempfile.TemporaryDirectory() as bin_dir:
            said = os.path.join(bin_dir, "said")
            script = os.path.join(bin_dir, "systemctl")  # a real program, found where the hooks look
            with open(script, "w") as f:
                f.write(f"#!/bin/sh\necho \"$*|$HOME|$PATH|$LD_PRELOAD\" >> {said}\necho Id=a.service\n")
            os.chmod(script, 0o755)
            with mock.patch.object(programs, "PROGRAM_DIRS", (bin_dir,)), \
                    mock.patch.dict(os.environ, {"LD_PRELOAD": "/planted.so", "HOME": "/root"}):
                self.assertEqual(programs.show(["a.service"], ["Id", "Unit"], 2.0, {"HOME": "/home/u"}),
                                 [{"Id": "a.service"}])
                asked = programs.ask_show(["a.service"], ["Id"])
                self.assertEqual(programs.show(["a.service"], ["Id"], 2.0, asked=asked), [{"Id": "a.service"}])
            with open(said) as f:
                lines = f.read().splitlines()
        self.assertEqual(lines, [f"--user show --no-pager -p Id,Unit -- a.service|/home/u|{programs.FIXED_PATH}|",
                                 f"show --no-pager -p Id -- a.service||{programs.FIXED_PATH}|"])


class TimerEntries(unittest.TestCase):
    def test_one_per_line_or_several_on_one(self):
        """entries reads TimersCalendar= then TimersMonotonic=, one per line (as parse_show keeps them) or in a row"""
        [timer] = programs.parse_show(TIMER_BLOCK + "TimersCalendar={ OnCalendar=*-*-* 02:00:00 ; next_elapse=x }\n", 1)
        expected = [("OnCalendar", "*-*-* 02:00:00", "x"), ("OnUnitActiveUSec", "7s", "6min 31.464474s"),
                    ("OnActiveUSec", "2s", "6min 24.457596s")]
        self.assertEqual(nextrun.entries(timer), expected)
        in_a_row = dict(timer, TimersMonotonic=timer["TimersMonotonic"].replace("\n", " "))
        self.assertEqual(nextrun.entries(in_a_row), expected)
        self.assertEqual(nextrun.schedule(timer), "OnCalendar=*-*-* 02:00:00; OnUnitActiveUSec=7s; OnActiveUSec=2s")
        self.assertEqual(nextrun.entries({}), [])


class UnitFacts(unittest.TestCase):
    def facts(self, fake, unit="job.service"):
        with fake:  # now is 1000.0 s wall time at 392.0 s monotonic; every calendar next elapses at 4000.0
            return ask.unit_facts(unit, clock=lambda: 1000.0, monotonic=lambda: 392.0,
                                  calendar_next=lambda specs: [4000.0 for _ in specs])

    def test_one_call_for_unit_and_timer(self):
        """finish asks systemd once for the unit and its timer: nextRunAt exact from the recorded show"""
        fake = Systemctl(SERVICE_BLOCK + "\n" + TIMER_BLOCK)
        facts = self.facts(fake)
        self.assertEqual(len(fake.calls), 1)
        self.assertEqual(fake.calls[0][0][-3:], ["--", "job.service", "job.timer"])
        self.assertEqual(facts["trigger"], "job.timer")
        self.assertEqual(facts["schedule"], "OnUnitActiveUSec=7s; OnActiveUSec=2s")
        self.assertEqual(facts["TimeoutStopUSec"], "1min 30s")
        self.assertEqual(facts["InvocationID"], "0123456789abcdef0123456789abcdef")
        # InactiveExitTimestampMonotonic 391.478308 s + 7 s, as wall time (now 1000.0 at monotonic 392.0).
        self.assertAlmostEqual(float(facts["nextRunAt"]), 1006.478308, places=6)
        self.assertNotIn("TimersMonotonic", facts)

    def test_timer_of_another_name(self):
        """a timer not named after the unit costs a second call, for that timer; its calendar and delay count"""
        service = SERVICE_BLOCK.replace("TriggeredBy=job.timer", "TriggeredBy=other.timer")
        other = ("Id=other.timer\nTimersCalendar={ OnCalendar=daily ; next_elapse=Tue 2026-12-01 00:00:00 UTC }\n"
                 "RandomizedDelayUSec=2min\nNextElapseUSecRealtime=\n")
        fake = Systemctl(service + "\nId=job.timer\n", other)
        facts = self.facts(fake)
        self.assertEqual([c[0][-1] for c in fake.calls], ["job.timer", "other.timer"])
        self.assertEqual((facts["trigger"], facts["schedule"]), ("other.timer", "OnCalendar=daily"))
        self.assertEqual(float(facts["nextRunAt"]), 4120.0)

    def test_rearmed_timer(self):
        """a timer systemd has re-armed already (a run started by hand): its own next elapse"""
        timer = TIMER_BLOCK.replace("NextElapseUSecRealtime=", "NextElapseUSecRealtime=Thu 1970-01-01 00:30:00 UTC")
        self.assertEqual(float(self.facts(Systemctl(SERVICE_BLOCK + "\n" + timer))["nextRunAt"]), 1800.0)

    def test_no_timer_no_systemd(self):
        """a unit no timer triggers: its facts without trigger; no systemctl at all: no facts"""
        facts = self.facts(Systemctl(SERVICE_BLOCK.replace("TriggeredBy=job.timer", "TriggeredBy=") + "\n\n"))
        self.assertNotIn("trigger", facts)
        self.assertNotIn("nextRunAt", facts)
        self.assertEqual(facts["Id"], "job.service")
        self.assertEqual(self.facts(Systemctl(Systemctl.MISSING)), {})


class EnvironmentFiles(unittest.TestCase):
    def test_every_file_of_every_unit(self):
        """each EnvironmentFiles= line of each unit, without systemd's '(ignore_errors=...)', spaces kept"""
        out = ("Id=a.service\nEnvironmentFiles=/etc/default/a (ignore_errors=no)\n"
               "EnvironmentFiles=/srv/my app/env (ignore_errors=yes)\n\nId=b.service\nEnvironmentFiles=\n")
        fake = Systemctl(out)
        with fake:
            found = unitenv.environment_files(["a.service", "b.service"])
        self.assertEqual(found, {"a.service": ["/etc/default/a", "/srv/my app/env"], "b.service": []})
        self.assertFalse(fake.calls[0][1], "the system manager's view, never a user's")
        with Systemctl(Systemctl.MISSING):
            self.assertEqual(unitenv.environment_files(["a.service"]), {"a.service": []})
        self.assertEqual(unitenv.environment_files([]), {})


class OperatorShow(unittest.TestCase):
    def test_strict_and_lenient(self):
        """enable/disable (strict) say why systemctl failed and what to do; list takes what it printed"""
        failing = Systemctl("", returncode=1, stderr="Failed to connect to bus: No medium found\n")
        with failing:
            with self.assertRaisesRegex(StateError, r"systemctl --user show a.service failed: Failed to connect"
                                                    r" to bus: No medium found; --user needs"):
                units.show_units({"HOME": "/home/u"}, ["a.service"], ["LoadState"], strict=True)
        with Systemctl("LoadState=loaded\n\nLoadState=masked\n"):
            self.assertEqual(units.show_units(None, ["a.timer", "b.timer"], ["LoadState"]),
                             [{"LoadState": "loaded"}, {"LoadState": "masked"}])
        with Systemctl(Systemctl.MISSING):
            with self.assertRaisesRegex(StateError, "systemctl was not found"):
                units.show_units(None, ["a.timer"], ["LoadState"])

    def test_resolve_through_show(self):
        """enable a.timer: the service it triggers from its Unit=; a service: its timer from TriggeredBy="""
        with Systemctl("LoadState=loaded\nUnit=b.service\nTriggeredBy=\n", "LoadState=loaded\nUnit=\nTriggeredBy=x.timer\n",
                       "LoadState=not-found\n"):
            self.assertEqual(units.resolve("a.timer", None, False, {}), ("b.service", "a.timer"))
            self.assertEqual(units.resolve("x", None, False, {}), ("x.service", "x.timer"))
            with self.assertRaisesRegex(Exception, "unit y.service not found"):
                units.resolve("y", None, False, {})


class ConfigDir(unittest.TestCase):
    def test_one_xdg_rule(self):
        """the user's config dir: an absolute $XDG_CONFIG_HOME, else ~/.config; seestack.conf and user units use it"""
        env = {"HOME": "/home/u", "XDG_CONFIG_HOME": "/home/u/cfg"}
        self.assertEqual(paths.config_home(env, 1000), "/home/u/cfg")
        self.assertEqual(paths.config_home({"HOME": "/home/u", "XDG_CONFIG_HOME": "cfg"}, 1000), "/home/u/.config")
        self.assertEqual(paths.defaults(env, True, 1000)["config"], "/home/u/cfg/seestack/seestack.conf")
        self.assertEqual(units.dropin_path("a.service", None, True, env), "/home/u/cfg/systemd/user/a.service.d/"
                                                                          "seestack.conf")
        self.assertEqual(units.dropin_path("a.service", "/stage", True, {"HOME": "/home/u", "XDG_CONFIG_HOME": "x"}),
                         "/stage/home/u/.config/systemd/user/a.service.d/seestack.conf")
        self.assertEqual(units.unit_dirs("/stage", True, {"HOME": "/home/u"})[0], "/stage/home/u/.config/systemd/user")
        self.assertEqual(units.dropin_path("a.service", None, False, env),
                         os.path.join("/etc/systemd/system", "a.service.d", "seestack.conf"))


class AskedEarly(unittest.TestCase):
    """finish's questions start before its imports and are read after; none outlives it."""

    ENV = hook.StopEnv.from_environ({"INVOCATION_ID": "0123456789abcdef0123456789abcdef",
                                     "SERVICE_RESULT": "exit-code", "EXIT_CODE": "exited", "EXIT_STATUS": "1"},
                                    "job.service")

    def programs(self, systemctl: str, journalctl: str) -> str:
        """A directory holding stand-in systemctl and journalctl (shell scripts), found where the hooks look."""
        bin_dir = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", bin_dir], check=True))
        for name, body in (("systemctl", systemctl), ("journalctl", journalctl)):
            with open(os.path.join(bin_dir, name), "w") as f:
                f.write(f"#!/bin/sh\necho \"$*\" > {bin_dir}/{name}.args\n{body}\n")
            os.chmod(os.path.join(bin_dir, name), 0o755)
        patch = mock.patch.object(programs, "PROGRAM_DIRS", (bin_dir,))
        patch.start()
        self.addCleanup(patch.stop)
        return bin_dir

    def test_journal_read_at_once_when_streams_are_closed(self):
        """with the unit's streams closed already, the journal read starts with systemctl's; answers reads both"""
        bin_dir = self.programs(f"printf '%s' '{SERVICE_BLOCK}'", "printf 'first\\nlast line\\n'")
        with mock.patch.object(ask, "wait_closed", lambda unit, **kw: True):
            asked = ask.Asked(self.ENV, None, 20)
        self.assertIsNotNone(asked.journal_child)
        facts, output = asked.answers()
        asked.close()
        self.assertEqual((facts["Id"], output), ("job.service", ["first", "last line"]))
        with open(os.path.join(bin_dir, "journalctl.args")) as f:
            self.assertEqual(f.read().split(), ["_SYSTEMD_INVOCATION_ID=0123456789abcdef0123456789abcdef", "-o",
                                                "cat", "--no-pager", "-q", "-n", "20"])

    def test_slow_helpers_share_one_timeout(self):
        """the helpers' one timeout counts from when they were asked: past it, an answer still to come is not waited for"""
        self.programs(f"sleep 0.3; printf '%s' '{SERVICE_BLOCK}'", "sleep 0.3; echo last line")
        now = iter([100.0, 100.0 + ask.SYSTEMCTL_TIMEOUT_S, 100.0 + ask.SYSTEMCTL_TIMEOUT_S])
        with mock.patch.object(ask, "wait_closed", lambda unit, **kw: True):
            asked = ask.Asked(self.ENV, None, 1, monotonic=lambda: next(now))
        self.assertEqual(asked.answers(), ({}, []))  # each read alone would have waited for the answer
        asked.close()
        self.assertEqual([c.returncode for c in (asked.unit_child, asked.journal_child)], [-9, -9])

    def test_close_reaps_what_was_never_read(self):
        """an error between asking and reading (close without answers) leaves no helper running"""
        self.programs("exec sleep 30", "exec sleep 30")
        with mock.patch.object(ask, "wait_closed", lambda unit, **kw: True):
            asked = ask.Asked(self.ENV, None, 1)
        children = [asked.unit_child, asked.journal_child]
        asked.close()
        self.assertEqual([c.returncode for c in children], [-9, -9])


if __name__ == "__main__":
    unittest.main()
