"""``--weighting auto``: each task's weighting chosen from held-out folds of its own examples."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import query, rows, run
from nagindex.errors import InputError
from query import Budget, ScoreSpec, Selector, read_targets
from query.auto import CANDIDATES, Candidate, Score, best, choose_profiles
from query.output import MANIFEST

NAMES = {c.name for c in CANDIDATES if "bm25" not in c.parts}     # the demo index keeps no term statistics


def _manifest(index, targets, out, *args):
    result = query(index, targets, "-k", "20", "-o", f"{out}/", *args)
    return json.loads((out / MANIFEST).read_text()), result


def _selected(out, target):
    import pyarrow.parquet as pq

    table = pq.read_table(sorted(out.glob("part-*.parquet"))).to_pylist()
    return [(r["id"], round(r["distance"], 9)) for r in table if r["target"] == target]


def test_auto_is_the_default_and_records_each_tasks_choice(demo_index, demo_corpus, tmp_path):
    manifest, result = _manifest(demo_index, demo_corpus / "targets.jsonl", tmp_path / "auto")
    assert manifest["scoring"]["weighting"] == "auto"
    choices = manifest["weighting_choice"]
    assert [c["target"] for c in choices] == ["science_qa", "word_problems"]
    for c in choices:
        assert c["examples"] == 12 and c["folds"] == 4 and c["weighting"] in NAMES
        scores = {s["weighting"]: s for s in c["candidates"]}
        assert set(scores) == NAMES and all(0 < s["score"] <= 1 for s in scores.values())
        best = max(s["score"] for s in scores.values())
        # The choice is the best on average, the simplest of exact ties.
        chosen = scores[c["weighting"]]
        assert chosen["score"] == best and chosen["behind_best"] == 0
        simpler = [s for s in c["candidates"][:[s["weighting"] for s in c["candidates"]].index(c["weighting"])]]
        assert all(s["score"] < best for s in simpler)
        for s in scores.values():
            assert best - s["score"] == pytest.approx(s["behind_best"])
    assert "weighting auto chose" in result.stderr and "science_qa" in result.stderr
    # The paper or idf weighting chosen scores the task exactly as naming it does.
    for c in choices:
        if c["weighting"] in ("paper", "idf"):
            _manifest(demo_index, demo_corpus / "targets.jsonl", tmp_path / c["weighting"], "--weighting", c["weighting"])
            assert _selected(tmp_path / "auto", c["target"]) == _selected(tmp_path / c["weighting"], c["target"])


def test_explain_shows_the_choice_and_its_evidence(demo_index, demo_corpus, tmp_path):
    manifest, _ = _manifest(demo_index, demo_corpus / "targets.jsonl", tmp_path / "auto")
    out = json.loads(run("explain", demo_corpus / "targets.jsonl", "-i", demo_index, "--json", "--documents", 1).stdout)
    assert out["spec"]["weighting"] == "auto" and out["weighting_choice"] == manifest["weighting_choice"]
    text = run("explain", demo_corpus / "targets.jsonl", "-i", demo_index, "--documents", 1).stdout
    for c in manifest["weighting_choice"]:
        assert f"{c['target']}: {c['weighting']}" in text


def test_a_task_with_too_few_examples_keeps_the_paper_weighting_and_says_so(demo_index, demo_corpus, tmp_path):
    records = [json.loads(line) for line in (demo_corpus / "targets.jsonl").read_text().splitlines()]
    few = [r for r in records if r["target"] == "science_qa"][:7] + [r for r in records if r["target"] == "word_problems"]
    targets = tmp_path / "few.jsonl"
    targets.write_text("".join(json.dumps(r) + "\n" for r in few))
    manifest, result = _manifest(demo_index, targets, tmp_path / "auto")
    said = [line for line in result.stderr.splitlines() if "'science_qa' has 7 examples" in line]
    assert len(said) == 1 and "paper weighting" in said[0]
    science, words = manifest["weighting_choice"]
    assert science["weighting"] == "paper" and "fewer than 8" in science["reason"] and "candidates" not in science
    assert words["weighting"] in NAMES and len(words["candidates"]) == len(NAMES)
    _manifest(demo_index, targets, tmp_path / "paper", "--weighting", "paper")
    assert _selected(tmp_path / "auto", "science_qa") == _selected(tmp_path / "paper", "science_qa")


def test_a_named_weighting_wins(demo_index, demo_corpus, tmp_path):
    manifest, result = _manifest(demo_index, demo_corpus / "targets.jsonl", tmp_path / "idf", "--weighting", "idf")
    assert manifest["scoring"]["weighting"] == "idf" and manifest["weighting_choice"] is None
    assert "weighting auto" not in result.stderr
    sel = Selector(demo_index)
    idf = sel.select(read_targets(demo_corpus / "targets.jsonl"), Budget(documents=20), ScoreSpec(weighting="idf"))
    assert [(r["id"], round(r["distance"], 9)) for r in idf.table.to_pylist() if r["target"] == "word_problems"] == \
        _selected(tmp_path / "idf", "word_problems")


def test_a_task_without_examples_is_an_error_naming_it(demo_index, demo_corpus):
    sel = Selector(demo_index)
    codes = sel.target_codes(read_targets(demo_corpus / "targets.jsonl").texts)["fwd_up"]
    with pytest.raises(InputError, match="'chemistry' has no examples"):
        choose_profiles(sel.index, {"science_qa": codes[:12], "chemistry": codes[:0]}, ScoreSpec(weighting="auto"))


def test_the_same_inputs_make_the_same_choice(demo_index, demo_corpus, tmp_path):
    first, _ = _manifest(demo_index, demo_corpus / "targets.jsonl", tmp_path / "a")
    second, _ = _manifest(demo_index, demo_corpus / "targets.jsonl", tmp_path / "b")
    assert first["weighting_choice"] == second["weighting_choice"]
    for target in ("science_qa", "word_problems"):
        assert _selected(tmp_path / "a", target) == _selected(tmp_path / "b", target)


def test_ties_keep_the_simplest_candidate():
    ranks = np.array([1.0, 0.5, 0.25, 0.2, 0.75, 0.1, 0.5, 0.9])
    paper, idf, fused = Candidate(("paper",)), Candidate(("idf",)), Candidate(("paper", "idf"))
    assert best({paper: Score(ranks), idf: Score(ranks.copy()), fused: Score(ranks)}) == paper
    # Ahead on average, even by one example, is ahead: no margin keeps the simpler one.
    assert best({paper: Score(ranks), idf: Score(np.r_[ranks[:-1], 0.95])}) == idf
    assert best({paper: Score(ranks + 0.05), idf: Score(ranks), fused: Score(ranks + 0.05)}) == paper
