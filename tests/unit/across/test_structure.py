"""The package's shape, as the README's Development table states it: one module (cli/main.py)
that reads the process environment, prints and exits; an import budget for the two
command lines a drop-in runs around every job; and the import graph: no cycle, and each
subpackage imports only the layers below it."""

import ast
import importlib
import inspect
import io
import os
import re
import subprocess
import sys
import tempfile
import tokenize
import typing
import unittest

from seestack_systemd.receiver.receive import Receiver

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PACKAGE = os.path.join(ROOT, "seestack_systemd")
# Modules that `start --unit U -- SLUG` and `finish --unit U -- SLUG` import beyond what
# `python3 -IS` itself has loaded, measured with Python 3.11: an import on that path is paid
# by every run of every monitored job. Other versions differ by a few (3.9's re and locale
# are 4 more modules). The subpackages' __init__ modules count: finish has 4 of them; so do
# built-in modules such as pwd, fcntl and gc, though each costs some 40 µs (python3 -X importtime).
IMPORT_BUDGET = {"start": 30, "finish": 136}
SLACK = 4
# Where each process-wide effect may happen: cli/main.py is the command's boundary; api.py is the
# library's (a library call has no argv, so it reads the process environment itself);
# __main__.py only calls cli.main.entry.
# The patterns match the code's tokens joined by spaces: comments and strings are left out.
ALLOWED = {
    r"\bos \. environ\b": {"cli/main.py", "jobs/api.py"},
    r"(?<!\. )\bprint \(": {"cli/main.py"},
    r"\bsys \. exit \(|\braise SystemExit\b|\bos \. _exit \(": {"cli/main.py"},
}


# The import layers: shared top-level modules <- settings <- {systemd, delivery, receiver} <- jobs <- cli.
# Each layer may import the layers named here (its own included); every other import is a violation.
SHARED = {"contract", "errors", "files", "heartbeat", "inflight", "record", "slug", "state"}
MAY_IMPORT = {
    "shared": {"shared"},
    "settings": {"shared", "settings"},
    "systemd": {"shared", "settings", "systemd"},
    "delivery": {"shared", "settings", "delivery"},
    "receiver": {"shared", "settings", "receiver"},
    "jobs": {"shared", "settings", "systemd", "delivery", "receiver", "jobs"},
    "cli": {"shared", "settings", "systemd", "delivery", "receiver", "jobs", "cli", "package"},
    # The package's __init__: the version from contract.py, the library's names lazily from jobs.api.
    "package": {"shared", "jobs"},
    "__main__": {"cli"},
}


