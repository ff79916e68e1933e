"""Command lines as the README and the man page show them, and the man page's option lists.

Shared by the docs tests: each line shown to a reader is found here, so a new example
in either document is a test's business at once.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Set

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.join(ROOT, "README.md")
MANPAGE = os.path.join(ROOT, "packaging", "seestack-hook.1")
_ROFF = ((r"\-", "-"), (r"\(aq", "'"), (r"\(dq", '"'), (r"\fB", ""), (r"\fI", ""), (r"\fP", ""), (r"\fR", ""),
         (r"\&", ""), (r"\e", "\\"))
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z-]*|-[ho])\b")


def unroff(line: str) -> str:
    """A man page source line as the reader sees its text."""
    for escape, text in _ROFF:
        line = line.replace(escape, text)
    return line


def _joined(lines: List[str]) -> List[str]:
    """Lines with shell continuations (a trailing backslash) joined into one."""
    out: List[str] = []
    for line in lines:
        if out and out[-1].endswith("\\"):
            out[-1] = out[-1][:-1].rstrip() + " " + line.strip()
        else:
            out.append(line.rstrip())
    return [line for line in out if line.strip() and not line.lstrip().startswith("#")]


def readme_lines(path: str = README) -> List[str]:
    """Every line of the README's ```sh and ```cron blocks, in order (comments alone left out)."""
    lines: List[str] = []
    block: List[str] | None = None
    for line in open(path, encoding="utf-8").read().splitlines():
        if block is None and re.match(r"^```(sh|cron)\s*$", line):
            block = []
        elif block is not None and line.startswith("```"):
            lines += _joined(block)
            block = None
        elif block is not None:
            block.append(line)
    return lines


def man_lines(path: str = MANPAGE) -> List[str]:
    """Every line of the man page's examples: the .nf blocks after "Example" and in EXAMPLES."""
    lines: List[str] = []
    source = open(path, encoding="utf-8").read().splitlines()
    section, block, wanted, recent = "", None, False, ""
    for line in source:
        if line.startswith(".SH "):
            section = line[4:].strip()
        if block is None and line == ".nf":
            block, wanted = [], section == "EXAMPLES" or recent.startswith("Example")
        elif block is not None and line == ".fi":
            if wanted:
                lines += _joined([unroff(text) for text in block])
            block = None
        elif block is not None:
            block.append(line)
        elif not line.startswith(".RS") and not line.startswith(".PP"):
            recent = line
    return lines


def _sections(path: str, level: str) -> Dict[str, List[str]]:
    """The man page's sections at ``level`` (".SH" or ".SS"): first word of the title -> lines."""
    out: Dict[str, List[str]] = {}
    current = None
    for line in open(path, encoding="utf-8").read().splitlines():
        if line.startswith((".SH ", ".SS ")):
            current = unroff(line[4:]).split()[0].strip('"') if line.startswith(level + " ") else None
            if current is not None:
                out[current] = []
        elif current is not None:
            out[current].append(line)
    return out


def plain(lines: List[str]) -> str:
    """Roff source lines as one line of the text a reader sees (macros dropped)."""
    words = []
    for line in lines:
        if line.startswith(".\\\""):
            continue
        if line.startswith("."):
            line = line.split(None, 1)[1] if " " in line else ""
        words.append(unroff(line).replace('"', ""))
    text = " ".join(" ".join(words).split())
    return re.sub(r"([(\[]) ", r"\1", re.sub(r" ([)\].,:;])", r"\1", text))


def tagged_options(lines: List[str]) -> Set[str]:
    """The options a section documents: those on the line after each .TP, and those of a
    "Takes --x and --y as enable does" sentence."""
    found: Set[str] = set()
    for before, line in zip(lines, lines[1:]):
        if before.startswith(".TP"):
            found.update(_OPTION.findall(unroff(line)))
    for borrowed in re.findall(r"Takes (.*?) as [a-z]+ does", plain(lines)):
        found.update(_OPTION.findall(borrowed))
    return found


def paragraph_after(lines: List[str], option: str) -> List[str]:
    """The lines of the .TP entry whose tag names ``option``, up to the next .TP/.PP/.SH."""
    for i, (before, line) in enumerate(zip(lines, lines[1:])):
        if before.startswith(".TP") and option in _OPTION.findall(unroff(line)):
            rest = []
            for text in lines[i + 2:]:
                if text.startswith((".TP", ".PP", ".SH", ".SS")):
                    break
                rest.append(text)
            return rest
    return []


def command_sections(path: str = MANPAGE) -> Dict[str, List[str]]:
    """COMMANDS' subsections, by command name."""
    return _sections(path, ".SS")


def top_sections(path: str = MANPAGE) -> Dict[str, List[str]]:
    return _sections(path, ".SH")


def synopsis(path: str = MANPAGE) -> Dict[str, str]:
    """SYNOPSIS: command -> its line's text (options and operands), as the reader sees it."""
    lines = top_sections(path)["SYNOPSIS"]
    out: Dict[str, str] = {}
    for chunk in "\n".join(lines).split(".br"):
        words = unroff(" ".join(l.split(None, 1)[1] if l.startswith(".") and " " in l else l
                                for l in chunk.strip().splitlines())).split()
        if len(words) >= 2 and words[0] == "seestack-hook" and not words[1].startswith("["):
            out[words[1]] = " ".join(words[2:])
    return out


def options_in(text: str) -> Set[str]:
    return set(_OPTION.findall(text))
