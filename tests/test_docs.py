"""The README and docs/ pages: every relative link leads somewhere, and the CLI reference is current."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tools.cli_reference import PAGE, reference

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.M)


def _prose(text: str) -> str:
    """The text outside fenced code blocks, where a `#` line is a heading and `[a](b)` a link."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """A heading's anchor by GitHub's rules: its text, lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor of a page; a repeated heading gets -1, -2, … as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(_prose(page.read_text(encoding="utf-8"))):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken_links(page: Path) -> list[str]:
    """The relative links of a page whose file is missing or whose #anchor names no heading there."""
    problems = []
    for target in LINK.findall(CODE_SPAN.sub("", _prose(page.read_text(encoding="utf-8")))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            problems.append(f"{page.name}: {target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{page.name}: {target}: no heading '#{anchor}' in {dest.name}")
    return problems


def test_pages_are_found():
    assert (ROOT / "README.md") in PAGES and (ROOT / "docs" / "cli.md") in PAGES


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    assert broken_links(page) == []


def test_a_broken_link_is_named(tmp_path):
    (tmp_path / "other.md").write_text("# Other page\n\n## Running at scale: `--engine ray`\n\n## Notes\n## Notes\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n"
        "[fine](other.md#running-at-scale---engine-ray) [repeat](other.md#notes-1) [self](#title)\n"
        "[no file](missing.md) [no heading](other.md#nowhere) [no heading here](#elsewhere)\n"
        "`[in code](gone.md)`\n\n```\n# not a heading\n[in a block](gone.md)\n```\n"
        "[web](https://example.org/x#y)\n"
    )
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert "missing.md" in problems[0] and "'#nowhere'" in problems[1] and "'#elsewhere'" in problems[2]


def test_slugs_follow_github():
    assert slug("Does the selection train better? `nagindex proxy`") == "does-the-selection-train-better-nagindex-proxy"
    assert slug("Independent workers: a Slurm array, then `nagindex merge`") == \
        "independent-workers-a-slurm-array-then-nagindex-merge"
    assert slug("Resources per 10^6 documents") == "resources-per-106-documents"


def test_cli_reference_is_current():
    # docs/cli.md is written from the commands' --help by tools/cli_reference.py; rerun it after changing an option.
    assert PAGE.read_text(encoding="utf-8") == reference(), "docs/cli.md is out of date: run python -m tools.cli_reference"
