"""``nagindex build``: the index on disk, resumable, safe, with clear errors."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

from helpers import as_written_before_id_hashes, build, rows, run, snapshot
from nagindex.errors import IndexStateError
from nagindex.idhash import stable_hashes
from nagindex.index import Index


def test_build_writes_a_complete_index(tiny_model, demo, tmp_path):
    index = tmp_path / "demo.index"
    build(tiny_model, demo / "corpus", index)
    idx = Index(index)
    m = idx.manifest
    assert m["documents"] == 60 and m["layers"] == 4 and m["neurons"] == {"fwd_up": 96}
    assert m["settings"] == {"neuron_types": ["fwd_up"], "top_k": 20, "max_length": 120}
    assert len(m["backbone"]["sha256"]) == 64
    shard = idx.shards[0]
    assert {Path(f["path"]).name for f in shard.meta["files"]} >= {"web-00.jsonl", "web-01.jsonl.gz", "web-02.parquet"}
    assert all({"size", "mtime"} <= set(f) for f in shard.meta["files"])
    assert m["codes"] == "sets" and shard.store.code_shape("fwd_up") == (60, 4, 20)
    codes = shard.store.read_codes("fwd_up", 0, 60)
    assert codes.dtype == np.uint16 and codes.shape == (60, 4, 20)
    assert len(set(idx.ids)) == 60
    assert idx.tokens.min() > 0 and int(idx.tokens.sum()) == m["tokens"]
    assert faiss.read_index(str(shard.path / "vectors.faiss")).ntotal == 60
    assert idx.slot_counts("fwd_up").sum() == 60 * 4 * 20


def test_text_comes_back_from_its_source(tiny_model, demo, tmp_path):
    from query import Selector

    index = tmp_path / "i"
    build(tiny_model, demo / "corpus", index)
    sel = Selector(index)
    texts = sel.texts(np.arange(60))
    originals = {}
    for p in (demo / "corpus").glob("*.jsonl"):
        for line in p.read_text().splitlines():
            rec = json.loads(line)
            originals[rec["id"]] = rec["text"]
    checked = [(i, t) for i, t in zip(sel.index.ids, texts) if i in originals]
    assert checked and all(originals[i] == t for i, t in checked)


def test_default_index_location(tiny_model, demo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run("build", demo / "corpus", "--model", tiny_model, "--quiet")
    assert (tmp_path / "nagindex.index" / "manifest.json").exists()
    monkeypatch.setenv("NAGINDEX_INDEX", str(tmp_path / "elsewhere.index"))
    run("build", demo / "corpus", "--model", tiny_model, "--quiet")
    assert (tmp_path / "elsewhere.index" / "manifest.json").exists()
    assert "documents" in run("info").output


def test_rebuilding_the_same_corpus_is_a_no_op_and_another_is_refused(tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    build(tiny_model, demo / "corpus", index)
    before = (index / "manifest.json").read_text()
    assert "nothing to do" in build(tiny_model, demo / "corpus", index).output
    other = tmp_path / "other.jsonl"
    other.write_text('{"id": "x", "text": "cell energy"}\n')
    result = build(tiny_model, other, index, ok=False)
    assert result.exit_code != 0 and "--append" in result.output
    assert (index / "manifest.json").read_text() == before


def test_append_adds_a_shard_and_refuses_other_settings(tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    build(tiny_model, demo / "corpus" / "web-00.jsonl", index)
    first = snapshot(index)
    build(tiny_model, demo / "corpus" / "web-02.parquet", index, "--append")
    idx = Index(index)
    assert len(idx.shards) == 2 and idx.documents == len(first["ids"]) + idx.shards[1].documents
    assert idx.ids.tolist()[: len(first["ids"])] == first["ids"]
    result = build(tiny_model, demo / "corpus" / "web-01.jsonl.gz", index, "--append", "--top-k", "10", ok=False)
    assert result.exit_code != 0 and "settings" in result.output
    result = build(tiny_model, demo / "corpus" / "web-00.jsonl", index, demo / "corpus" / "web-01.jsonl.gz",
                   "--append", ok=False)
    assert "web-00.jsonl is already in" in result.output
    again = tmp_path / "again.jsonl"
    again.write_text(json.dumps({"id": "new-doc", "text": "a new text"}) + "\n"
                     + json.dumps({"id": first["ids"][3], "text": "another text, an id already indexed"}) + "\n")
    result = build(tiny_model, again, index, "--append", ok=False)
    output = " ".join(result.output.split())
    assert f"again.jsonl, line 2: duplicate id {first['ids'][3]!r}, first seen at shard 00000 of {index} (" in output
    assert "web-00.jsonl, offset" in output and "(already indexed)" in output
    assert Index(index).documents == idx.documents


def _jsonl(path: Path, ids: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": i, "text": f"the text of {i}"}) + "\n" for i in ids))
    return path


@pytest.mark.parametrize("stored_hashes", [True, False], ids=["stored-id-hashes", "written-before-id-hashes"])
def test_an_append_refuses_or_skips_an_id_the_index_holds_naming_it_and_both_files(tiny_model, tmp_path, stored_hashes):
    index = tmp_path / "i"
    build(tiny_model, _jsonl(tmp_path / "a.jsonl", ["a1", "a2", "a3"]), index)
    if not stored_hashes:
        as_written_before_id_hashes(index)
    more = _jsonl(tmp_path / "b.jsonl", ["b1", "a2", "b2"])
    output = " ".join(build(tiny_model, more, index, "--append", ok=False).output.split())
    assert f"b.jsonl, line 2: duplicate id 'a2', first seen at shard 00000 of {index} (" in output
    assert "a.jsonl, offset" in output and Index(index).documents == 3
    shutil.rmtree(index / "shards" / "00001.partial")      # as the refusal of another build's settings says
    assert "skipped 1 bad record" in build(tiny_model, more, index, "--append", "--skip-bad").output
    assert Index(index).ids.tolist() == ["a1", "a2", "a3", "b1", "b2"]
    output = " ".join(build(tiny_model, _jsonl(tmp_path / "c.jsonl", ["c1", "c2", "c1"]), index, "--append",
                            ok=False).output.split())
    assert "c.jsonl, line 3: duplicate id 'c1', first seen at" in output and "c.jsonl, line 1" in output


def test_an_id_sharing_a_hash_with_an_indexed_one_is_not_taken_for_it(tiny_model, tmp_path):
    index = tmp_path / "i"
    build(tiny_model, _jsonl(tmp_path / "a.jsonl", ["a1", "a2", "a3"]), index)
    store = Index(index).shards[0].store
    at, rows = store.find_ids(np.array(["a2", "not-a2"], dtype=object), stable_hashes(["a2", "a2"]))
    assert at.tolist() == [0] and store.ids_of(rows).tolist() == ["a2"]


@pytest.mark.parametrize("option, value, own", [("--text-field", "body", "text"), ("--id-field", "doc_id", "id")])
def test_append_reading_other_fields_is_refused_before_any_work(tiny_model, demo, tmp_path, option, value, own):
    index = tmp_path / "i"
    build(tiny_model, demo / "corpus" / "web-00.jsonl", index)
    before = snapshot(index)
    # No backbone at --model: the refusal comes before one is loaded.
    result = run("build", demo / "corpus" / "web-02.parquet", "-o", index, "--model", tmp_path / "no-model", "--append",
                 option, value, ok=False)
    assert result.exit_code == 1
    assert f"{option} {value}: the index {index} was built with {option} {own}; append with {option} {own}" in result.output
    after = snapshot(index)
    assert after["ids"] == before["ids"] and np.array_equal(after["codes"], before["codes"])
    assert len(Index(index).shards) == 1


def test_interrupted_build_resumes_to_the_same_index(tiny_model, tmp_path):
    from nagindex.demo import make_demo

    make_demo(tmp_path / "big", docs=500, seed=3)
    corpus = tmp_path / "big" / "corpus"
    whole = tmp_path / "whole"
    build(tiny_model, corpus, whole, "--window", "4")
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "nagindex.cli", "build", str(corpus), "-o", str(killed),
           "--model", str(tiny_model), "--window", "4", "--quiet"]
    proc = subprocess.Popen(cmd)
    deadline = time.time() + 120
    while not list(killed.glob("shards/*.partial/part-000005.h5")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    assert not (killed / "manifest.json").exists()
    with pytest.raises(IndexStateError, match="unfinished"):
        Index(killed)
    result = build(tiny_model, corpus, killed, "--window", "4")
    assert "resumed" in result.output
    a, b = snapshot(whole), snapshot(killed)
    assert a["ids"] == b["ids"] and a["tokens"] == b["tokens"]
    np.testing.assert_array_equal(a["codes"], b["codes"])


@pytest.mark.parametrize("line, reason", [
    ("{not json", "JSON"),
    ('{"id": "z", "body": "no text"}', "text"),
    ('{"id": "z", "text": "   "}', "empty"),
    ('{"id": "a0", "text": "again"}', "duplicate"),
])
def test_bad_records_stop_the_build_with_file_and_line(tiny_model, tmp_path, line, reason):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a0", "text": "cell energy"}\n{"id": "a1", "text": "flour water"}\n' + line + "\n")
    result = build(tiny_model, corpus, tmp_path / "i", ok=False)
    assert result.exit_code != 0
    assert "c.jsonl" in result.output and "line 3" in result.output and reason.lower() in result.output.lower()
    assert not (tmp_path / "i" / "manifest.json").exists()


def test_skip_bad_reports_what_was_skipped(tiny_model, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_bytes(b'{"id": "a0", "text": "cell energy"}\n{broken\n{"id": "a2", "text": "\xff\xfe"}\n'
                       b'{"id": "a3", "text": "flour water"}\n')
    result = build(tiny_model, corpus, tmp_path / "i", "--skip-bad")
    assert "skipped 2 bad records" in result.output
    assert Index(tmp_path / "i").ids.tolist() == ["a0", "a3"]
    report = (tmp_path / "i" / "shards" / "00000" / "skipped.jsonl").read_text().splitlines()
    assert [json.loads(r)["where"].endswith(w) for r, w in zip(report, ("line 2", "line 3"))] == [True, True]


def test_a_corpus_of_bad_records_alone_is_named(tiny_model, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_bytes(b'{broken\n{"id": "a2", "text": "\xff\xfe"}\n')
    result = build(tiny_model, corpus, tmp_path / "i", "--skip-bad", ok=False)
    assert result.exit_code != 0
    assert f"the corpus holds no usable document: {corpus} (2 skipped)" in result.output
    assert not (tmp_path / "i" / "manifest.json").exists()


def test_info_reports_sizes(tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    build(tiny_model, demo / "corpus", index)
    out = run("info", index).output
    for word in ("backbone", "documents", "tokens", "size on disk", "bytes/document"):
        assert word in out
    assert "kept as a set" in out
    facts = json.loads(run("info", index, "--json").output)
    assert 4 * 8 <= facts["bytes_per_document"]["codes"]      # a uint64 of bits a layer, at least


def test_missing_index_is_a_clear_error(tmp_path):
    result = run("info", tmp_path / "nowhere", ok=False)
    assert result.exit_code != 0 and "no index here" in result.output


@pytest.mark.parametrize("option, value, says", [("--top-k", "2000", "choose 1..96"), ("--top-k", "0", "x>=1"),
                                                 ("--sketch-dim", "1", "x>=2"), ("--window", "0", "x>=1")])
def test_out_of_range_options_are_one_line_errors(tiny_model, demo, tmp_path, option, value, says):
    result = build(tiny_model, demo / "corpus", tmp_path / "i", option, value, ok=False)
    assert result.exit_code != 0 and says in result.output and "Traceback" not in result.output
    assert not (tmp_path / "i" / "manifest.json").exists()


def test_skip_bad_says_that_the_rest_of_a_cut_file_is_missing(tiny_model, tmp_path):
    import gzip

    lines = b"".join(json.dumps({"id": f"d{i}", "text": "cell energy flour water " * 20}).encode() + b"\n"
                     for i in range(400))
    corpus = tmp_path / "c"
    corpus.mkdir()
    packed = gzip.compress(lines)
    (corpus / "cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    (corpus / "bad.jsonl").write_text('{"id": "x0", "text": "cell"}\n{broken\n')
    result = build(tiny_model, corpus, tmp_path / "i", "--skip-bad")
    assert "skipped 1 bad records and the rest of 1 unreadable file" in result.output
    assert "cut.jsonl.gz, line " in result.output and "the rest of the file is missing" in result.output
    report = [json.loads(r) for r in (tmp_path / "i" / "shards" / "00000" / "skipped.jsonl").read_text().splitlines()]
    assert [r["rest_of_file"] for r in report] == [False, True]


def test_a_dangling_link_in_the_corpus_is_one_line(tiny_model, tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.jsonl").write_text('{"id": "a0", "text": "cell energy"}\n')
    (corpus / "b.jsonl").symlink_to(tmp_path / "gone.jsonl")
    result = build(tiny_model, corpus, tmp_path / "i", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "b.jsonl: a dangling symbolic link" in result.output
    build(tiny_model, corpus, tmp_path / "i", "--skip-bad")
    assert Index(tmp_path / "i").ids.tolist() == ["a0"]


def test_a_record_over_the_size_limit_stops_the_build_or_is_skipped(tiny_model, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"id": "a0", "text": "cell energy"}\n' + json.dumps({"id": "a1", "text": "flour " * 400}) + "\n")
    result = build(tiny_model, corpus, tmp_path / "i", "--max-record-size", "1KB", ok=False)
    assert result.exit_code == 1 and "c.jsonl, line 2: the record is 2,425 bytes, over the limit of 1,024" in result.output
    assert "write a size" in build(tiny_model, corpus, tmp_path / "i", "--max-record-size", "0", ok=False).output
    build(tiny_model, corpus, tmp_path / "j", "--max-record-size", "1KB", "--skip-bad")
    assert Index(tmp_path / "j").ids.tolist() == ["a0"]


def arc_records(prefix: str, n: int) -> list[dict]:
    """ARC-Challenge records, as its Hugging Face export holds them."""
    from test_template import RECORDS

    return [{**RECORDS["arc-challenge"], "id": f"{prefix}-{i}", "question": f"Which gas do plants take in, case {i}?"}
            for i in range(n)]


def write_records(path: Path, records: list[dict]) -> Path:
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture
def arc_corpus(tmp_path) -> tuple[Path, dict[str, str]]:
    """A corpus of ARC records in JSONL and Parquet, and each record's text by the ready template."""
    from nagindex.template import Template

    corpus = tmp_path / "arc"
    corpus.mkdir()
    jsonl, parquet = arc_records("j", 4), arc_records("p", 3)
    write_records(corpus / "arc.jsonl", jsonl)
    write_records(corpus / "arc.parquet", parquet)
    return corpus, {r["id"]: Template("arc-challenge").render(r) for r in jsonl + parquet}


