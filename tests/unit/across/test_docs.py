"""The README, the man page and --help agree with the argparse definitions, and every
command line the README and the man page show does what the text says.

The command lines run as a reader would run them, in the order the document shows
them: ``seestack-hook`` is the checkout's ``python3 -m seestack_systemd``, and a
scratch setup with a local receiver (``receive --try``) stands in for production.
What each line must do is data, in tests/unit/doc_commands.py.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from typing import Dict, List, Optional

from seestack_systemd.cli import parser
from seestack_systemd.settings.table import FLAGS

from .. import docs_extract as docs
from ..doc_commands import EXPECTED, Expect

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
NOBODY = 65534
LINE_TIMEOUT = 30.0
SERVE_TIMEOUT = 10.0


def own_options(name: str) -> set:
    """A command's options in argparse, minus the settings flags and -h/--help."""
    command = parser.build_parser().commands[name]
    flags = {flag for action in command._actions for flag in action.option_strings}
    return flags - set(FLAGS) - {"-h", "--help"}


def takes_settings(name: str) -> bool:
    command = parser.build_parser().commands[name]
    return "--config" in {flag for action in command._actions for flag in action.option_strings}


COMMANDS = sorted(parser.build_parser().commands)


class ManPageMatchesArgparse(unittest.TestCase):
    def test_every_command_documented(self):
        """the man page's SYNOPSIS and COMMANDS have every argparse subcommand, and no other"""
        self.assertEqual(sorted(docs.synopsis()), COMMANDS)
        sections = docs.command_sections()
        self.assertEqual(sorted(name for name in sections if name in COMMANDS), COMMANDS)

    def test_synopsis_options(self):
        """each SYNOPSIS line lists exactly the command's own options, and [SETTINGS] iff it takes them"""
        for name, text in docs.synopsis().items():
            with self.subTest(name):
                self.assertEqual(docs.options_in(text), own_options(name), text)
                self.assertEqual(bool(re.search(r"\[\s*SETTINGS\s*\]", text)), takes_settings(name), text)

    def test_command_sections_options(self):
        """each command's section documents exactly its own options (a .TP entry each)"""
        sections = docs.command_sections()
        common = {"--strict"}  # documented once, under OPTIONS
        for name in COMMANDS:
            with self.subTest(name):
                self.assertEqual(docs.tagged_options(sections[name]), own_options(name) - common)

    def test_options_section(self):
        """OPTIONS documents every settings flag, and --strict only for the commands that have it"""
        options = docs.top_sections()["OPTIONS"]
        self.assertEqual(docs.tagged_options(options),
                         set(FLAGS) | {"--strict", "-h", "--help", "--version"})
        strict_text = docs.plain(docs.paragraph_after(options, "--strict"))
        named = {word for word in re.findall(r"[a-z]+", strict_text) if word in COMMANDS}
        self.assertTrue(named)
        for name in named:
            if "--strict" not in own_options(name):
                # Allowed only where the text says the command behaves so without the flag.
                self.assertRegex(strict_text, rf"\([^)]*\b{name}\b[^)]*always do", f"--strict documented for {name}")
        self.assertEqual({n for n in COMMANDS if "--strict" in own_options(n)},
                         {n for n in named if "--strict" in own_options(n)})

    def test_readme_flags_sentence(self):
        """the README's Flags sentence names every settings flag and exactly the commands without them"""
        text = " ".join(open(docs.README, encoding="utf-8").read().split())
        match = re.search(r"Flags: every command but (.*?) takes (.*?)\. No flag takes the key itself", text)
        self.assertIsNotNone(match, "the README's Flags: sentence")
        without = set(re.findall(r"`([a-z]+)`", match.group(1)))
        self.assertEqual(without, {n for n in COMMANDS if not takes_settings(n)})
        self.assertEqual(set(re.findall(r"`(--[a-z-]+)`", match.group(2))), set(FLAGS))

    def test_help_lists_every_option(self):
        """each command's --help shows each of its options (argparse's own text, from the same table)"""
        for name in COMMANDS:
            with self.subTest(name):
                text = parser.build_parser().commands[name].format_help()
                for flag in own_options(name) | (set(FLAGS) if takes_settings(name) else set()):
                    self.assertIn(flag, text)

    def test_defaults_name_a_users_paths_too(self):
        """--help (as a real process) and the man page give both defaults: root's, and a user's"""
        help_text = " ".join(subprocess.run([PYTHON, "-m", "seestack_systemd", "ping", "--help"], cwd=docs.ROOT,
                                            capture_output=True, text=True, timeout=30).stdout.split())
        with open(docs.MANPAGE, encoding="utf-8") as f:  # as read: macro names gone, ".BR X ," is "X,"
            man = re.sub(r" ([,.])", r"\1", " ".join(re.sub(r"^\.[A-Z]+ ?", "", docs.unroff(line))
                                                  for line in f.read().splitlines()))
        for root, user in (("/etc/seestack/seestack.conf", "~/.config/seestack/seestack.conf"),
                           ("/run/seestack", "$XDG_RUNTIME_DIR/seestack"),
                           ("/var/lib/seestack", "~/.local/state/seestack")):
            for where, text in (("--help", help_text), ("man page", man)):
                self.assertIn(f"{root}, or {user} for a user", text, where)


