"""Generate a labelled pool of technical text labelled by its register, with topics mixed across registers.

In the other pools the label is a topic (or a language, or a section), so a
method that finds the topic finds the label. Here it is not: each label is a
kind of writing (licence terms, a changelog entry, README prose, a docstring, a
code comment, a manual page) and each is drawn from many packages of every
topic, so that a networking docstring must rank above a networking changelog
entry for the docstring task. Topic precision and training value can part here.

Sources, all installed on the machine and read at run time (the same versions
and seed always yield byte-identical files):

- ``licence``: Debian's ``/usr/share/doc/*/copyright`` files and the licence
  files of the installed wheels, a few paragraphs each;
- ``changelog``: entries of Debian's ``/usr/share/doc/*/changelog.Debian.gz``;
- ``readme``: the long descriptions of the installed wheels (``METADATA``),
  code blocks left out, a few paragraphs each;
- ``docstring`` and ``comment``: the docstrings and the comment blocks
  (licence headers left out) of :data:`PACKAGES`' source;
- ``manual``: the DESCRIPTION of the manual pages of every section kept by
  ``tools/man_corpus.py``.

Each package, page or file is a group: a target never shares one with the pool.

Usage: ``python -m tools.register_corpus OUT_DIR [--per-label 200] [--targets 16] [--seed 0]``
"""
from __future__ import annotations

import ast
import gzip
import importlib.metadata
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

from . import labelled_pool, man_corpus
from .code_corpus import package_dir, parsed, sources

DOC = Path("/usr/share/doc")
PACKAGES = ["requests", "urllib3", "click", "rich", "werkzeug", "flask", "jinja2", "h5py", "_pytest", "pluggy",
            "tqdm", "filelock", "packaging", "attr", "pygments", "networkx", "yaml", "fsspec", "pydantic"]
KEPT_OUT = ("nltk", "fortune", "wordnet")   # texts kept apart for an independent check
_ENTRY = re.compile(r"^\S.*\(.*\).*;\s*urgency=", re.MULTILINE)
_FENCE = re.compile(r"^(```|~~~).*?^(```|~~~)\s*$", re.MULTILINE | re.DOTALL)
_HEADER = re.compile(r"copyright|licensed under|license", re.IGNORECASE)


def debian_docs(name: str) -> Iterator[tuple[str, Path]]:
    """(package, file) of every ``/usr/share/doc/*/NAME``, in sorted order."""
    if not DOC.is_dir():
        raise SystemExit(f"{DOC} not found: the licence and changelog registers are read from Debian's package docs")
    for path in sorted(DOC.glob(f"*/{name}")):
        if path.is_file() and not any(k in path.parent.name for k in KEPT_OUT):
            yield path.parent.name, path


def distributions() -> list[importlib.metadata.Distribution]:
    """The installed wheels, sorted by name, each once."""
    out = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name and name not in out and not any(k in name for k in KEPT_OUT):
            out[name] = dist
    return [out[n] for n in sorted(out)]


def licences() -> Iterator[tuple[str, str]]:
    for package, path in debian_docs("copyright"):
        text = path.read_text(encoding="utf-8", errors="replace")
        # Debian's format continues a field on indented lines, with " ." for a blank one.
        text = re.sub(r"^ \.$", "", text, flags=re.MULTILINE).replace("\n ", "\n")
        yield f"debian/{package}", text
    for dist in distributions():
        for file in dist.files or []:
            if re.match(r"(LICEN[CS]E|COPYING)", Path(str(file)).name, re.IGNORECASE):
                yield f"wheel/{dist.metadata['Name'].lower()}", dist.locate_file(file).read_text(errors="replace")


def changelogs() -> Iterator[tuple[str, str]]:
    for package, path in debian_docs("changelog.Debian.gz"):
        text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
        starts = [m.start() for m in _ENTRY.finditer(text)] + [len(text)]
        for a, b in zip(starts, starts[1:]):
            yield f"debian/{package}", text[a:b]


def readmes() -> Iterator[tuple[str, str]]:
    for dist in distributions():
        body = dist.metadata["Description"] or dist.metadata.get_payload() or ""
        yield f"wheel/{dist.metadata['Name'].lower()}", _FENCE.sub("", body)


def source_files(packages: list[str]) -> Iterator[tuple[str, str]]:
    for name in packages:
        root = package_dir(name)
        for path, source in sources(root) if root else []:
            yield f"{name}/{path.relative_to(root)}", source


def docstrings(source: str) -> Iterator[str]:
    tree = parsed(source)
    for node in ast.walk(tree) if tree else []:
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node)
            if doc:
                yield doc


def comments(source: str) -> Iterator[str]:
    """Blocks of comments on consecutive lines, the ``#`` taken off; licence headers left out."""
    block: list[str] = []
    last = -2
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type != tokenize.COMMENT:
                continue
            if tok.start[0] != last + 1 and block:
                yield from _block(block)
                block = []
            block.append(tok.string.lstrip("#").strip())
            last = tok.start[0]
    except (tokenize.TokenError, SyntaxError):
        pass
    yield from _block(block)


def _block(lines: list[str]) -> Iterator[str]:
    text = "\n".join(lines).strip()
    if text and not _HEADER.search(text):
        yield text


def items(packages: list[str] = PACKAGES) -> Iterator[labelled_pool.Item]:
    """``(register, group, text)`` of every source; docstrings and comments from ``packages``' source."""
    for group, text in licences():
        yield from (("licence", group, t) for t in labelled_pool.paragraph_chunks(text))
    for group, text in changelogs():
        yield "changelog", group, text
    for group, text in readmes():
        yield from (("readme", group, t) for t in labelled_pool.paragraph_chunks(text))
    for group, source in source_files(packages):
        yield from (("docstring", group, t) for t in docstrings(source))
        yield from (("comment", group, t) for t in comments(source))
    for _, path in man_corpus.pages():
        yield "manual", f"man/{path.name}", man_corpus.description(man_corpus.read(path))


def main(argv=None) -> None:
    labelled_pool.main(__doc__, items, argv)


if __name__ == "__main__":
    main()
