"""``nagindex query``: the paper's ranking exactly, budgets, many targets, output."""
from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from helpers import query, rows, run
from nagindex.errors import NagindexError
from nagindex.index import Index
from query import Budget, ScoreSpec, Selector, read_targets
from query.budget import parse_size
from query.profile import parse_layers


@pytest.fixture
def own_index(demo_index, tmp_path) -> Path:
    shutil.copytree(demo_index, tmp_path / "own.index")
    return tmp_path / "own.index"


def paper_distances(demo_index: Path, target_texts: list[str], layers=None, top_k=None) -> np.ndarray:
    """docs/design.md §1.1 written out directly with sets, as a reference."""
    sel = Selector(demo_index)
    t = sel.target_codes(target_texts)["fwd_up"]
    idx = sel.index
    d = np.concatenate([c for _, c in idx.iter_codes("fwd_up")])
    layers = list(range(idx.num_layers)) if layers is None else layers
    K = top_k or idx.top_k
    out = []
    for doc in d:
        sim = 0.0
        for l in layers:
            freq = {}
            for tgt in t:
                for n in tgt[l, :K]:
                    freq[n] = freq.get(n, 0) + 1 / (len(t) * K)
            sim += sum(freq.get(n, 0.0) for n in doc[l, :K])
        out.append(1 - sim / len(layers))
    return np.array(out)


def test_scores_are_the_papers_similarity(ordered_index, demo_corpus):
    demo_index = ordered_index     # K' < K takes the codes in impact order
    targets = read_targets(demo_corpus / "targets.jsonl")
    texts = [x for x, n in zip(targets.texts, targets.names) if n == "science_qa"]
    sel = Selector(demo_index)
    only = type(targets)(texts, ["science_qa"] * len(texts))
    for layers, top_k in ((None, None), ([3], None), ([0, 1, 2], 7)):
        spec = ScoreSpec(layers=tuple(layers) if layers else None, top_k=top_k)
        got = 1 - sel.similarities(sel.profiles(only, spec))[:, 0]
        np.testing.assert_allclose(got, paper_distances(demo_index, texts, layers, top_k), atol=1e-9)


def test_selection_is_ranked_by_distance_then_id(demo_index, demo_corpus):
    out = rows(query(demo_index, demo_corpus / "targets.jsonl", "-k", "20").output)
    assert len(out) == 20 and {r["target"] for r in out} == {"science_qa", "word_problems"}
    for name in ("science_qa", "word_problems"):
        mine = [r for r in out if r["target"] == name]
        assert [r["rank"] for r in mine] == list(range(1, 11))
        keys = [(r["distance"], r["id"]) for r in mine]
        assert keys == sorted(keys)
        assert all(abs(r["similarity"] + r["distance"] - 1) < 1e-12 for r in mine)
        assert set(mine[0]) >= {"id", "target", "rank", "similarity", "distance", "tokens"}


def test_token_and_fraction_budgets(demo_index, demo_corpus):
    idx = Index(demo_index)
    total = int(idx.tokens.sum())
    out = rows(query(demo_index, demo_corpus / "targets.jsonl", "--fraction", "0.2").output)
    for name in ("science_qa", "word_problems"):
        used = sum(r["tokens"] for r in out if r["target"] == name)
        assert 0 < used <= 0.1 * total
    out = rows(query(demo_index, demo_corpus / "targets.jsonl", "--tokens", "1K", "--weight", "science_qa=3").output)
    science = sum(r["tokens"] for r in out if r["target"] == "science_qa")
    problems = sum(r["tokens"] for r in out if r["target"] == "word_problems")
    assert science <= 750 and problems <= 250 and science > problems


def test_budget_larger_than_the_pool_selects_everything_and_says_so(demo_index, demo_corpus):
    result = query(demo_index, demo_corpus / "targets.jsonl", "-k", "1M")
    assert len(rows(result.output)) == 120
    assert "whole pool" in result.output


def test_k_is_the_number_of_documents_returned(demo_index, demo_corpus):
    for k, weights, shares in (("5", (), [3, 2]), ("7", ("--weight", "word_problems=3"), [2, 5]), ("1", (), [1, 0])):
        out = rows(query(demo_index, demo_corpus / "targets.jsonl", "-k", k, *weights).output)
        assert [sum(r["target"] == n for r in out) for n in ("science_qa", "word_problems")] == shares, (k, weights)


