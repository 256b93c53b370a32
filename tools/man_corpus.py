"""Generate a labelled pool of manual pages, labelled by their section.

The installed manual pages (``/usr/share/man``) are reference prose of another
kind than docstrings, and their sections sort them by what a page describes,
not by topic: user commands (1), system calls (2), library functions (3), file
formats (5), overviews and conventions (7), administration commands (8). Each
document is the DESCRIPTION section of one English page, its roff markup
reduced to text and trimmed like every pool; each page is its own group.

The label is the section the page is installed under. The text is read from the
installed pages at run time: the same Debian packages and seed always yield
byte-identical files.

Usage: ``python -m tools.man_corpus OUT_DIR [--per-label 200] [--targets 16] [--seed 0]``
"""
from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

from . import labelled_pool

MAN = Path("/usr/share/man")
SECTIONS = {"1": "user_commands", "2": "system_calls", "3": "library_functions", "5": "file_formats",
            "7": "overviews", "8": "administration"}
KEPT_OUT = ("fortune", "wordnet")   # texts kept apart for an independent check

_FONT = re.compile(r"\\f(\[[^]]*\]|\(..|.)")
_NAMED = {"em": "\u2014", "en": "\u2013", "bu": "\u2022", "aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'",
          "cq": "'", "co": "\u00a9", "rg": "\u00ae", "mi": "-", "hy": "-", "ti": "~", "ha": "^", "rs": "\\"}
_ESCAPE = re.compile(r"\\(\((..)|\[([^]]*)\]|\*(\(..|\[[^]]*\]|.)|s[-+]?\d|[-e&|^%:cdu0 ~'`.]|\"$)")
_ARGS = re.compile(r'"([^"]*)"|(\S+)')
_FONT_MACROS = {"B", "I", "R", "SM", "SB", "Nm", "Fn", "Xr"}       # their arguments, spaced
_ALTERNATING = {"BI", "BR", "IB", "IR", "RB", "RI"}                 # their arguments, run together


def pages(man: Path = MAN) -> Iterator[tuple[str, Path]]:
    """(label, file) of every English page of the sections kept, in sorted order; links and redirects skipped."""
    if not man.is_dir():
        raise SystemExit(f"{man} not found: the pool is read from the installed manual pages "
                         "(install man-db and packages' pages, or build where they are)")
    for section, label in SECTIONS.items():
        folder = man / f"man{section}"
        for path in sorted(folder.glob("*")) if folder.is_dir() else []:
            if path.is_file() and not path.is_symlink() and not any(k in path.name.lower() for k in KEPT_OUT):
                yield label, path


def read(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8", errors="replace")


def _escape(match: re.Match) -> str:
    name = match.group(2) or match.group(3)
    if name is not None:
        return _NAMED.get(name, "")
    if match.group(4) is not None:
        return ""              # a string register: its value is defined elsewhere
    return {"-": "-", "e": "\\", " ": " ", "~": " ", "'": "'", "`": "`", ".": "."}.get(match.group(1)[:1], "")


def text_line(line: str) -> str:
    return _ESCAPE.sub(_escape, _FONT.sub("", line))


def description(roff: str) -> str:
    """The DESCRIPTION section of a roff (man or mdoc) page as plain text, paragraphs at blank lines."""
    out, inside = [], False
    for line in roff.splitlines():
        if line.startswith((".SH", ".Sh")):
            if inside:
                break
            inside = "DESCRIPTION" in line.upper()
            continue
        if not inside or line.startswith((".\\\"", "'\\\"", '.\\"')):
            continue
        if line.startswith((".", "'")):
            macro, _, rest = line[1:].partition(" ")
            if macro in {"PP", "P", "LP", "Pp", "sp", "br"}:
                out.append("")
            elif macro in _FONT_MACROS | _ALTERNATING and rest:
                joint = "" if macro in _ALTERNATING else " "
                out.append(joint.join(a or b for a, b in _ARGS.findall(text_line(rest))))
            elif macro == "SS":
                out += ["", text_line(rest).strip('"'), ""]
            continue
        out.append(text_line(line))
    paragraphs = re.split(r"\n\s*\n", "\n".join(out))
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def items(man: Path = MAN) -> Iterator[labelled_pool.Item]:
    """``(section, page, its DESCRIPTION)`` of every page kept."""
    for label, path in pages(man):
        text = description(read(path))
        yield label, path.name, text


def main(argv=None) -> None:
    labelled_pool.main(__doc__, items, argv)


if __name__ == "__main__":
    main()
