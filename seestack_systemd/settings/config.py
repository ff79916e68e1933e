"""Settings and where each came from.

Precedence, highest first: command-line flags, environment (SEESTACK_*), a
systemd credential (the key only), the config file, built-in defaults.
The API key is never taken from the command line, and never shown: only its
source and last four characters.

A root hook (``trust_environment=False``) reads no SEESTACK_* variable: the unit's
environment is not root's. It takes the config file, its own flags (the drop-in's)
and a credential from a directory systemd made, root-owned, under /run/credentials/.
"""

from __future__ import annotations

import os

# _collections_abc, not collections.abc: os has loaded it already, and start pays for every import
from _collections_abc import Callable

from seestack_systemd.settings import paths
from seestack_systemd.settings.endpoint import Endpoint, parse_endpoint
from seestack_systemd.errors import ConfigError
from seestack_systemd.settings.conffile import file_notes, parse_file, sets
from seestack_systemd.settings.keys import find_key, read_text
from seestack_systemd.settings.table import BY_NAME, IN_FILE, VALUES, flag

DEFAULT_CONFIG_FILE = str(BY_NAME["config"].default)
# A config file is a few hundred bytes: far larger is not ours.
CONFIG_FILE_LIMIT = 64 * 1024
# The settings start needs (dirs_only), whose defaults differ for a user (paths.defaults).
DIRS = ("state_dir", "data_dir")
_TRUE = ("1", "yes", "true", "on")
_FALSE = ("0", "no", "false", "off")
# What a bad value of each kind is told to be instead.
_EXPECTED = {
    "seconds": "a number of seconds above 0 and at most 3600, e.g. {default:g}",
    "bool": "yes or no",
    "count": "a whole number of 0 or more",
    "choice": "{choices}",
}


class Config:
    """Every setting of table.VALUES as an attribute, ``sources`` naming where each value came from.

    A plain class, not a dataclass: ``start`` loads it before every job, and the
    dataclasses module (through inspect) would double that hook's start-up time.
    """

    endpoint: str | None
    state_dir: str
    data_dir: str
    spool_dir: str
    timeout: float
    deadline: float
    allow_insecure_http: bool
    ca_file: str | None
    https_proxy: str | None
    no_proxy: str | None
    output_lines: int
    success_message: str
    spool_max_files: int
    spool_max_bytes: int

    def __init__(self, **values: object) -> None:
        unknown = set(values) - set(VALUES)
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        for name, setting in VALUES.items():
            setattr(self, name, values.get(name, setting.default))
        if not self.spool_dir:
            self.spool_dir = os.path.join(self.data_dir, "spool")
        self.api_key: str | None = None
        self.api_key_source = ""
        self.config_file: str | None = None
        self.config_default = DEFAULT_CONFIG_FILE  # where the file is looked for, named in errors
        self.config_path: str | None = None  # the file looked at, when it exists (config_file: when it has text)
        self.config_source = "default"  # who named config_file: "command line", "environment $SEESTACK_CONFIG"
        self.sources: dict[str, str] = {}
        self.warnings: list[str] = []
        self.environment_trusted = True  # False for a root hook, which reads no SEESTACK_* variable

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in VALUES)
        return f"Config({shown}, api_key={'<set>' if self.api_key else None})"

    def endpoint_parsed(self) -> Endpoint:
        """The checked endpoint, or ``ConfigError`` saying how to set one."""
        if not self.endpoint:
            # A root hook reads no SEESTACK_* variable: it must not suggest one.
            other = " or SEESTACK_ENDPOINT" if self.environment_trusted else \
                ", or give the hooks the drop-in flag: seestack-hook enable UNIT --endpoint URL"
            where = self.config_file or self.config_default
            raise ConfigError(f"no endpoint configured: set endpoint = https://... in {where}{other}")
        endpoint = parse_endpoint(self.endpoint, self.allow_insecure_http)
        if endpoint.warning and endpoint.warning not in self.warnings:
            self.warnings.append(endpoint.warning)  # so that `check` shows it
        return endpoint

    def require_key(self) -> str:
        """The API key, or ``ConfigError`` saying where to put one."""
        if not self.api_key:
            private = "a root-only file" if os.geteuid() == 0 else "a file only you can read (chmod 600)"
            other = ", or set SEESTACK_API_KEY_FILE" if self.environment_trusted else \
                ", or give the hooks the drop-in flag: seestack-hook enable UNIT --api-key-file FILE"
            raise ConfigError(
                f"no API key configured: put it in {private} named by api_key_file in"
                f" {self.config_file or self.config_default}{other}"
            )
        return self.api_key

    def send_warnings(self) -> list[str]:
        """The warnings a command that sends shows: the settings' own, and the key going out in clear."""
        found = list(self.warnings)
        if self.endpoint and self.endpoint.startswith("http://") and self.allow_insecure_http:
            found.append(f"sending the API key over plain http:// to {self.endpoint} (allow_insecure_http = yes)")
        return found

    def key_hint(self) -> str:
        """How ``check`` shows the key: its source and last four characters."""
        if not self.api_key:
            return "(not set)"
        shown = f"…{self.api_key[-4:]}" if len(self.api_key) > 8 else "(set)"
        return f"{shown} from {self.api_key_source}"