def _code(text):
    """The module's tokens but its comments and strings, joined by spaces."""
    # FSTRING_MIDDLE: an f-string's text on Python 3.12+, where f-strings are tokenized.
    skip = {tokenize.COMMENT, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    return " ".join(t.string for t in tokens if t.type not in skip and t.string.strip())


def _modules():
    """Every module's path under the package, e.g. cli/main.py."""
    return sorted(os.path.relpath(os.path.join(top, name), PACKAGE) for top, _, names in os.walk(PACKAGE)
                  for name in names if name.endswith(".py"))


def _module_name(path):
    """cli/main.py -> seestack_systemd.cli.main; cli/__init__.py -> seestack_systemd.cli."""
    parts = ["seestack_systemd", *path[: -len(".py")].split("/")]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports():
    """Every import of a package module by a package module, wherever it is (a function's,
    under TYPE_CHECKING, ...): (importer, imported, line) with the modules' dotted names."""
    paths = {_module_name(path): path for path in _modules()}
    found = []
    for importer, path in paths.items():
        with open(os.path.join(PACKAGE, path), encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        package = importer if path.endswith("__init__.py") else importer.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the importer's package up
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from pkg import name` imports the module pkg.name when there is one, else pkg itself.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in paths else base
                           for alias in node.names]
            else:
                continue
            for target in dict.fromkeys(targets):
                if target in paths:
                    found.append((importer, target, node.lineno))
    return paths, found


def _layer(name):
    """The layer of a module's dotted name, or None for a top-level module the table does not know."""
    parts = name.split(".")[1:]
    if not parts:
        return "package"
    if len(parts) == 1 and parts[0] not in MAY_IMPORT:
        return "shared" if parts[0] in SHARED else ("__main__" if parts[0] == "__main__" else None)
    return parts[0]


def _cycles(edges):
    """One cycle (a list of modules, the first repeated at the end) through each back edge
    of a depth-first walk: none when the graph has no cycle."""
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


# Public names whose annotations typing.get_type_hints cannot resolve yet, each for a reason
# measured on the hooks' path (one line each). The list is exact: a name that resolves must
# leave it, a new one may not join.
UNRESOLVED_HINTS: set = set()


def _public_hinted():
    """(dotted name under the package, object) for every public function, class and method."""
    for path in _modules():
        if path.endswith("__main__.py"):
            continue
        name = path[:-3].replace("/", ".").removesuffix(".__init__").removesuffix("__init__")
        module = importlib.import_module("seestack_systemd" + ("." + name if name else ""))
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) or inspect.isclass(obj):
                yield f"{name}.{attr}".lstrip("."), obj
            if inspect.isclass(obj):
                for meth, fn in vars(obj).items():
                    if inspect.isfunction(fn) and (meth == "__init__" or not meth.startswith("_")):
                        yield f"{name}.{attr}.{meth}".lstrip("."), fn


class Structure(unittest.TestCase):
    def test_hook_import_budget(self):
        """the drop-in's own command lines (start/finish --unit, as systemd runs them, finish delivering to a
        receiver) keep to their import budget, and neither imports typing"""
        receiver = Receiver().start()
        self.addCleanup(receiver.stop)
        with tempfile.TemporaryDirectory() as tmp:
            env = {"PATH": "/usr/bin:/bin", "SEESTACK_CONFIG": "/dev/null", "SEESTACK_STATE_DIR": tmp + "/state",
                   "SEESTACK_DATA_DIR": tmp + "/data", "SEESTACK_API_KEY": "sk-budget-0123456789",
                   "SEESTACK_ENDPOINT": receiver.url,
                   "INVOCATION_ID": "0123456789abcdef0123456789abcdef", "SERVICE_RESULT": "success",
                   "EXIT_CODE": "exited", "EXIT_STATUS": "0"}
            base = set(subprocess.run([sys.executable, "-IS", "-c", "import sys; print(' '.join(sys.modules))"],
                                      capture_output=True, text=True, check=True).stdout.split())
            # As a user unit's hook, so that SEESTACK_* is honoured even when the suite runs as root.
            code = (f"import sys, atexit; sys.path.insert(0, {ROOT!r});"
                    "atexit.register(lambda: print(' '.join(sorted(sys.modules))));"
                    "from seestack_systemd.cli import main as cli; cli.root_hook = lambda command: False;"
                    "sys.exit(cli.main(sys.argv[1:]))")
            for command, budget in IMPORT_BUDGET.items():
                done = subprocess.run([sys.executable, "-IS", "-c", code, command, "--unit", "job.service", "--",
                                       "job"], env=env, capture_output=True, text=True, timeout=30)
                self.assertEqual(done.returncode, 0, done.stderr)
                added = sorted(set(done.stdout.split()) - base)
                self.assertIn(f"seestack_systemd.{'state' if command == 'start' else 'delivery.report'}", added)
                self.assertNotIn("typing", added, f"{command} --unit imports typing")
                self.assertLessEqual(len(added), budget + SLACK, f"{command} imports {len(added)} modules, budget"
                                     f" {budget}: {' '.join(added)}")
        self.assertEqual([r.status for r in receiver.wait_for(1)], [202])

    def test_only_the_boundaries_touch_the_process(self):
        """os.environ, print() and sys.exit() appear only in cli/main.py (and the library's own entry, jobs/api.py)"""
        found = {}
        for name in _modules():
            with open(os.path.join(PACKAGE, name), encoding="utf-8") as f:
                text = _code(f.read())
            for pattern, allowed in ALLOWED.items():
                if name not in allowed and re.search(pattern, text):
                    found.setdefault(name, []).append(pattern)
        self.assertEqual(found, {}, "pass the environment in, return lines or raise a typed error instead")

    def test_no_import_cycle(self):
        """no module imports (directly or through others) a module that imports it, counting imports in functions"""
        paths, found = _imports()
        edges, lines = {}, {}
        for importer, target, line in found:
            edges.setdefault(importer, set()).add(target)
            lines.setdefault((importer, target), line)
        # e.g. systemd/units.py:220 -> systemd/unitenv.py:165 -> systemd/units.py (each importer's line)
        described = [" -> ".join([f"{paths[a]}:{lines[a, b]}" for a, b in zip(cycle, cycle[1:])] + [paths[cycle[-1]]])
                     for cycle in _cycles(edges)]
        if described:
            self.fail("import cycles (make each dependency one-way):\n" + "\n".join(described))

    def test_layers(self):
        """each subpackage imports only the layers below it (and itself); cli only from __main__"""
        paths, found = _imports()
        unknown = sorted(name for name in paths if _layer(name) is None)
        self.assertEqual(unknown, [], f"top-level modules not in the layer table (SHARED: {sorted(SHARED)})")
        wrong = [f"{paths[importer]}:{line} imports {target} ({_layer(importer)} may import only"
                 f" {', '.join(sorted(MAY_IMPORT[_layer(importer)]))})"
                 for importer, target, line in found if _layer(target) not in MAY_IMPORT[_layer(importer)]]
        if wrong:
            self.fail("imports against the layers:\n" + "\n".join(wrong))

    @unittest.skipIf(sys.version_info < (3, 10), "PEP 604 unions (X | None) in annotations evaluate from 3.10 on")
    def test_type_hints_resolve(self):
        """typing.get_type_hints resolves for every public function, method and class (but the listed few)"""
        failed = set()
        for name, obj in _public_hinted():
            try:
                typing.get_type_hints(obj)
            except Exception:  # NameError, TypeError: the name is what matters here
                failed.add(name)
        self.assertEqual(failed, UNRESOLVED_HINTS)


if __name__ == "__main__":
    unittest.main()
