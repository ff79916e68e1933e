"""The hooks' fast command-line path and argparse accept the same lines, with one meaning.

``start`` and ``finish`` run around every job, so their lines are read without argparse;
both readers are built from one table (grammar.HOOK_GRAMMAR). Here every line of a corpus
of about 7,000 is read by both: whatever the fast path accepts, argparse accepts with
the same options, and whatever argparse rejects, the fast path does not accept. The
fast path takes only plain lines (argparse's handling of odd ones, such as a '--' that
is not right before the slug, differs between Python versions), and hands the rest on.
"""

import contextlib
import io
import itertools
import random
import unittest

from seestack_systemd.cli import grammar, parser
from seestack_systemd.settings.table import FLAGS

# Words a hook line is made of: good and bad options, values, slugs, and the odd ones
# argparse treats specially ('--', '-', '--x=y', a value that looks like an option).
WORDS = ("job", "other", "-", "--", "--unit", "--unit=a.service", "a.service", "--status", "--status=failed",
         "failed", "bogus", "--strict", "--strict=1", "--deadline", "3", "--deadline=3", "--config=/etc/x.conf",
         "--uni", "--nope", "-x")


PARSER = parser.build_parser()


def by_argparse(argv):
    """argparse's reading of ``argv``: the options as parse() returns them, or None (rejected)."""
    parser = PARSER
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            parsed, extra = parser.parse_known_args(argv)
    except SystemExit:
        return None
    if extra:
        return None
    ns = vars(parsed)
    ns["settings"] = {name: ns.pop(name) for name in FLAGS.values() if ns.get(name) is not None}
    for name in FLAGS.values():
        ns.pop(name, None)
    return {k: v for k, v in ns.items() if v is not None}


def normal(opts):
    return {k: v for k, v in opts.items() if v is not None}


class Grammar(unittest.TestCase):
    def test_fast_path_agrees_with_argparse(self):
        """every start/finish line of up to 2 words, and 6,000 of 3 to 6: the fast path accepts only what argparse accepts, alike"""
        lines = [[command, *words] for command in grammar.HOOK_GRAMMAR for n in range(3)
                 for words in itertools.product(WORDS, repeat=n)]
        chance = random.Random(1842)  # the same sample every run
        lines += [[chance.choice(list(grammar.HOOK_GRAMMAR)), *chance.choices(WORDS, k=chance.randint(3, 6))]
                  for _ in range(6000)]
        accepted = rejected_by_both = 0
        for argv in lines:
            fast = grammar.fast_parse(argv)
            if fast is None:
                rejected_by_both += by_argparse(argv) is None
                continue  # parse() hands it to argparse, which decides alone
            slow = by_argparse(argv)
            self.assertIsNotNone(slow, f"fast path accepts what argparse rejects: {argv}")
            self.assertEqual(normal(fast), slow, argv)
            accepted += 1
        # The corpus reaches both kinds of line: it would prove nothing otherwise.
        self.assertGreater(accepted, 300)
        self.assertGreater(rejected_by_both, 3000)

    def test_hook_options_are_per_command(self):
        """start takes no --status (it once did on the fast path only); finish does, with its two values"""
        self.assertIsNone(grammar.fast_parse(["start", "--status", "failed", "job"]))
        self.assertIsNone(by_argparse(["start", "--status", "failed", "job"]))
        self.assertEqual(grammar.fast_parse(["finish", "--status", "failed", "job"])["status"], "failed")
        self.assertIsNone(grammar.fast_parse(["finish", "--status", "bogus", "job"]))


if __name__ == "__main__":
    unittest.main()
