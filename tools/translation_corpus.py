"""Generate a labelled pool of translated messages, labelled by their language.

The message catalogues programs install (``/usr/share/locale/LANG/LC_MESSAGES/*.mo``)
hold the same interface strings in many languages: a pool where the label is
the language, whatever the program's topic, and where close languages
(Spanish and Portuguese, Italian and Spanish) make some tasks hard, and all
share one alphabet. Each
document is a run of consecutive translated messages of one catalogue, packed
to a few hundred characters, trimmed like every pool; each catalogue is a
group, so a target's messages never come from a catalogue in the pool.

The label is the locale directory the catalogue is installed under. The text
is read from the installed catalogues at run time: the same Debian packages
and seed always yield byte-identical files.

Usage: ``python -m tools.translation_corpus OUT_DIR [--per-label 200] [--targets 16] [--seed 0]``
"""
from __future__ import annotations

import gettext
from collections.abc import Iterator
from pathlib import Path

from . import labelled_pool

LOCALE = Path("/usr/share/locale")
LANGUAGES = ["de", "es", "fr", "it", "pt_BR", "sv"]   # one script: the label is not told by the alphabet
KEPT_OUT = ("fortune", "wordnet")   # texts kept apart for an independent check
CHUNK_CHARS = 400                   # a document: messages until this long


def catalogues(locale: Path = LOCALE, languages: list[str] = LANGUAGES) -> Iterator[tuple[str, Path]]:
    """(language, .mo file) of every installed catalogue of the languages kept, in sorted order."""
    if not locale.is_dir():
        raise SystemExit(f"{locale} not found: the pool is read from the installed message catalogues")
    for language in languages:
        for path in sorted((locale / language / "LC_MESSAGES").glob("*.mo")):
            if not any(k in path.name.lower() for k in KEPT_OUT):
                yield language, path


def messages(path: Path) -> list[str]:
    """The translations of a catalogue, ordered by their original message; the header and plural forms skipped."""
    with open(path, "rb") as f:
        try:
            catalogue = gettext.GNUTranslations(f)._catalog    # the parsed .mo, which gettext does not list otherwise
        except (OSError, UnicodeDecodeError):
            return []
    return [text.strip() for key, text in sorted(catalogue.items(), key=lambda kv: str(kv[0]))
            if isinstance(key, str) and key and text.strip()]


def chunks(texts: list[str]) -> Iterator[str]:
    """Consecutive messages, one a line, until :data:`CHUNK_CHARS` long."""
    current: list[str] = []
    for text in texts:
        current.append(text)
        if sum(map(len, current)) >= CHUNK_CHARS:
            yield "\n".join(current)
            current = []
    if current:
        yield "\n".join(current)


def items(locale: Path = LOCALE, languages: list[str] = LANGUAGES) -> Iterator[labelled_pool.Item]:
    """``(language, catalogue, a run of its messages)`` of every catalogue kept."""
    for language, path in catalogues(locale, languages):
        for text in chunks(messages(path)):
            yield language, path.name, text


def main(argv=None) -> None:
    labelled_pool.main(__doc__, items, argv)


if __name__ == "__main__":
    main()
