"""The bash completion script (packaging/seestack-hook.bash-completion) against the
argparse parser: every command and every flag, and nothing else, so that the static
script cannot drift from parser.py. Real bash with bash-completion drives it in
tests/e2e/test_completion.py."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import unittest
from typing import Dict, Set

from seestack_systemd.cli.parser import build_parser

from ..support import ROOT

SCRIPT = os.path.join(ROOT, "packaging", "seestack-hook.bash-completion")


def script() -> str:
    with open(SCRIPT, encoding="utf-8") as f:
        return f.read()


def variable(name: str) -> str:
    match = re.search(rf'^\s*(?:local )?{name}="([^"]*)"', script(), re.M)
    assert match, f"{name}= not in the completion script"
    return match.group(1)


def script_options() -> Dict[str, Set[str]]:
    """command -> the flags the script offers for it ($_seestack_hook_settings expanded)."""
    settings = variable("_seestack_hook_settings").split()
    found = {}
    for command, opts in re.findall(r'^\s*([a-z]+)\) opts="([^"]*)" ;;$', script(), re.M):
        words = opts.replace("$_seestack_hook_settings", " ".join(settings)).split()
        found[command] = set(words) | {"-h", "--help"}  # the script adds these to every command
    return found


def argparse_options(parser: argparse.ArgumentParser) -> Set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


class Completion(unittest.TestCase):
    def setUp(self):
        self.parser = build_parser()

    def test_commands(self):
        """the script completes exactly argparse's commands, and the top level's own flags"""
        self.assertEqual(sorted(variable("commands").split()), sorted(self.parser.commands))
        self.assertIn("compgen -W '--help --version'", script())
        self.assertEqual(argparse_options(self.parser), {"-h", "--help", "--version"})

    def test_every_flag_of_every_command(self):
        """each command's flags in the script are exactly its argparse flags (settings included)"""
        offered = script_options()
        self.assertEqual(sorted(offered), sorted(self.parser.commands))
        for name, parser in self.parser.commands.items():
            with self.subTest(name):
                self.assertEqual(offered[name], argparse_options(parser))

    def test_flag_values(self):
        """every flag that takes a value is known as one (its value is not a positional); fixed choices offered"""
        valued = set(variable("valued").split())
        for name, parser in self.parser.commands.items():
            for action in parser._actions:
                if not action.option_strings or action.nargs == 0:
                    continue
                with self.subTest(f"{name} {action.option_strings}"):
                    self.assertTrue(set(action.option_strings) <= valued, action.option_strings)
                    if action.choices:
                        pattern = r" \| ".join(re.escape(f) for f in sorted(action.option_strings, key=len))
                        arm = re.search(rf"^\s*{pattern}\)\n\s*COMPREPLY=\(\$\(compgen -W '([^']*)'", script(), re.M)
                        self.assertIsNotNone(arm, f"no case arm for {action.option_strings}")
                        self.assertEqual(arm.group(1).split(), list(action.choices))

    @unittest.skipUnless(shutil.which("bash"), "needs bash")
    def test_bash_parses_it(self):
        """bash -n accepts the script"""
        done = subprocess.run(["bash", "-n", SCRIPT], capture_output=True, text=True)
        self.assertEqual(done.returncode, 0, done.stderr)


if __name__ == "__main__":
    unittest.main()