def test_a_corpus_built_with_a_template_gives_back_its_texts_rendered_and_checked(tiny_model, arc_corpus, tmp_path):
    corpus, texts = arc_corpus
    index = tmp_path / "arc.index"
    build(tiny_model, corpus, index, "--template", "arc-challenge")
    targets = write_records(tmp_path / "targets.jsonl", [{"text": "Which gas do plants take in?"}])
    out = rows(run("query", targets, "-i", index, "-k", "7", "--with-text").output)
    assert {r["id"]: r["text"] for r in out} == texts
    assert "template arc-challenge" in run("info", index).output
    # The answer key is part of the text: another one, in as many bytes, is another text.
    path = corpus / "arc.jsonl"
    path.write_text(path.read_text().replace('"answerKey": "B"', '"answerKey": "C"', 1))
    result = run("query", targets, "-i", index, "-k", "7", "--with-text", ok=False)
    assert "arc.jsonl, byte 0: document 'j-0' was indexed here, but its text is not the one indexed" in result.output


def test_a_corpus_record_missing_a_templates_field_stops_the_build_or_is_skipped(tiny_model, arc_corpus, tmp_path):
    corpus, _ = arc_corpus
    with (corpus / "arc.jsonl").open("a") as f:
        f.write(json.dumps({"id": "bad", "question": "Why?", "choices": {"text": ["no"], "label": ["A"]}}) + "\n")
    result = build(tiny_model, corpus, tmp_path / "i", "--template", "arc-challenge", ok=False)
    assert "arc.jsonl, line 5: the template needs a field the record lacks: 'answerKey' is undefined" in result.output
    result = build(tiny_model, corpus, tmp_path / "i", "--template", "mmlu", ok=False)
    assert "an unfinished build with other settings is here (template: " in result.output
    result = build(tiny_model, corpus, tmp_path / "i", "--template", "arc-challenge", "--skip-bad", ok=False)
    assert "an unfinished build with other settings is here (skip_bad: False, now True)" in result.output
    assert "skipped 1 bad records" in build(tiny_model, corpus, tmp_path / "j", "--template", "arc-challenge",
                                            "--skip-bad").output
    assert Index(tmp_path / "j").documents == 7


