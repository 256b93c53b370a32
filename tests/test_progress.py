"""What a build and a query tell on stderr while they run: their steps, a total, nothing on stdout."""
from __future__ import annotations

import gzip
import logging
import json
import random
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from nagindex.cli import main
from nagindex.corpus import find_files, read_records
from nagindex.progress import CorpusBar, shown


def invoke(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_a_build_names_its_steps_and_shows_a_total(tiny_model, demo, tmp_path):
    result = invoke("build", demo / "corpus", "-o", tmp_path / "i", "--model", tiny_model, "--window", "16")
    err = result.stderr.lower()
    for step in ("loading the backbone", "reading", "extracting", "merging", "training faiss", "adding"):
        assert step in err, step
    files = find_files(demo / "corpus")
    total = CorpusBar(files).total
    assert total == sum(f.stat().st_size for f in files)           # JSON lines in the corpus: counted in bytes
    assert "100%" in err                                             # a bar with a total, filled at the end
    assert result.stdout == ""


def test_a_parquet_corpus_is_counted_in_documents_from_its_footers(tiny_model, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, n in enumerate((7, 12)):
        pq.write_table(pa.table({"text": [f"the cell splits into two cells {k}" for k in range(n)]}), corpus / f"{i}.parquet")
    assert CorpusBar(find_files(corpus)).total == 19
    result = invoke("build", corpus, "-o", tmp_path / "i", "--model", tiny_model, "--window", "4")
    assert "19 documents" in result.stderr and "100%" in result.stderr


def test_compressed_json_lines_are_counted_by_the_bytes_of_the_file_as_stored(tmp_path):
    rng = random.Random(0)
    path = tmp_path / "big.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for k in range(3000):
            f.write(json.dumps({"text": " ".join(f"{rng.getrandbits(32):08x}" for _ in range(40))}) + "\n")
    size = path.stat().st_size
    bar = CorpusBar([path])
    assert bar.total == size
    where = [bar.at(r) for r in read_records([path])]
    assert where == sorted(where)
    assert where[0] < size / 2 and size * 0.9 <= where[-1] <= size  # the compressed position, not the decompressed


def test_the_extractor_reports_each_forward_batch(tiny_model):
    from nagindex.backbone import load_backbone
    from nagindex.extract import Extractor

    extractor = Extractor(load_backbone(str(tiny_model), "cpu"), token_budget=64)
    texts = [("cell " * (5 + k % 7)).strip() for k in range(40)]
    calls = []
    nags = extractor.extract(texts, lambda n, tokens: calls.append((n, tokens)))
    assert len(calls) > 1 and sum(n for n, _ in calls) == len(texts)
    assert sum(t for _, t in calls) == int(nags.tokens.sum())


def test_a_query_names_its_steps_and_keeps_stdout_pure_jsonl(tiny_model, demo, tmp_path, monkeypatch):
    monkeypatch.setenv("NAGINDEX_CACHE", str(tmp_path / "cache"))     # targets not seen before: a cold query
    invoke("build", demo / "corpus", "-o", tmp_path / "i", "--model", tiny_model, "--quiet")
    result = invoke("query", demo / "targets.jsonl", "-i", tmp_path / "i", "-k", "8", "--with-text")
    err = result.stderr.lower()
    for step in ("loading the index", "loading the backbone", "target examples", "scoring", "fetching", "writing"):
        assert step in err, step
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 8 and all("text" in r for r in rows)
    assert "selected 8 rows of a pool of" in result.stderr


def test_quiet_shows_no_progress(tiny_model, demo, tmp_path):
    built = invoke("build", demo / "corpus", "-o", tmp_path / "i", "--model", tiny_model, "-q")
    queried = invoke("query", demo / "targets.jsonl", "-i", tmp_path / "i", "-k", "8", "--quiet")
    again = invoke("-q", "query", demo / "targets.jsonl", "-i", tmp_path / "i", "-k", "8")
    for result in (built, queried, again):
        err = result.stderr.lower()
        assert not any(step in err for step in ("loading", "extracting", "scoring", "writing", "%|")), err
    # What is left is the result itself: one line for the build, the summary for a query.
    assert len(built.stderr.splitlines()) == 1
    assert "selected 8 rows" in queried.stderr and len(queried.stdout.splitlines()) == 8


def test_quiet_lasts_one_command_even_one_refused(demo):
    for args in (["-q", "build", demo / "corpus", "--shard", "3/2"], ["build", demo / "corpus", "-q", "--shard", "3/2"]):
        refused = CliRunner().invoke(main, [str(a) for a in args])
        assert refused.exit_code == 2 and "'3/2': write i/N" in refused.output
        assert shown()       # the next command in this process shows its progress again


@pytest.mark.parametrize("before", [True, False], ids=["before the command", "after it"])
def test_verbose_logs_each_step_with_its_time(tiny_model, demo, tmp_path, caplog, before):
    args = ["build", demo / "corpus", "-o", tmp_path / "i", "--model", tiny_model, "--window", "16"]
    result = invoke(*(["-v", *args] if before else [*args, "-v"]))
    logged = [r.getMessage() for r in caplog.records]
    finished = [m for m in logged if re.fullmatch(r"merging .*: \d+\.\ds", m)]
    assert finished and any(m.startswith("part 3: 12 documents written") for m in logged)
    # The log goes to stderr above the bar, which stays.
    assert re.search(r"merging .*: \d+\.\ds", result.stderr) and "100%" in result.stderr
