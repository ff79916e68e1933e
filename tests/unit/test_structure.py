"""The package's shape, as the README's Development table states it: small modules, and one
module (cli.py) that reads the process environment, prints and exits."""

import io
import os
import re
import tokenize
import unittest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "seestack_systemd")
MAX_LINES = 300
# Where each process-wide effect may happen: cli.py is the command's boundary; api.py is the
# library's (a library call has no argv, so it reads the process environment itself);
# __main__.py only hands cli.main's code to sys.exit.
# The patterns match the code's tokens joined by spaces: comments and strings are left out.
ALLOWED = {
    r"\bos \. environ\b": {"cli.py", "api.py"},
    r"(?<!\. )\bprint \(": {"cli.py"},
    r"\bsys \. exit \(|\braise SystemExit\b": {"cli.py", "__main__.py"},
}


def _code(text):
    """The module's tokens but its comments and strings, joined by spaces."""
    # FSTRING_MIDDLE: an f-string's text on Python 3.12+, where f-strings are tokenized.
    skip = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return " ".join(t.string for t in tokens if t.type not in skip and t.string.strip())


def _modules():
    return sorted(name for name in os.listdir(PACKAGE) if name.endswith(".py"))


class Structure(unittest.TestCase):
    def test_modules_at_most_300_lines(self):
        """every module of the package has at most 300 lines"""
        long = {}
        for name in _modules():
            with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
                count = sum(1 for _ in f)
            if count > MAX_LINES:
                long[name] = count
        self.assertEqual(long, {}, f"modules over {MAX_LINES} lines: split them by what they hold")

    def test_only_the_boundaries_touch_the_process(self):
        """os.environ, print() and sys.exit() appear only in cli.py (and the library's own entry, api.py)"""
        found = {}
        for name in _modules():
            with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
                text = _code(f.read())
            for pattern, allowed in ALLOWED.items():
                if name not in allowed and re.search(pattern, text):
                    found.setdefault(name, []).append(pattern)
        self.assertEqual(found, {}, "pass the environment in, return lines or raise a typed error instead")


if __name__ == "__main__":
    unittest.main()