def test_append_with_another_template_is_refused_naming_it(tiny_model, arc_corpus, tmp_path):
    corpus, _ = arc_corpus
    index = tmp_path / "i"
    build(tiny_model, corpus / "arc.jsonl", index, "--template", "arc-challenge")
    more = write_records(tmp_path / "more.jsonl", arc_records("m", 2))
    # No backbone at --model: the refusal comes before one is loaded.
    result = run("build", more, "-o", index, "--model", tmp_path / "no-model", "--append", "--template", "{{ question }}",
                 ok=False)
    assert result.exit_code == 1
    assert "template: 'Question: {{ question }}\\nAnswer: {{ choices.text[choices.label.index(answerKey)] }}', " \
           "now {{ question }}" in result.output
    result = build(tiny_model, more, index, "--append", ok=False)
    assert "now None" in result.output
    result = build(tiny_model, corpus / "arc.jsonl", index, "--template", "{{ question }}", ok=False)
    assert "already holds this corpus, built with other settings (template: " in result.output
    build(tiny_model, more, index, "--append", "--template", "arc-challenge")
    assert Index(index).documents == 6


def _corpus_with_bad_records(tiny_model, directory: Path, kind: str) -> Path:
    """Two files of ``kind``, with bad records in the first windows and an id of the first file again in the second."""
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    from nagindex.corpus import find_files, read_records
    from nagindex.demo import make_demo

    make_demo(directory / "demo", docs=200, seed=7)
    texts = [r.text for r in read_records(find_files(directory / "demo" / "corpus" / "web-00.jsonl"))]
    corpus = directory / "corpus"
    corpus.mkdir()
    for f, name in enumerate(("a", "b")):
        rows = [{"id": f"{name}{i}", "text": texts[(f * 50 + i) % len(texts)]} for i in range(50)]
        rows[5]["text"] = "   "                             # empty: skipped in the first window
        rows[9]["id"] = rows[1]["id"]                       # a duplicate in the third window
        if f == 1:
            rows[30]["id"] = "a2"                          # first seen in a window finished before the kill
        if kind == ".parquet":
            pq.write_table(pa.Table.from_pylist(rows), corpus / f"{name}.parquet", row_group_size=7)
            continue
        lines = [json.dumps(r) for r in rows]
        lines.insert(2, "{broken")                          # malformed: skipped in the first window
        data = ("\n".join(lines) + "\n").encode()
        (corpus / f"{name}{kind}").write_bytes(gzip.compress(data) if kind.endswith(".gz") else data)
    return corpus


