#!/usr/bin/python3
"""Run the test suites with the standard library's unittest and print one line per test.

Usage: tests/run.py [DIR|FILE ...]   (default: tests/unit)

The last line is ``N passed, N failed`` (``, N skipped`` when any were skipped),
the closing line CI reads. Exits 1 when anything failed or errored.
"""

import os
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class LineResult(unittest.TestResult):
    """Prints ``ok``/``FAIL``/``skip`` and the test's description as each test ends."""

    def __init__(self) -> None:
        super().__init__()
        self.passed = 0
        self._started = 0.0

    def startTest(self, test):
        super().startTest(test)
        self._started = time.monotonic()

    def _line(self, word: str, test, detail: str = "") -> None:
        took = time.monotonic() - self._started
        name = test.shortDescription() or test.id().replace("test_", "")
        print(f"{word:4} {name} ({took:.1f}s){detail}", flush=True)

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        self._line("ok", test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line("FAIL", test)
        print(self.failures[-1][1], flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        self._line("FAIL", test)
        print(self.errors[-1][1], flush=True)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:  # a failing subtest gets its own line; passing ones stay quiet
            self._line("FAIL", subtest)
            print(self._exc_info_to_string(err, test), flush=True)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line("skip", test, f": {reason}")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._line("FAIL", test, ": unexpected success")


def main(argv: list) -> int:
    dirs = argv or [os.path.join(HERE, "unit")]
    sys.path.insert(0, ROOT)
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    for d in dirs:
        d = os.path.abspath(d)
        if os.path.isfile(d):  # one test file
            suite.addTests(loader.discover(os.path.dirname(d), pattern=os.path.basename(d), top_level_dir=ROOT))
        else:
            suite.addTests(loader.discover(d, top_level_dir=ROOT))
    result = LineResult()
    suite.run(result)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    line = f"{result.passed} passed, {failed} failed"
    if result.skipped:
        line += f", {len(result.skipped)} skipped"
    print(line)
    return 1 if failed or not result.testsRun else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
