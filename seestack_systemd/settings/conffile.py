"""The config file as INI text: its [seestack] section, and what it holds that is not used."""

from __future__ import annotations

from seestack_systemd.errors import ConfigError

SECTION = "seestack"


def parse_file(path: str, text: str) -> dict[str, str]:
    """The [seestack] section's settings, plus one '[NAME]' entry per other section (so
    that file_notes can say they are ignored); ConfigError for a file that is not INI."""
    import configparser  # here: start skips this parse unless the file sets one of its directories (sets)

    for number, line in enumerate(text.splitlines(), 1):
        # INI takes an indented line for the value above going on: a key pasted there would
        # become part of that value, and of the error that quotes it. Never quote the line.
        if line[:1] in (" ", "\t") and line.strip() and not line.lstrip().startswith(("#", ";")):
            raise ConfigError(f"{path}, line {number} starts with a space or tab: INI would add it to the setting"
                              " above; remove the indentation, or make it a comment with #")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.MissingSectionHeaderError as e:
        raise ConfigError(f"{path}, line {e.lineno}: settings must follow a [{SECTION}] line") from None
    except configparser.ParsingError as e:
        # Not the line itself: a key pasted on a line of its own would be in the journal.
        number = e.errors[0][0] if e.errors else 0
        raise ConfigError(f"{path}, line {number} is not a 'name = value' setting, a comment or a [section];"
                          " fix it, or make it a comment with #") from None
    except configparser.DuplicateOptionError as e:
        raise ConfigError(f"{path}, line {e.lineno}: {e.option} is set twice in [{e.section}]; keep one") from None
    except configparser.DuplicateSectionError as e:
        raise ConfigError(f"{path}, line {e.lineno}: a second [{e.section}] section; merge the two") from None
    except configparser.Error as e:
        raise ConfigError(f"{path} is not a valid INI file: {' '.join(str(e).split())}") from None
    if not parser.has_section(SECTION):
        if parser.sections():
            raise ConfigError(f"{path} has no [{SECTION}] section: put the settings under a [{SECTION}] line")
        return {}
    values = dict(parser.items(SECTION))
    values.update({f"[{name}]": "" for name in parser.sections() if name != SECTION})
    return values


def file_notes(path: str, file_values: dict[str, str], known: list[str]) -> list[str]:
    """What every command says about a config file's names it does not use: unknown
    keys (a typo such as ``endpiont``) and extra ``[sections]``. One function, so
    ``run``, the hooks and ``check`` word it alike."""
    notes = []
    for name in file_values:
        if name.startswith("["):
            notes.append(f"{path}: settings under {name} are ignored: only [{SECTION}] is read")
        elif name not in known:
            import difflib  # only for a name to correct: the hooks run before every job

            close = difflib.get_close_matches(name, known, 1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            notes.append(f"{path}: unknown setting {name!r} ignored{hint}")
    return notes


def sets(text: str, name: str) -> bool:
    """Whether a line of ``text`` (not a comment) sets ``name``: lets ``start`` skip
    configparser, a third of its run time, when the file cannot change its one setting."""
    return any(line.lstrip().startswith(name) for line in text.splitlines())