def _everything(index: Path) -> dict:
    """All that the index stores of its one shard: every dataset of the code store, the skipped records, the totals."""
    import h5py

    shard = index / "shards" / "00000"
    out = {}
    with h5py.File(shard / "codes.h5") as f:
        f.visititems(lambda name, obj: out.update({name: obj[...].tolist()}) if isinstance(obj, h5py.Dataset) else None)
    out["skipped"] = (shard / "skipped.jsonl").read_text()
    meta = json.loads((shard / "shard.json").read_text())
    out["meta"] = {k: meta[k] for k in ("documents", "tokens", "skipped", "files")}
    return out


@pytest.mark.parametrize("kind", [".jsonl", ".jsonl.gz", ".parquet"])
def test_a_resumed_build_reads_on_after_the_finished_windows_to_the_same_index(tiny_model, tmp_path, kind):
    import os

    corpus = _corpus_with_bad_records(tiny_model, tmp_path, kind)
    whole = tmp_path / "whole"
    reported = build(tiny_model, corpus, whole, "--window", "4", "--skip-bad").output
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "nagindex.cli", "build", str(corpus), "-o", str(killed), "--model", str(tiny_model),
           "--window", "4", "--skip-bad", "--quiet"]
    proc = subprocess.Popen(cmd)
    deadline = time.time() + 120
    while not list(killed.glob("shards/*.partial/part-000004.h5")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the build finished before it could be killed"
    for part in killed.glob("shards/*.partial/part-*.h5"):      # stopped after exactly three windows
        if int(part.stem.split("-")[1]) >= 3:
            part.unlink()
    first = corpus / f"a{kind}"
    if kind == ".jsonl":
        # What the three finished windows read is not read again: blanking it, size and time kept, changes nothing.
        lines = first.read_bytes().split(b"\n")
        st = first.stat()
        first.write_bytes(b"\n".join(b" " * len(line) for line in lines[:15]) + b"\n" + b"\n".join(lines[15:]))
        os.utime(first, ns=(st.st_atime_ns, st.st_mtime_ns))
    result = build(tiny_model, corpus, killed, "--window", "4", "--skip-bad")
    assert "(12 resumed)" in result.output
    listed = [[line for line in out.splitlines() if line.startswith("  ")] for out in (result.output, reported)]
    assert listed[0] == listed[1] and listed[0]
    assert _everything(killed) == _everything(whole)
    skipped = [json.loads(line) for line in (killed / "shards" / "00000" / "skipped.jsonl").read_text().splitlines()]
    assert "duplicate id 'a2', first seen at" in skipped[-1]["reason"]
    assert skipped[-1]["reason"].endswith("row 2" if kind == ".parquet" else "line 4")


@pytest.mark.parametrize("native", [True, False])
def test_on_cpu_the_index_is_bfloat16_where_the_cpu_computes_it_natively(tiny_model, demo, tmp_path, monkeypatch,
                                                                          native):
    import torch

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    build(tiny_model, demo / "corpus" / "web-00.jsonl", tmp_path / "i", "--device", "cpu")
    assert Index(tmp_path / "i").manifest["dtype"] == ("bfloat16" if native else "float32")
    build(tiny_model, demo / "corpus" / "web-00.jsonl", tmp_path / "f", "--device", "cpu", "--dtype", "float32")
    assert Index(tmp_path / "f").manifest["dtype"] == "float32"
