"""The .deb under test: built once per test run with `make deb`, lintian included."""

from __future__ import annotations

import glob
import os
import subprocess
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_lock = threading.Lock()
_built: list = []


def built_deb() -> Path:
    """Build dist/seestack-systemd_*_all.deb from this checkout (once per process) and return it.

    The unit tests already ran in this `make test`, so the build skips them (nocheck);
    lintian still runs and fails the build on any error or warning.
    """
    with _lock:
        if not _built:
            for old in glob.glob(str(ROOT / "dist" / "seestack-systemd_*")):
                os.unlink(old)
            env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck")
            done = subprocess.run(["sh", str(ROOT / "packaging" / "build-deb.sh")], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=900)
            if done.returncode:
                raise AssertionError(f"make deb failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            [deb] = glob.glob(str(ROOT / "dist" / "seestack-systemd_*_all.deb"))
            _built.append(Path(deb))
        return _built[0]
