"""The drop-in file ``enable`` writes: its text from the template shipped in the package
(seestack_systemd/systemd/seestack.conf.in), the per-unit flags on its hook lines, and how an
existing one of ours is read back (its slug, its timer)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from seestack_systemd.errors import StateError, UsageError
from seestack_systemd.settings.config import convert, parse_endpoint
from seestack_systemd.settings.paths import HOOK_PATH
from seestack_systemd.settings.table import DROPIN, VALUES
from seestack_systemd.settings.table import flag as table_flag

MARKER = "seestack-hook enable"
TIMER_LINE = "# Triggered by "
# Package data: found the same way from the .deb, a pip install and the checkout.
TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seestack.conf.in")


# Characters a flag's value may hold in a drop-in: systemd would expand '%' and '$', split
# on spaces and unquote quotes and backslashes.
_FLAG_VALUE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/+,=-")


def dropin_flags(settings: Mapping[str, str | None]) -> str:
    """`` --deadline 3 ...`` for the hooks' command lines, each value checked as the hook
    will read it; '' when none is given."""
    words = []
    for name in DROPIN:
        flag = table_flag(name)
        value = settings.get(name)
        if value is None:
            continue
        if not value or not set(value) <= _FLAG_VALUE:
            raise UsageError(f"{flag} {value!r}: a drop-in flag may hold only letters, digits and ._:/+,=-")
        if name in VALUES:
            convert(name, value, flag)
        elif not value.startswith("/"):
            raise UsageError(f"{flag} {value!r} must be an absolute path")
        if name == "endpoint":
            parse_endpoint(value)
        words.append(f" {flag} {value}")
    return "".join(words)


def render(unit: str, slug: str, hook: str = HOOK_PATH, flags: str = "", timer: str | None = None) -> str:
    """The drop-in text for ``unit`` monitored as ``slug`` by the hook at ``hook``, each
    hook line given ``flags`` (per-unit settings, e.g. `` --deadline 3``); ``timer`` names the trigger."""
    try:
        with open(TEMPLATE, encoding="utf-8") as f:
            template = f.read()
    except OSError as e:
        raise StateError(f"the drop-in template {TEMPLATE} cannot be read ({e.strerror}):"
                         " reinstall the package") from None
    if not timer:
        template = "".join(line for line in template.splitlines(True) if "@TIMER@" not in line)
    # '%%': systemd hands the hook the specifier itself, which it expands by the slug rule.
    return (template.replace("@UNIT@", unit).replace("@SLUGARG@", slug.replace("%", "%%"))
            .replace("@SLUG@", slug).replace("@HOOK@", hook).replace("@FLAGS@", flags)
            .replace("@TIMER@", timer or ""))


def read_dropin(path: str) -> tuple[str, str | None] | None:
    """(slug, timer) of an existing drop-in of ours, or None when it is not ours."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    if MARKER not in text:
        return None
    timer = next((line[len(TIMER_LINE):].strip() for line in text.splitlines() if line.startswith(TIMER_LINE)), None)
    for line in text.splitlines():
        if line.startswith("ExecStopPost=") and " finish " in line:  # the slug is the last word
            return line.split()[-1].replace("%%", "%"), timer
    return None


def slug_in(path: str) -> str | None:
    """The slug an existing drop-in of ours reports as, or None when it is not ours."""
    found = read_dropin(path)
    return found[0] if found else None
