"""The demo generator: reproducible, readable in every format, varied enough to be useful."""
from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from nagindex.demo import BOILERPLATE, N_NOTES, N_TARGETS, make_demo

ROOT = Path(__file__).resolve().parents[1]

DOMAINS = {"arithmetic", "cooking", "finance", "history", "science", "software", "sports", "travel"}


def _hashes(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}


def _read_corpus(corpus: Path) -> list[dict]:
    """Every document, read with the plain library for its format."""
    with open(corpus / "web-00.jsonl", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    with gzip.open(corpus / "web-01.jsonl.gz", "rt", encoding="utf-8") as f:
        docs += [json.loads(line) for line in f]
    table = pq.read_table(corpus / "web-02.parquet")
    assert table.column_names == ["id", "text", "domain", "quality"]
    docs += table.to_pylist()
    for p in sorted((corpus / "notes").glob("*.txt")):
        docs.append({"id": p.stem, "text": p.read_text(encoding="utf-8").strip(), "domain": p.stem.split("-")[0]})
    return docs


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, make_demo(out, docs=400, seed=0)


def test_same_seed_gives_identical_files(demo, tmp_path):
    out, _ = demo
    make_demo(tmp_path, docs=400, seed=0)
    assert _hashes(tmp_path) == _hashes(out)


def test_different_seed_gives_different_files(demo, tmp_path):
    out, _ = demo
    make_demo(tmp_path, docs=400, seed=1)
    a, b = _hashes(out), _hashes(tmp_path)
    for name in ("corpus/web-00.jsonl", "corpus/web-01.jsonl.gz", "corpus/web-02.parquet", "targets.jsonl"):
        assert a[name] != b[name], name


def test_gzip_header_has_no_timestamp(demo):
    out, _ = demo
    assert (out / "corpus" / "web-01.jsonl.gz").read_bytes()[4:8] == b"\0\0\0\0"


def test_corpus_is_readable_and_complete(demo):
    out, summary = demo
    docs = _read_corpus(out / "corpus")
    assert len(docs) == summary["docs"] == 400
    ids = [d["id"] for d in docs]
    assert len(set(ids)) == len(ids)
    assert {d["domain"] for d in docs} == DOMAINS == set(summary["domains"])
    assert sum(summary["domains"].values()) == 400
    assert len(list((out / "corpus" / "notes").glob("*.txt"))) == N_NOTES
    assert sum(summary["files"].values()) == 400
    for d in docs:
        assert d["text"] and 30 <= len(d["text"].split()) <= 250, d
        if "quality" in d:
            assert isinstance(d["quality"], float) and 0.0 <= d["quality"] <= 1.0


def test_noise_lowers_quality(demo):
    out, _ = demo
    docs = [d for d in _read_corpus(out / "corpus") if "quality" in d]
    is_noisy = [any(b in d["text"] for b in BOILERPLATE) for d in docs]
    noisy = [d["quality"] for d, n in zip(docs, is_noisy) if n]
    clean = [d["quality"] for d, n in zip(docs, is_noisy) if not n]
    assert noisy and clean and max(noisy) < min(clean)


def test_documents_are_not_near_duplicates(demo):
    out, _ = demo

    def shingles(text):
        w = text.lower().split()
        return {tuple(w[i:i + 3]) for i in range(len(w) - 2)}

    sets = [shingles(d["text"]) for d in _read_corpus(out / "corpus")]
    worst = max(len(a & b) / len(a | b) for a, b in itertools.combinations(sets, 2))
    assert worst < 0.8


def test_targets_have_both_tasks_and_differ_from_corpus(demo):
    out, summary = demo
    with open(out / "targets.jsonl", encoding="utf-8") as f:
        targets = [json.loads(line) for line in f]
    assert all(set(t) == {"text", "target"} for t in targets)
    assert summary["targets"] == {"science_qa": N_TARGETS, "word_problems": N_TARGETS}
    assert len({t["text"] for t in targets}) == len(targets)
    corpus_text = "\n".join(d["text"] for d in _read_corpus(out / "corpus"))
    assert not any(t["text"] in corpus_text for t in targets)
    for t in targets:
        assert "Answer:" in t["text"]
        if t["target"] == "science_qa":
            assert all(f"\n{c}) " in t["text"] for c in "ABCD")


def test_cli_matches_function_and_clears_stale_notes(demo, tmp_path):
    out, _ = demo
    make_demo(tmp_path, docs=400, seed=5)  # leaves notes that seed 0 would not write
    run = subprocess.run([sys.executable, "-m", "nagindex.demo", str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert json.loads(run.stdout)["docs"] == 400
    assert _hashes(tmp_path) == _hashes(out)


def test_rejects_too_few_docs(tmp_path):
    with pytest.raises(ValueError):
        make_demo(tmp_path, docs=3)


def test_the_demo_words_are_the_packaged_data_file(tmp_path):
    """The generator's vocabularies ship as a data file of the package: every template domain in it is written."""
    from importlib.resources import files

    words = json.loads(files("nagindex").joinpath("data", "demo.json").read_text(encoding="utf-8"))
    assert set(words["domains"]) | {"arithmetic"} == DOMAINS
    make_demo(tmp_path / "demo", docs=120, seed=3)
    written = {doc["domain"] for doc in _read_corpus(tmp_path / "demo" / "corpus")}
    assert written == DOMAINS
    boilerplate = set(words["boilerplate"])
    assert any(b in doc["text"] for doc in _read_corpus(tmp_path / "demo" / "corpus") for b in boilerplate)