@pytest.mark.parametrize("budget", [("-k", "40"), ("--tokens", "2K")])
def test_dedup_fills_each_share_from_its_own_ranking(demo_index, demo_corpus, budget):
    whole = rows(query(demo_index, demo_corpus / "targets.jsonl", "-k", "120").output)
    ranking = {n: [r for r in whole if r["target"] == n] for n in ("science_qa", "word_problems")}
    plain = rows(query(demo_index, demo_corpus / "targets.jsonl", *budget).output)
    assert len({r["id"] for r in plain}) < len(plain)                     # the targets share documents
    result = query(demo_index, demo_corpus / "targets.jsonl", *budget, "--dedup")
    got = rows(result.output)
    taken: set[str] = set()
    for name, share in ranking.items():
        mine = [r for r in plain if r["target"] == name]
        free = [r for r in share if r["id"] not in taken]
        if budget[0] == "-k":
            want = free[:len(mine)]
        else:
            used = np.cumsum([r["tokens"] for r in free])
            want = free[:max(int((used <= 1000).sum()), 1)]
        assert [(r["id"], r["distance"]) for r in got if r["target"] == name] == [(r["id"], r["distance"]) for r in want]
        taken |= {r["id"] for r in want}
    assert len({r["id"] for r in got}) == len(got) and "--dedup passed over" in result.output


def test_quality_field_changes_the_order(demo_index, demo_corpus):
    plain = [r["id"] for r in rows(query(demo_index, demo_corpus / "targets.jsonl", "-k", "120").output)]
    mixed = [r["id"] for r in rows(query(demo_index, demo_corpus / "targets.jsonl", "-k", "120", "--quality-field", "quality").output)]
    assert sorted(plain) == sorted(mixed) and plain != mixed


