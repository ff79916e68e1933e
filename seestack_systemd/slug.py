"""Monitor slugs: the one rule every entry point checks before a slug is used, and the
one rule that turns any other name (a unit's, a template instance's) into a slug."""

from seestack_systemd.errors import InvalidValue

SLUG_RULE = "^[a-z0-9-]+$"
SLUG_MAX_LENGTH = 200
# A set test, not a regex: `start` runs before every job and `re` costs an import.
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
_SLUG_CHARS = _ALNUM | {"-"}
# Specifiers a drop-in's slug may hold. The drop-in passes them to the hook unexpanded
# ('%%i'), and the hook expands them from --unit, so that only the instance part goes
# through the rule: (systemd's letter, what it names).
SPECIFIERS = {
    "i": "the instance name (between '@' and the suffix)",
    "I": "the instance name, unescaped",
    "p": "the prefix (before '@')",
    "P": "the prefix, unescaped",
    "j": "the last '-'-separated part of the prefix",
    "J": "the last part of the prefix, unescaped",
}


def check_slug(slug: str) -> str:
    """Return ``slug`` unchanged, or raise ``InvalidValue`` (a ValueError) saying what is wrong with it.

    Slugs name monitors in the SeeStack console and also name files on disk,
    so the rule is strict: lowercase letters, digits and '-', 1 to 200 characters.
    """
    if not isinstance(slug, str) or not slug:
        raise InvalidValue(f"invalid slug {slug!r}: it is empty; use lowercase letters, digits and '-' ({SLUG_RULE})")
    if len(slug) > SLUG_MAX_LENGTH:
        raise InvalidValue(
            f"invalid slug {slug[:40]!r}...: it has {len(slug)} characters, at most {SLUG_MAX_LENGTH} are allowed"
        )
    if not _SLUG_CHARS.issuperset(slug):
        raise InvalidValue(
            f"invalid slug {slug!r}: use only lowercase letters, digits and '-' ({SLUG_RULE}),"
            f" e.g. {slug_from_name(slug)!r}"
        )
    return slug


def slugify(text: str) -> str:
    """The documented rule: lower case; every run of characters outside [a-z0-9]
    becomes one '-'; leading and trailing '-' are trimmed. ``Main_DB`` -> ``main-db``,
    ``db.example.com`` -> ``db-example-com``. May return ''."""
    out: list = []
    for ch in text.lower():
        if ch in _ALNUM:
            out.append(ch)
        elif out and out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-")


def slug_from_name(name: str) -> str:
    """Derive a valid slug from a unit or job name by :func:`slugify` (``job`` when nothing is left)."""
    return slugify(name)[:SLUG_MAX_LENGTH].strip("-") or "job"


def unescape_unit(text: str) -> str:
    """systemd-escape --unescape: ``-`` is ``/``, ``\\xNN`` a byte."""
    raw = bytearray()
    i = 0
    while i < len(text):
        if text.startswith("\\x", i) and len(text) >= i + 4:
            try:
                raw.append(int(text[i + 2:i + 4], 16))
                i += 4
                continue
            except ValueError:
                pass
        raw.extend(b"/" if text[i] == "-" else text[i].encode("utf-8"))
        i += 1
    return raw.decode("utf-8", "replace")


def _parts(unit: str) -> dict:
    """What each specifier expands to for ``unit`` (``x@Main_DB.service``)."""
    base = unit.rsplit(".", 1)[0] if "." in unit else unit
    prefix, _, instance = base.partition("@")
    last = prefix.rsplit("-", 1)[-1]
    return {"i": instance, "I": unescape_unit(instance), "p": prefix, "P": unescape_unit(prefix),
            "j": last, "J": unescape_unit(last)}


def expand(pattern: str, unit: "str | None") -> str:
    """The slug ``pattern`` (as written in a drop-in, e.g. ``db-dump-%i``) stands for when
    ``unit`` runs: each specifier becomes its value for ``unit`` made a slug by
    :func:`slugify`; ``%%`` is a literal '%'; leading and trailing '-' of the result are
    trimmed (``x-%i`` for ``plain.service``, no instance, is ``x``). Raises ``ValueError``
    when the result is not a valid slug (e.g. empty), or a specifier is used without a unit name."""
    if "%" not in pattern:
        return check_slug(pattern)
    if not unit:
        raise InvalidValue(f"slug {pattern!r} uses specifiers: pass the unit's name with --unit %n")
    values = _parts(unit)
    out: list = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "%" and i + 1 < len(pattern) and (pattern[i + 1] in values or pattern[i + 1] == "%"):
            spec = pattern[i + 1]
            out.append("%" if spec == "%" else slugify(values[spec]))
            i += 2
            continue
        if ch == "%":
            raise InvalidValue(f"slug {pattern!r}: only the specifiers %{', %'.join(SPECIFIERS)} may be used in it")
        out.append(ch)
        i += 1
    slug = "".join(out).strip("-")
    if not slug:
        raise InvalidValue(f"slug {pattern!r} expands to nothing for {unit}: add a fixed part, e.g. 'job-{pattern}'")
    return check_slug(slug)