class Sandbox:
    """The reader's shell: a scratch home, ``seestack-hook`` on PATH, and the exports of the
    running ``receive --try`` (started by the sandbox first, replaced by a document's own).

    As root, the lines run as uid 65534 (setpriv): the docs promise that a user without
    root gets from a checkout to a delivered heartbeat, and no line may touch root's setup.
    """

    def __init__(self, test: unittest.TestCase) -> None:
        self.test = test
        tmp = tempfile.TemporaryDirectory(prefix="seestack-docs-")
        test.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        bin_dir = os.path.join(self.dir, "bin")
        os.mkdir(bin_dir)
        shim = os.path.join(bin_dir, "seestack-hook")
        with open(shim, "w") as f:
            f.write(f'#!/bin/sh\nexec {PYTHON} -m seestack_systemd "$@"\n')
        os.chmod(shim, 0o755)
        self.prefix: List[str] = []
        if os.geteuid() == 0 and shutil.which("setpriv"):
            self.prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
            for path in (self.dir, bin_dir):
                os.chown(path, NOBODY, NOBODY)
        self.env: Dict[str, str] = {
            "PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": self.dir, "TMPDIR": self.dir, "LC_ALL": "C.UTF-8",
            "PYTHONPATH": docs.ROOT, "PYTHONDONTWRITEBYTECODE": "1",
        }
        self.server: Optional[subprocess.Popen] = None
        self.server_out = ""
        self.serve("seestack-hook receive --try", "export SEESTACK_DATA_DIR=")

    def rewrite(self, line: str) -> str:
        """A server line on a free port, and /tmp/ inside the sandbox."""
        line = re.sub(r"--listen (\S+):8099\b", r"--listen \1:0", line.replace("/tmp/", self.dir + "/"))
        if " receive" in line and "--listen" not in line:
            line = re.sub(r"\breceive\b", "receive --listen 127.0.0.1:0", line, count=1)
        return line

    def serve(self, line: str, says: str) -> None:
        out_path = os.path.join(self.dir, f"server-{time.monotonic_ns()}.out")
        out = open(out_path, "w")
        proc = subprocess.Popen([*self.prefix, "/bin/sh", "-c", "exec " + self.rewrite(line)], cwd=docs.ROOT,
                                env=self.env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        self.test.addCleanup(self._stop, proc)
        deadline = time.monotonic() + SERVE_TIMEOUT
        text = ""
        while "listening on" not in text and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
            text = open(out_path).read()
        self.test.assertIn("listening on", text, f"{line!r} did not start listening:\n{text}")
        self.test.assertIn(says, text, line)
        exports = re.findall(r"^export (SEESTACK_[A-Z_]+)=(.*)$", text, re.M)
        if not exports:  # a server for show: the lines after it keep using the current one
            self._stop(proc)
            return
        if self.server is not None:
            self._stop(self.server)
        self.server, self.server_path = proc, out_path
        for name, value in exports:
            self.env[name] = shlex.split(value)[0]

    @staticmethod
    def _stop(proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(5)

    def received(self) -> str:
        return open(self.server_path).read()

    def run(self, line: str) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, "/bin/sh", "-c", line], cwd=docs.ROOT, env=self.env,
                              capture_output=True, text=True, timeout=LINE_TIMEOUT)


class DocumentedCommands(unittest.TestCase):
    def test_every_line_has_an_expectation(self):
        """every command line in the README and the man page is in doc_commands.py, and no stale entry is"""
        shown = set(docs.readme_lines()) | set(docs.man_lines())
        self.assertEqual(sorted(shown - set(EXPECTED)), [], "lines without an entry in tests/unit/doc_commands.py")
        self.assertEqual(sorted(set(EXPECTED) - shown), [], "entries no document shows")

    def test_readme_lines(self):
        """every README command line that runs without systemd does what the README says"""
        self.run_document(docs.readme_lines())

    def test_man_page_lines(self):
        """every man page example that runs without systemd does what the man page says"""
        self.run_document(docs.man_lines())

    def run_document(self, lines: List[str]) -> None:
        sandbox = Sandbox(self)
        skipped = []
        for line in lines:
            expect: Expect = EXPECTED[line]
            with self.subTest(line):
                if expect.kind == "skip":
                    skipped.append(f"{line}  [{expect.why}]")
                elif expect.kind == "serve":
                    sandbox.serve(line, expect.says or "")
                else:
                    self.check_run(sandbox, line, expect)
        # Said out loud: which lines this test did not run, and why.
        sys.stderr.write("".join(f"\n    skipped: {text}" for text in skipped) + ("\n" if skipped else ""))
        last = os.path.join(sandbox.env["SEESTACK_DATA_DIR"], "last")
        self.assertTrue(os.listdir(last), "the heartbeats' records went to the scratch data dir")
        if sandbox.prefix:
            self.assertEqual(os.stat(last).st_uid, NOBODY, "the lines ran without root")

    def check_run(self, sandbox: Sandbox, line: str, expect: Expect) -> None:
        before = sandbox.received()
        done = sandbox.run(line)
        output = done.stdout + done.stderr
        self.assertEqual(done.returncode, expect.exit, f"{line}\n{output}")
        self.assertNotIn("Traceback", output, line)
        if expect.says:
            self.assertIn(expect.says, output, line)
        if expect.heartbeat:
            slug, status = expect.heartbeat.split()
            pattern = re.compile(rf"^\S+\s+{re.escape(slug)}\s+{status}\b", re.M)
            deadline = time.monotonic() + 5
            while not pattern.search(sandbox.received()[len(before):]) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.assertRegex(sandbox.received()[len(before):], pattern, f"the receiver got no {status} for {slug}")


if __name__ == "__main__":
    unittest.main()
