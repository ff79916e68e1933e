#!/usr/bin/python3
"""Run the test suites with the standard library's unittest and print one line per test.

Usage: tests/run.py [-j N] [DIR|FILE ...]   (default: tests/unit)

With ``-j N``, the tests outside tests/e2e run in N child processes at once, in
chunks of at most CHUNK tests of one class, each chunk's lines printed together when
it ends: most unit tests wait on real processes, sockets and deadlines rather than
on the CPU. The end-to-end files share
booted containers per module and run after them, one at a time, in this process.

The last line is ``N passed, N failed`` (``, N skipped`` when any were skipped),
the closing line CI reads. Exits 1 when anything failed or errored.
"""

import os
import re
import subprocess
import sys
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

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


def _files(paths: list) -> list:
    """Every test file named by ``paths`` (directories are searched like discover does)."""
    found = []
    for path in map(os.path.abspath, paths):
        if os.path.isfile(path):
            found.append(path)
            continue
        for top, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            found += [os.path.join(top, n) for n in sorted(names) if n.startswith("test") and n.endswith(".py")]
    return found


CHUNK = 6


def _chunks(files: list) -> list:
    """The tests of ``files`` as lists of test ids, at most CHUNK of one class each."""
    loader = unittest.TestLoader()
    by_class: dict = {}
    for path in files:
        stack = [loader.discover(os.path.dirname(path), pattern=os.path.basename(path), top_level_dir=ROOT)]
        while stack:
            item = stack.pop()
            if isinstance(item, unittest.TestSuite):
                stack.extend(item)
            else:  # a test, or a loader's stand-in for a module that failed to import
                by_class.setdefault(item.id().rsplit(".", 1)[0], []).append(item.id())
    chunks = [sorted(ids)[i:i + CHUNK] for ids in by_class.values() for i in range(0, len(ids), CHUNK)]
    return sorted(chunks, key=len, reverse=True)


def _child(ids: list) -> tuple:
    """Run some tests in a process of their own: (their output, passed, failed, skipped)."""
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--ids", *ids], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    lines = done.stdout.rstrip("\n").split("\n")
    last = re.fullmatch(r"(\d+) passed, (\d+) failed(?:, (\d+) skipped)?", lines[-1])
    if last is None:  # the child died before its closing line: count that as a failure
        return done.stdout + f"FAIL {ids[0]} and the rest of its chunk: exited {done.returncode} without a result\n", 0, 1, 0
    body = "\n".join(lines[:-1])
    return (body + "\n" if body else ""), int(last[1]), int(last[2]) + (done.returncode not in (0, 1)), int(last[3] or 0)


def main(argv: list) -> int:
    jobs = 1
    if argv[:1] == ["-j"] and len(argv) > 1 and argv[1].isdigit():
        jobs, argv = max(1, int(argv[1])), argv[2:]
    sys.path.insert(0, ROOT)
    if argv[:1] == ["--ids"]:  # a child of -j
        return _report(unittest.TestLoader().loadTestsFromNames(argv[1:]))
    paths = argv or [os.path.join(HERE, "unit")]
    files = _files(paths)
    e2e = os.path.join(HERE, "e2e") + os.sep
    parallel = [f for f in files if not f.startswith(e2e)] if jobs > 1 else []
    serial = [f for f in files if f not in parallel]
    passed = failed = skipped = 0
    with ThreadPoolExecutor(jobs) as pool:
        for output, p, f, s in pool.map(_child, _chunks(parallel) if parallel else []):
            print(output, end="", flush=True)
            passed, failed, skipped = passed + p, failed + f, skipped + s
    suite = unittest.TestSuite()
    loader = unittest.TestLoader()
    for path in serial:
        suite.addTests(loader.discover(os.path.dirname(path), pattern=os.path.basename(path), top_level_dir=ROOT))
    return _report(suite, passed, failed, skipped)


def _report(suite: unittest.TestSuite, passed: int = 0, failed: int = 0, skipped: int = 0) -> int:
    """Run ``suite``, add its counts to those given, print the closing line; the exit code."""
    result = LineResult()
    suite.run(result)
    passed += result.passed
    failed += len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped += len(result.skipped)
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed or not (passed or skipped) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
