"""The labelled pool builders of tools/: labels apart, targets held out, ids unique, the same files every time."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tools import code_corpus, labelled_pool, man_corpus, register_corpus, translation_corpus


def _read(out: Path) -> tuple[list[dict], list[dict]]:
    pool = [json.loads(line) for line in open(out / "corpus" / "pool.jsonl", encoding="utf-8")]
    targets = [json.loads(line) for line in open(out / "targets.jsonl", encoding="utf-8")]
    return pool, targets


def _hash(out: Path) -> str:
    return hashlib.sha256((out / "corpus" / "pool.jsonl").read_bytes() + (out / "targets.jsonl").read_bytes()).hexdigest()


def _build_twice(items, tmp_path: Path, per_label: int = 20, targets: int = 3) -> tuple[list[dict], list[dict]]:
    """Build the pool twice from fresh reads of its source; the files must be byte-identical."""
    sizes = labelled_pool.make_pool(tmp_path / "a", labelled_pool.collect(items()), per_label, targets, seed=0)
    labelled_pool.make_pool(tmp_path / "b", labelled_pool.collect(items()), per_label, targets, seed=0)
    assert _hash(tmp_path / "a") == _hash(tmp_path / "b")
    pool, examples = _read(tmp_path / "a")
    labels = {r["label"] for r in pool}
    assert len(labels) >= 5 and set(sizes) == labels
    assert len({r["id"] for r in pool}) == len(pool)
    assert not {r["text"] for r in examples} & {r["text"] for r in pool}
    assert {r["label"] for r in examples} == labels
    assert all(sum(r["label"] == label for r in examples) == targets for label in labels)
    assert all(labelled_pool.MIN_CHARS <= len(r["text"]) <= labelled_pool.MAX_CHARS for r in pool + examples)
    return pool, examples


def _skip_without(path: Path) -> None:
    if not path.is_dir():
        pytest.skip(f"{path} is absent on this machine: the pool is read from it")


def test_targets_come_from_groups_not_in_the_pool_and_labels_stay_apart(tmp_path):
    body = " filler text to reach the minimum length of a document in every pool." * 2
    items = [(f"l{lab}", f"g{lab}-{g}", f"label {lab} group {g} text {t}{body}")
             for lab in range(5) for g in range(6) for t in range(4)]
    items += [("l0", "g0-0", f"shared{body}"), ("l1", "g1-0", f"shared{body}"),   # under two labels: dropped
              ("l2", "g2-9", "too short"), ("l3", "g3-0", f"label 3 group 0 text 0{body}")]   # short; repeated
    by_label = labelled_pool.collect(items)
    assert f"shared{body}".strip() not in {t for g in by_label.values() for ts in g.values() for t in ts}
    assert sum(len(ts) for ts in by_label["l3"].values()) == 24 and "g2-9" not in by_label["l2"]
    labelled_pool.make_pool(tmp_path, by_label, per_label=10, targets=2, seed=1)
    pool, targets = _read(tmp_path)
    group = {text.strip(): g for _, g, text in items}
    for label in by_label:
        target_groups = {group[r["text"]] for r in targets if r["label"] == label}
        pool_groups = {group[r["text"]] for r in pool if r["label"] == label}
        assert len(target_groups) == 2 and not target_groups & pool_groups
        assert len(pool_groups) == 4     # the pool draws on every remaining group, not the first alone


def test_too_few_groups_is_a_clear_error(tmp_path):
    by_label = {"only": {"g": ["x" * 200]}}
    with pytest.raises(SystemExit, match="label only: only 1 source groups.*--targets 3"):
        labelled_pool.make_pool(tmp_path, by_label, targets=3)


def test_trim_cuts_at_a_line_break():
    text = "\n".join(["word " * 30] * 20)
    trimmed = labelled_pool.trim(text)
    assert len(trimmed) <= labelled_pool.MAX_CHARS and text.startswith(trimmed) and not trimmed.endswith("\n")
    assert labelled_pool.trim("short") is None


def test_code_pool_is_labelled_by_package_domain(tmp_path):
    domains = {"testing": ["pluggy"], "terminal": ["click"], "packaging": ["packaging"], "locking": ["filelock"],
               "http": ["h11"]}
    pool, _ = _build_twice(lambda: code_corpus.items(domains), tmp_path, targets=2)
    assert all(r["text"].startswith(("def ", "async def ", "@")) for r in pool)


def test_code_pool_without_its_packages_says_so():
    with pytest.raises(SystemExit, match="none of the packages no_such_package"):
        list(code_corpus.items({"x": ["no_such_package"]}))


def test_man_pool_is_labelled_by_section(tmp_path):
    _skip_without(man_corpus.MAN)
    pool, _ = _build_twice(man_corpus.items, tmp_path)
    assert {r["label"] for r in pool} == set(man_corpus.SECTIONS.values())
    assert not any(r["text"].lstrip().startswith(".") or "\\f" in r["text"] for r in pool)   # roff reduced to text


def test_man_pool_without_pages_says_so(tmp_path):
    with pytest.raises(SystemExit, match=f"{tmp_path / 'man'} not found"):
        list(man_corpus.items(tmp_path / "man"))


def test_translation_pool_is_labelled_by_language(tmp_path):
    _skip_without(translation_corpus.LOCALE)
    pool, _ = _build_twice(translation_corpus.items, tmp_path)
    assert {r["label"] for r in pool} == set(translation_corpus.LANGUAGES)


def test_translation_pool_without_catalogues_says_so(tmp_path):
    with pytest.raises(SystemExit, match=f"{tmp_path / 'locale'} not found"):
        list(translation_corpus.items(tmp_path / "locale"))


def test_register_pool_mixes_registers(tmp_path):
    _skip_without(register_corpus.DOC)
    _skip_without(man_corpus.MAN)
    pool, _ = _build_twice(lambda: register_corpus.items(["pluggy", "click", "filelock"]), tmp_path)
    assert {r["label"] for r in pool} == {"licence", "changelog", "readme", "docstring", "comment", "manual"}
