"""The one error boundary: every error's line and exit code come from cli.exit_code_for
and main's single handler; the typed errors carry their own codes (errors.py)."""

import unittest

from seestack_systemd import errors
from seestack_systemd.cli import main as cli
from seestack_systemd.heartbeat import check_status
from seestack_systemd.slug import check_slug


class Boundary(unittest.TestCase):
    def test_each_kind_has_its_code(self):
        """usage 2, bad slug or status 2, config 78, state 1, OS 1, a bug 1; hooks 0 unless --strict, usage still 2"""
        # error, then the code for: ping, finish --strict, finish (a hook: only a usage error is not 0)
        cases = [(errors.UsageError("x"), 2, 2, 2), (errors.InvalidValue("x"), 2, 2, 0),
                 (errors.ConfigError("x"), 78, 78, 0), (errors.StateError("x"), 1, 1, 0),
                 (OSError(5, "EIO"), 1, 1, 0), (KeyError("bug"), 1, 1, 0)]
        for error, ping, strict_hook, hook in cases:
            with self.subTest(error=type(error).__name__):
                self.assertEqual(cli.exit_code_for(error, "ping", strict=False), ping)
                self.assertEqual(cli.exit_code_for(error, "finish", strict=True), strict_hook)
                self.assertEqual(cli.exit_code_for(error, "finish", strict=False), hook)
                self.assertEqual(cli.exit_code_for(error, "start", strict=False), hook)

    def test_domain_errors_are_typed(self):
        """a bad slug or status raises InvalidValue: the boundary's usage code, and still the SDK's ValueError"""
        for bad in (lambda: check_slug("Bad Slug"), lambda: check_status("ok")):
            with self.assertRaises(errors.InvalidValue) as cm:
                bad()
            self.assertIsInstance(cm.exception, ValueError)

    def test_plain_value_error_is_a_bug_not_a_usage_error(self):
        """a stray ValueError (say int('2²2') somewhere) is an internal error: exit 1, never usage's 2"""
        self.assertEqual(cli.exit_code_for(ValueError("invalid literal"), "ping", strict=False), 1)


if __name__ == "__main__":
    unittest.main()
