"""Monitor slugs: the one rule every entry point checks before a slug is used."""

SLUG_RULE = "^[a-z0-9-]+$"
SLUG_MAX_LENGTH = 200
# A set test, not a regex: `start` runs before every job and `re` costs an import.
_SLUG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def check_slug(slug: str) -> str:
    """Return ``slug`` unchanged, or raise ``ValueError`` saying what is wrong with it.

    Slugs name monitors in the SeeStack console and also name files on disk,
    so the rule is strict: lowercase letters, digits and '-', 1 to 200 characters.
    """
    if not isinstance(slug, str) or not slug:
        raise ValueError(f"invalid slug {slug!r}: it is empty; use lowercase letters, digits and '-' ({SLUG_RULE})")
    if len(slug) > SLUG_MAX_LENGTH:
        raise ValueError(
            f"invalid slug {slug[:40]!r}...: it has {len(slug)} characters, at most {SLUG_MAX_LENGTH} are allowed"
        )
    if not _SLUG_CHARS.issuperset(slug):
        raise ValueError(
            f"invalid slug {slug!r}: use only lowercase letters, digits and '-' ({SLUG_RULE}),"
            f" e.g. {slug_from_name(slug)!r}"
        )
    return slug


def slug_from_name(name: str) -> str:
    """Derive a valid slug from a unit or job name: lowercase, other characters to '-'."""
    import re

    derived = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return derived[:SLUG_MAX_LENGTH].strip("-") or "job"
