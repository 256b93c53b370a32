"""Write a labelled pool and its held-out targets: what every pool builder of ``tools/`` shares.

Measuring selection quality needs pools whose right answers are known, of
different kinds, and built from text read at run time from what is installed
on the machine (so no third-party text is ever stored in the repository). A
builder only says where its texts come from: it yields ``(label, group, text)``
items; this module trims, deduplicates, splits and writes them, so that the
same installed versions and seed always yield byte-identical files.

A ``group`` is the unit the text came from (a module file, a manual page, a
catalogue, a package). A label's target examples come from groups none of whose
texts are in the pool, as a task's examples are never in the web crawl, not
even as a neighbouring paragraph of the same page.

Files written: ``OUT_DIR/corpus/pool.jsonl`` (``id``, ``text``, ``label``) and
``OUT_DIR/targets.jsonl`` (``text``, ``target``, ``label``).
"""
from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable, Iterable
from pathlib import Path

MIN_CHARS = 100      # shorter texts ("Return self.") say nothing about their label
MAX_CHARS = 1000     # longer ones are cut at a line break; the backbone reads 120 tokens anyway

Item = tuple[str, str, str]   # (label, group, text)


def trim(text: str) -> str | None:
    """The text cut to :data:`MAX_CHARS` at a line break, or None if shorter than :data:`MIN_CHARS`."""
    text = text.strip()
    if len(text) < MIN_CHARS:
        return None
    if len(text) > MAX_CHARS:
        cut = text.rfind("\n", 0, MAX_CHARS)
        text = text[: cut if cut > MIN_CHARS else MAX_CHARS]
    return text


def paragraph_chunks(text: str) -> list[str]:
    """Consecutive paragraphs (split at blank lines) packed into chunks of at most :data:`MAX_CHARS`.

    Documents of prose sources are a few paragraphs long, not whole files, so a
    long README and a short one weigh alike in the pool.
    """
    out, current = [], ""
    for para in re.split(r"\n\s*\n", text.strip()):
        para = para.strip()
        if current and len(current) + 2 + len(para) > MAX_CHARS:
            out.append(current)
            current = ""
        current = f"{current}\n\n{para}" if current else para
    if current:
        out.append(current)
    return [t for t in map(trim, out) if t]


def collect(items: Iterable[Item]) -> dict[str, dict[str, list[str]]]:
    """Label -> group -> its trimmed texts, sorted; each text once, and a text found under two labels dropped.

    Labels keep the order they first come in, groups and texts are sorted.
    """
    seen: dict[str, tuple[set[str], str]] = {}
    order: dict[str, None] = {}
    for label, group, text in items:
        order.setdefault(label)
        text = trim(text)
        if text is None:
            continue
        labels, first_group = seen.setdefault(text, (set(), group))
        labels.add(label)
        if group < first_group:
            seen[text] = (labels, group)
    out: dict[str, dict[str, list[str]]] = {label: {} for label in order}
    for text, (labels, group) in sorted(seen.items()):
        if len(labels) == 1:
            out[next(iter(labels))].setdefault(group, []).append(text)
    return {label: dict(sorted(groups.items())) for label, groups in out.items()}


def _round_robin(groups: list[list[str]], limit: int) -> list[str]:
    """Up to ``limit`` texts, one from each group in turn, so that no group fills a label alone."""
    out, depth = [], 0
    while len(out) < limit and any(depth < len(g) for g in groups):
        out += [g[depth] for g in groups if depth < len(g)][: limit - len(out)]
        depth += 1
    return out


def split(groups: dict[str, list[str]], label: str, per_label: int, targets: int,
          rng: random.Random, seed: int) -> tuple[list[str], list[str]]:
    """(targets, pool) texts of one label: targets one from each of the first groups, the pool from the rest."""
    names = sorted(groups)
    if len(names) < targets + 1:
        raise SystemExit(f"label {label}: only {len(names)} source groups (files, pages, catalogues) on this "
                         f"machine, fewer than --targets {targets} + 1; lower --targets")
    rng.shuffle(names)
    # Within a group, texts in an order of their own: the label's shuffle stays the same whatever a group holds.
    shuffled = []
    for name in names:
        texts = list(groups[name])
        random.Random(f"{seed}:{label}:{name}").shuffle(texts)
        shuffled.append(texts)
    return [texts[0] for texts in shuffled[:targets]], _round_robin(shuffled[targets:], per_label)


def make_pool(out: str | Path, by_label: dict[str, dict[str, list[str]]], per_label: int = 200,
              targets: int = 16, seed: int = 0) -> dict[str, int]:
    """Write the pool and the targets of ``collect``'s output; return the pool size of each label."""
    out = Path(out)
    rng = random.Random(seed)
    pool, examples = [], []
    for label, groups in by_label.items():
        held_out, texts = split(groups, label, per_label, targets, rng, seed)
        examples += [{"text": t, "target": label, "label": label} for t in held_out]
        pool += [(t, label) for t in texts]
    # Ids carry no hint of the label: the ranking breaks ties by id.
    rng.shuffle(pool)
    (out / "corpus").mkdir(parents=True, exist_ok=True)
    with open(out / "corpus" / "pool.jsonl", "w") as f:
        for i, (text, label) in enumerate(pool):
            f.write(json.dumps({"id": f"doc-{i:05d}", "text": text, "label": label}) + "\n")
    with open(out / "targets.jsonl", "w") as f:
        f.writelines(json.dumps(rec) + "\n" for rec in examples)
    sizes: dict[str, int] = {}
    for _, label in pool:
        sizes[label] = sizes.get(label, 0) + 1
    return sizes


def main(doc: str, items: Callable[[], Iterable[Item]], argv=None, per_label: int = 200, targets: int = 16) -> None:
    """The command line of a pool builder: ``OUT_DIR [--per-label N] [--targets N] [--seed S]``.

    ``doc`` is the builder's module docstring (its first paragraph is the
    description) and ``items`` yields its ``(label, group, text)`` items.
    """
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--per-label", type=int, default=per_label,
                    help="pool documents per label (fewer if the machine has fewer)")
    ap.add_argument("--targets", type=int, default=targets, help="held-out target examples per label")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sizes = make_pool(args.out, collect(items()), args.per_label, args.targets, args.seed)
    print(f"{args.out}: {sum(sizes.values())} pool documents ("
          + ", ".join(f"{k} {v}" for k, v in sizes.items()) + f"), {args.targets} targets per label")
