"""A scratch setup for trying the agent against ``seestack-hook receive --try``.

It makes a private directory with a key file, a config file and room for state and
data, and returns the ``export`` lines that point every command at it. Nothing then
touches the production config, state or spool, and any user can follow it: every path
is the user's own.
"""

from __future__ import annotations

import os
import secrets
import shlex
import tempfile
from dataclasses import dataclass


@dataclass(frozen=True)
class Scratch:
    """What ``make`` created: the directory and the shell lines that use it."""

    directory: str
    config_file: str
    api_key: str
    exports: list[str]


def make(endpoint: str, parent: str | None = None, insecure_http: bool = False) -> Scratch:
    """Create a scratch setup in a new 0700 directory under ``parent`` (default: $TMPDIR).

    The config file names every setting too, so ``--config FILE`` alone is enough where
    the environment is not read (the systemd hooks). ``insecure_http`` allows the plain
    http:// endpoint of a receiver listening off loopback, in that file only.
    """
    directory = tempfile.mkdtemp(prefix="seestack-try-", dir=parent)
    paths = {
        "SEESTACK_CONFIG": os.path.join(directory, "seestack.conf"),
        "SEESTACK_ENDPOINT": endpoint,
        "SEESTACK_API_KEY_FILE": os.path.join(directory, "api-key"),
        "SEESTACK_STATE_DIR": os.path.join(directory, "state"),
        "SEESTACK_DATA_DIR": os.path.join(directory, "data"),
    }
    api_key = "try-" + secrets.token_hex(12)
    _write_private(paths["SEESTACK_API_KEY_FILE"], api_key + "\n")
    _write_private(paths["SEESTACK_CONFIG"], "".join((
        "# A scratch setup made by `seestack-hook receive --try`; delete the directory when done.\n",
        "[seestack]\n",
        f"endpoint = {endpoint}\n",
        f"api_key_file = {paths['SEESTACK_API_KEY_FILE']}\n",
        f"state_dir = {paths['SEESTACK_STATE_DIR']}\n",
        f"data_dir = {paths['SEESTACK_DATA_DIR']}\n",
        "allow_insecure_http = yes\n" if insecure_http else "",
    )))
    exports = [f"export {name}={shlex.quote(value)}" for name, value in paths.items()]
    return Scratch(directory, paths["SEESTACK_CONFIG"], api_key, exports)


def _write_private(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def instructions(setup: Scratch, command: str = "seestack-hook") -> list[str]:
    """What ``receive --try`` prints: the lines to paste into another shell, and what next
    with ``command``, the way this install is run (paths.invoked_as)."""
    return [
        f"# A scratch setup in {setup.directory}: paste these lines into another shell, so that nothing",
        "# touches the production config, state or spool (any user can):",
        *setup.exports,
        f"# then: {command} check --send demo",
        f"# the hooks as root read no environment: start|finish --config {setup.config_file} SLUG",
        f"# when done: rm -r {setup.directory}",
    ]