def convert(name: str, raw: str, where: str) -> object:
    """Turn a text value into the setting's type, or ConfigError saying what is expected
    (``where``: how the value was given, for the message)."""
    value = raw.strip()
    setting = VALUES[name]
    kind = setting.kind
    if not value:
        return setting.default  # `name =` with nothing after it leaves the default in force
    try:
        if kind == "seconds":
            number = float(value)
            if not 0 < number <= 3600:
                raise ValueError
            return number
        if kind == "count":
            number = int(value)
            if number < 0:
                raise ValueError
            return number
        if kind == "bool":
            if value.lower() in _TRUE:
                return True
            if value.lower() in _FALSE:
                return False
            raise ValueError
        if kind == "choice" and value not in setting.choices:
            raise ValueError
    except ValueError:
        what = _EXPECTED[kind].format(default=setting.default, choices=" or ".join(setting.choices))
        raise ConfigError(f"{where}: {name} = {value!r} is not valid: expected {what}") from None
    if kind == "path" and value and not value.startswith("/"):
        raise ConfigError(f"{where}: {name} = {value!r} must be an absolute path")
    return value


def load(environ: dict[str, str], flags: dict[str, str | None] | None = None, with_key: bool = True,
         dirs_only: bool = False, flag_name: Callable[[str], str] = flag,
         trust_environment: bool = True, unit: str | None = None, user: bool = False) -> Config:
    """Build the configuration from ``flags`` (setting name -> text, plus ``config`` and
    ``api_key_file``), ``environ`` and the config file. ``with_key=False`` reads no key
    and checks no network setting. ``dirs_only`` is for ``start``, which needs only
    the state and data directories: the file is parsed only when a line of it sets one. ``flag_name``
    says how errors name a value given in ``flags`` (the library: ``configure(timeout=...)``).
    ``trust_environment=False`` (root hooks) reads no SEESTACK_* variable, and a credential
    only from the directory systemd made for ``unit``. ``user`` (or not being root) picks
    the per-user default paths (see paths.py). A ConfigError raised carries the warnings
    found so far in its ``warnings`` attribute."""
    warnings: list[str] = []
    try:
        return _load(environ, flags, with_key, dirs_only, flag_name, trust_environment, warnings, unit, user)
    except ConfigError as e:
        e.warnings = warnings  # type: ignore[attr-defined]
        raise


def _load(environ: dict[str, str], given: dict[str, str | None] | None, with_key: bool, dirs_only: bool,
          flag_name: Callable[[str], str], trust_environment: bool, warnings: list[str], unit: str | None,
          user: bool) -> Config:
    flags = {k: v for k, v in (given or {}).items() if v is not None}
    if not trust_environment:
        environ = {k: v for k, v in environ.items() if not k.startswith("SEESTACK_")}
    values: dict[str, object] = {}
    sources: dict[str, str] = {}

    place = paths.defaults(environ, paths.is_user_mode(os.geteuid(), user))
    config_var = BY_NAME["config"].env
    explicit = flags.get("config") or environ.get(config_var)
    path = explicit or place["config"]
    file_values: dict[str, str] = {}
    missing = False
    try:
        text = read_text(path, warnings, CONFIG_FILE_LIMIT)
    except FileNotFoundError:
        missing = True
        if explicit:
            raise ConfigError(f"config file {path} does not exist; create it or fix"
                              f" {config_var}/{flag_name('config')}") from None
        text = ""
    except PermissionError as e:
        if explicit:
            raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
        # Root-only by design: a user's own job can still run on settings from its environment.
        warnings.append(f"cannot read {path} ({e.strerror}): using settings from the environment only")
        text = ""
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    if text and (not dirs_only or any(sets(text, name) for name in DIRS)):
        file_values = parse_file(path, text)
    if dirs_only:  # the other settings, good or bad, are not this caller's business
        file_values = {k: v for k, v in file_values.items() if k in DIRS}
    warnings.extend(file_notes(path, file_values, IN_FILE))
    for name, raw in file_values.items():
        if name in VALUES:
            values[name], sources[name] = convert(name, raw, path), f"config file {path}"
    for name, setting in VALUES.items():
        if setting.env and environ.get(setting.env):
            values[name] = convert(name, environ[setting.env], f"${setting.env}")
            sources[name] = f"environment ${setting.env}"
    for name, raw in flags.items():
        if name in VALUES:
            values[name], sources[name] = convert(name, raw, flag_name(name)), "command line"
    for name in DIRS:
        if name not in values and place[name] != VALUES[name].default:
            values[name], sources[name] = place[name], "default for a user (XDG directories)"
    config = Config(**values)
    config.config_file = path if text else None
    config.config_path = None if missing else path  # read, or there but empty or unreadable
    config.config_default = place["config"]
    config.sources = sources
    config.config_source = "command line" if flags.get("config") else \
        f"environment ${config_var}" if environ.get(config_var) else "default"
    config.warnings = warnings
    config.environment_trusted = trust_environment
    if with_key:
        config.api_key, config.api_key_source = find_key(environ, flags, file_values, path, warnings, flag_name,
                                                         trust_environment, unit)
        _check_network(config)
    return config


def _check_network(config: Config) -> None:
    """Settings that would only fail at send time fail here, where `check` sees them."""
    if config.ca_file and not os.access(config.ca_file, os.R_OK):
        raise ConfigError(f"ca_file {config.ca_file} cannot be read: give the path of a PEM bundle of the CA(s)")
    if config.https_proxy:
        parse_endpoint(config.https_proxy, allow_insecure_http=True, setting="https_proxy")
