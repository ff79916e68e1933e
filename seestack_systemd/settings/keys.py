"""Where the API key comes from, and reading the files that may hold it.

The key is never taken from the command line and never shown. A root hook
(``trust_environment=False``) takes a credential only from a directory systemd made
for the unit, root-owned, under /run/credentials/. A settings file that others can
read is warned about when it holds a key.
"""

from __future__ import annotations

import os
import stat

# _collections_abc, not collections.abc: os has loaded it already, and start pays for every import
from _collections_abc import Callable

from seestack_systemd.errors import ConfigError, StateError
from seestack_systemd.files import read_regular
from seestack_systemd.settings.table import BY_NAME

CREDENTIAL_NAME = "seestack-api-key"
# systemd makes a unit's credentials directory here, owned by root (systemd.exec(5)).
SYSTEM_CREDENTIALS_ROOT = "/run/credentials/"
# A key is one line: far larger is not ours.
KEY_FILE_LIMIT = 4096


def _warn_if_exposed(path: str, st: os.stat_result, warnings: list[str]) -> None:
    if stat.S_ISREG(st.st_mode) and st.st_mode & 0o044:
        warnings.append(f"{path} is readable by group or others and may hold the API key; fix: chmod 600 {path}")


def read_text(path: str, warnings: list[str], limit: int, key_file: bool = False) -> str:
    """A settings file's text: OSError when it cannot be opened, ConfigError when it is
    no regular file or is too large (see files.read_regular). A key file others may read
    is warned about; a config file only when a line of it sets ``api_key`` itself."""
    if path == os.devnull:  # the usual way to say "no config file"
        return ""
    try:
        data, st = read_regular(path, limit)
    except StateError as e:
        raise ConfigError(f"{e}: give the path of a regular file") from None
    text = data.decode("utf-8", "replace")
    if key_file or any(line.split("=", 1)[0].split(":", 1)[0].strip() == "api_key" for line in text.splitlines()):
        _warn_if_exposed(path, st, warnings)
    return text


def _read_key_file(path: str, source: str, warnings: list[str]) -> str:
    if not path.startswith("/"):
        raise ConfigError(f"{source}: api_key_file = {path!r} must be an absolute path")
    try:
        key = read_text(path, warnings, KEY_FILE_LIMIT, key_file=True).strip()
    except OSError as e:
        raise ConfigError(f"cannot read the API key file {path} ({source}): {e.strerror}") from None
    if not key or "\n" in key:
        raise ConfigError(f"the API key file {path} ({source}) must hold the key alone on one line")
    return _check_key(key, f"{path} ({source})")


def _check_key(key: str, source: str) -> str:
    """A key goes into an HTTP header: one token of visible ASCII, or a clear error."""
    key = key.strip()
    if not key or not all(33 <= ord(c) < 127 for c in key):
        raise ConfigError(f"the API key from {source} must be one line of visible ASCII characters (no spaces)")
    return key


def _credentials_dir(environ: dict[str, str], trust_environment: bool, unit: str | None = None) -> str | None:
    """$CREDENTIALS_DIRECTORY when it may be used. A root hook takes it only when systemd
    made it: a real, root-owned directory /run/credentials/UNIT (``unit``'s, when known)
    that no one else can write (the unit's environment could name any directory otherwise)."""
    path = environ.get("CREDENTIALS_DIRECTORY")
    if not path or trust_environment:
        return path
    real = os.path.realpath(path)
    try:
        st = os.lstat(real)
    except OSError:
        return None
    if (os.path.dirname(real) + "/" != SYSTEM_CREDENTIALS_ROOT or (unit and os.path.basename(real) != unit)
            or not stat.S_ISDIR(st.st_mode) or st.st_uid != 0 or st.st_mode & 0o022):
        return None
    return real


def find_key(
    environ: dict[str, str], flags: dict[str, str], file_values: dict[str, str], path: str, warnings: list[str],
    flag_name: Callable[[str], str], trust_environment: bool = True, unit: str | None = None,
) -> tuple[str | None, str]:
    """The API key and where it came from, by precedence: the flag's key file, $SEESTACK_API_KEY,
    $SEESTACK_API_KEY_FILE, a systemd credential, the config file's api_key_file or api_key
    ((None, '') when none is set). ``flag_name`` says how errors name a flag."""
    if flags.get("api_key_file"):
        flag = flag_name("api_key_file")
        return _read_key_file(flags["api_key_file"], flag, warnings), f"{flag} {flags['api_key_file']}"
    key_var, file_var = BY_NAME["api_key"].env, BY_NAME["api_key_file"].env
    if environ.get(key_var):
        return _check_key(environ[key_var], f"${key_var}"), f"environment ${key_var}"
    if environ.get(file_var):
        key_path = environ[file_var]
        return _read_key_file(key_path, f"${file_var}", warnings), f"file {key_path} (${file_var})"
    credentials = _credentials_dir(environ, trust_environment, unit)
    if credentials:
        cred = os.path.join(credentials, CREDENTIAL_NAME)
        if os.path.exists(cred):
            # systemd already restricts credentials to the unit: no mode warning.
            return _read_key_file(cred, "systemd credential", []), f"systemd credential {CREDENTIAL_NAME}"
    if file_values.get("api_key") and file_values.get("api_key_file"):
        raise ConfigError(f"{path} sets both api_key and api_key_file: keep only api_key_file")
    if file_values.get("api_key_file"):
        key_path = file_values["api_key_file"].strip()
        where = f"api_key_file in {path}"
        return _read_key_file(key_path, where, warnings), f"file {key_path} ({where})"
    if file_values.get("api_key"):
        return _check_key(file_values["api_key"], f"api_key in {path}"), f"api_key in {path}"
    return None, ""