def test_a_kept_quality_field_is_read_from_the_index(tiny_model, demo_index, demo_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(demo_corpus / "corpus", corpus)
    kept = tmp_path / "kept.index"
    run("build", corpus, "-o", kept, "--model", tiny_model, "--quiet", "--keep-field", "quality")
    shutil.rmtree(corpus)                                   # the query must not need it
    assert "quality" in run("info", kept).output.split("kept fields")[1].splitlines()[0]
    args = ("-k", "120", "--quality-field", "quality", "--invert-quality")
    assert query(kept, demo_corpus / "targets.jsonl", *args).stdout == query(demo_index, demo_corpus / "targets.jsonl", *args).stdout


def test_the_output_carries_the_quality_and_the_combined_score(demo_index, demo_corpus):
    out = rows(query(demo_index, demo_corpus / "targets.jsonl", "-k", "120", "--quality-field", "quality").output)
    records = {}
    for path in (demo_corpus / "corpus").rglob("*.jsonl*"):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as f:
            records.update((r["id"], r.get("quality")) for r in map(json.loads, f))
    records.update(zip(*pq.read_table(demo_corpus / "corpus" / "web-02.parquet", columns=["id", "quality"]).to_pydict().values()))
    for name in ("science_qa", "word_problems"):
        mine = [r for r in out if r["target"] == name]                 # the whole pool, best first
        assert len(mine) == 60 and [r["quality"] for r in mine] == [records.get(r["id"]) for r in mine]
        d = np.array([r["distance"] for r in mine])
        q = np.array([np.nan if r["quality"] is None else -r["quality"] for r in mine])
        want = (d - d.min()) / (d.max() - d.min()) + np.nan_to_num((q - np.nanmin(q)) / (np.nanmax(q) - np.nanmin(q)), nan=1.0)
        np.testing.assert_allclose([r["combined"] for r in mine], want, atol=1e-12)
        assert [(r["combined"], r["id"]) for r in mine] == sorted((r["combined"], r["id"]) for r in mine)


@pytest.mark.parametrize("field,message", [
    ("nosuch", "--quality-field nosuch: no document has a number in the corpus records"),
    ("domain", "web-00.jsonl, byte 0 (document 'arithmetic-0004'): --quality-field 'domain' is str 'arithmetic', not a number"),
])
def test_a_quality_field_that_is_not_a_number_is_refused_by_name(demo_index, demo_corpus, tmp_path, field, message):
    out = tmp_path / "o.jsonl"
    result = query(demo_index, demo_corpus / "targets.jsonl", "-k", "5", "--quality-field", field, "-o", out, ok=False)
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_a_structured_quality_value_names_its_file_and_document(tiny_model, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in [
        {"id": "a", "text": "cell energy", "quality": 0.5}, {"id": "b", "text": "flour water", "quality": {"score": 1}}]))
    index = tmp_path / "i"
    run("build", corpus, "-o", index, "--model", tiny_model, "--quiet")
    result = query(index, corpus, "-k", "1", "--quality-field", "quality", ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output
    second = len(corpus.read_text().splitlines()[0]) + 1
    assert f"{corpus}, byte {second} (document 'b'): --quality-field 'quality' is dict" in result.output


def variant_distances(demo_index: Path, target_texts: list[str], power: float = 1.0, idf: bool = False) -> np.ndarray:
    """The weight variants written out directly: per layer f ** p (over the pool share of each slot
    with idf, smoothed by one), renormalised; the distance is one less the mean over layers."""
    sel = Selector(demo_index)
    t = sel.target_codes(target_texts)["fwd_up"]
    idx = sel.index
    d = np.concatenate([c for _, c in idx.iter_codes("fwd_up")])
    neurons, out = idx.neurons["fwd_up"], np.zeros(len(d))
    for layer in range(idx.num_layers):
        w = (np.bincount(t[:, layer].ravel(), minlength=neurons) / (len(t) * idx.top_k)) ** power
        if idf:
            w = w / ((np.bincount(d[:, layer].ravel(), minlength=neurons) + 1) / (len(d) + 1))
        out += (w / w.sum())[d[:, layer]].sum(axis=1)
    return 1 - out / idx.num_layers


def test_k_prime_scores_the_first_codes_of_an_ordered_index(ordered_index, demo_corpus):
    out = rows(query(ordered_index, demo_corpus / "targets.jsonl", "-k", "10", "--top-k", "5").output)
    assert len(out) == 10


def test_variants_at_query_time(demo_index, demo_corpus):
    for args in (["--layers", "last"], ["--layers", "0-1"]):
        out = rows(query(demo_index, demo_corpus / "targets.jsonl", "-k", "10", *args).output)
        assert len(out) == 10, args
    targets = read_targets(demo_corpus / "targets.jsonl")
    ids = Selector(demo_index).index.ids
    for args, power, idf in ((["--power", "2", "--weighting", "paper"], 2.0, False), (["--weighting", "idf"], 1.0, True),
                             (["--power", "0.5", "--weighting", "idf"], 0.5, True)):
        out = rows(query(demo_index, demo_corpus / "targets.jsonl", "-k", "20", *args).output)
        for name, rows_of in targets.groups().items():
            want = variant_distances(demo_index, [targets.texts[i] for i in rows_of], power, idf)
            mine = [r for r in out if r["target"] == name]
            best = sorted(range(len(want)), key=lambda r: (want[r], ids[r]))[:10]
            np.testing.assert_allclose([r["distance"] for r in mine], want[best], atol=1e-6, err_msg=str(args))
            position = {doc: r for r, doc in enumerate(ids)}
            np.testing.assert_allclose([want[position[r["id"]]] for r in mine], [r["distance"] for r in mine], atol=1e-6)
        plain = rows(query(demo_index, demo_corpus / "targets.jsonl", "-k", "20", "--weighting", "paper").output)
        assert [r["id"] for r in out] != [r["id"] for r in plain], args                  # the variant changes the ranking
    assert "K = 20" in query(demo_index, demo_corpus / "targets.jsonl", "-k", "10", "--top-k", "30", ok=False).output
    assert "holds only" in query(demo_index, demo_corpus / "targets.jsonl", "-k", "10", "--neuron-type", "att_q", ok=False).output


def test_parquet_output_with_text_is_written_whole(demo_index, demo_corpus, tmp_path):
    out = tmp_path / "sel.parquet"
    query(demo_index, demo_corpus / "targets.jsonl", "-k", "6", "--with-text", "-o", out)
    table = pq.read_table(out)
    assert table.num_rows == 6 and all(t for t in table.column("text").to_pylist())
    assert not list(tmp_path.glob(".sel.parquet*"))


def test_targets_are_cached(demo_index, demo_corpus, monkeypatch):
    query(demo_index, demo_corpus / "targets.jsonl", "-k", "5")
    import nagindex.extract

    def fail(*a, **k):
        raise AssertionError("the backbone ran again")

    monkeypatch.setattr(nagindex.extract.Extractor, "extract", fail)
    query(demo_index, demo_corpus / "targets.jsonl", "-k", "5")


def test_bad_input_is_refused_without_output(own_index, tmp_path, demo_corpus):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "o.jsonl"
    said = query(own_index, empty, "-k", "5", "-o", out, ok=False).output
    assert f'{empty}: no target examples found (records need a "text" field)' in said and "[" not in said
    notext = tmp_path / "notext.jsonl"
    notext.write_text('{"question": "why?"}\n')
    assert "line 1" in query(own_index, notext, "-k", "5", "-o", out, ok=False).output
    assert "no index here" in query(tmp_path / "missing", demo_corpus / "targets.jsonl", "-k", "5", ok=False).output
    (own_index / "manifest.json").write_text("{broken")
    assert "damaged" in query(own_index, demo_corpus / "targets.jsonl", "-k", "5", "-o", out, ok=False).output
    assert not out.exists()


def test_targets_of_several_splits_need_one_chosen(demo_index, demo_corpus, tmp_path):
    records = (demo_corpus / "targets.jsonl").read_text().splitlines(keepends=True)
    folder = tmp_path / "targets"
    folder.mkdir()
    (folder / "validation.jsonl").write_text("".join(records[:4]))
    (folder / "test.jsonl").write_text("".join(records[4:]))
    said = query(demo_index, folder, "-k", "5", ok=False).output
    assert f"{folder}: the targets hold several splits (test, validation): choose one with --split NAME" in said
    assert "--append" not in said
    picked = rows(query(demo_index, folder, "-k", "5", "--split", "validation").output)
    assert len(picked) == 5 and {r["target"] for r in picked} <= {json.loads(r)["target"] for r in records[:4]}


def test_a_different_backbone_is_refused(own_index, demo_corpus):
    manifest = json.loads((own_index / "manifest.json").read_text())
    manifest["backbone"]["sha256"] = "0" * 64
    (own_index / "manifest.json").write_text(json.dumps(manifest))
    assert "backbone" in query(own_index, demo_corpus / "targets.jsonl", "-k", "5", ok=False).output


@pytest.mark.parametrize("search", ["exact", "approx"])
@pytest.mark.parametrize("flip", [1, 0], ids=["bit set", "bit cleared"])
def test_a_damaged_code_names_its_file_and_document(own_index, demo_corpus, tmp_path, search, flip):
    codes = next(own_index.glob("shards/*/codes.h5"))
    with h5py.File(codes, "r+") as f:
        bits = f["sets/fwd_up/bits"][7]
        bit = next(i for i in range(64) if (int(bits[0]) >> i) & 1 == flip)
        bits[0] ^= np.uint64(1 << bit)          # a neuron more, or one fewer: the later lists shift
        f["sets/fwd_up/bits"][7] = bits
        damaged = f["ids"][7].decode()
    out = tmp_path / "o.jsonl"
    result = query(own_index, demo_corpus / "targets.jsonl", "-k", "60", "--search", search, "-o", out, ok=False)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)     # reported, not a crash
    assert str(codes) in result.output and repr(damaged) in result.output
    assert "do not match their checksum" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_sizes_and_layers_parse():
    assert parse_size("1M") == 10**6 and parse_size("500K") == 500_000 and parse_size("2B") == 2 * 10**9
    assert parse_size("1.5k") == 1500
    with pytest.raises(NagindexError, match="'lots': write a number"):
        parse_size("lots")
    assert parse_layers("last", 30) == (29,) and parse_layers("0-2,29", 30) == (0, 1, 2, 29)
    assert parse_layers("-1", 30) == (29,)
    with pytest.raises(NagindexError, match="layers run from 0 to 29"):
        parse_layers("31", 30)
    with pytest.raises(NagindexError, match="give exactly one budget"):
        Budget(documents=5, tokens=5)


@pytest.mark.backbone
def test_reference_ranking_is_reproduced(parity_dir, tmp_path):
    """The paper's own ranking of the parity pool: same order, distances within 1e-6."""
    index = tmp_path / "parity.index"
    run("build", parity_dir / "pool.parquet", "-o", index, "--text-field", "doc", "--id-field", "docid", "--quiet",
        "--dtype", "float32")
    out = rows(run("query", parity_dir / "target.parquet", "-i", index, "-k", "20", "--text-field", "doc",
                   "--weighting", "paper").output)
    reference = json.loads((parity_dir / "ranking_fwd_up_k20.json").read_text())
    assert [r["id"] for r in out] == [r["docid"] for r in reference]
    np.testing.assert_allclose([r["distance"] for r in out], [r["nag_distance"] for r in reference], atol=1e-6)
