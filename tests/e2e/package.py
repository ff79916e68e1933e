"""The .deb under test: built once per test run as the README says, `make deb`, from a clean copy.

The build runs the unit tests inside dpkg-buildpackage, as root here (the suite needs
root): that is the README's install path, `make deb && apt install ./dist/...deb`, on a
fresh clone. lintian runs too and fails the build on any error or warning.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_lock = threading.Lock()
_built: list = []


def clean_copy(dest: Path) -> Path:
    """The checkout as a fresh clone would have it: tracked and new not-ignored files only
    (no dist/, caches or build debris), in ``dest`` (root-only, as a clone in /root is)."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout
    for name in filter(None, os.fsdecode(listed).split("\0")):
        source = ROOT / name
        if not os.path.lexists(source):  # deleted in the work tree, not yet in the index
            continue
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)
    return dest


def built_deb(check: bool = True) -> Path:
    """Build dist/seestack-systemd_*_all.deb (once per process) and return it.

    ``make deb`` runs in a clean copy of this checkout, with the unit tests unless ``check``
    is false (the demo's quick path); the .deb and its build log are copied to dist/.
    """
    with _lock:
        if not _built:
            for old in glob.glob(str(ROOT / "dist" / "seestack-systemd_*")):
                os.unlink(old)
            work = Path(tempfile.mkdtemp(prefix="seestack-clone-"))
            try:
                copy = clean_copy(work / "seestack-systemd")
                env = {k: v for k, v in os.environ.items() if k != "DEB_BUILD_OPTIONS"}
                if not check:
                    env["DEB_BUILD_OPTIONS"] = "nocheck"
                done = subprocess.run(["make", "-C", str(copy), "deb"], env=env, capture_output=True, text=True,
                                      timeout=1200)
                if done.returncode:
                    raise AssertionError(f"make deb failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
                (ROOT / "dist").mkdir(exist_ok=True)
                for made in glob.glob(str(copy / "dist" / "seestack-systemd_*")):
                    shutil.copy2(made, ROOT / "dist")
            finally:
                shutil.rmtree(work, ignore_errors=True)
            [deb] = glob.glob(str(ROOT / "dist" / "seestack-systemd_*_all.deb"))
            _built.append(Path(deb))
        return _built[0]


def build_log() -> str:
    """The dpkg-buildpackage log of the build ``built_deb`` made."""
    [log] = glob.glob(str(built_deb().parent / "seestack-systemd_*_all.build"))
    return Path(log).read_text(errors="replace")
