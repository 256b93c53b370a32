"""``--weighting classifier``: a logistic regression of each target against a sample of the pool."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import query, rows, run
from nagindex.analyses.ablate import ablate
from nagindex.analyses.explain import explain, format_text
from query import Budget, ScoreSpec, Selector, read_targets
from query.classifier import bitsets, sample_rows

CLASSIFIER = ScoreSpec(weighting="classifier")


def test_the_learned_table_is_scored_exactly_and_separates_the_targets(ordered_index, demo_corpus):
    sel = Selector(ordered_index)     # K' < K takes the codes in impact order
    targets = read_targets(demo_corpus / "targets.jsonl")
    for spec in (CLASSIFIER, ScoreSpec(weighting="classifier", layers=(1, 3), top_k=7)):
        profiles = sel.profiles(targets, spec)
        coef = profiles.weights()                    # [M, L_sel, N], signed
        assert (coef > 0).any() and (coef < 0).any()
        pool = np.concatenate([c for _, c in sel.index.iter_codes("fwd_up")])
        x = bitsets(pool, sel.index.neurons["fwd_up"], profiles.layers, profiles.top_k)
        linear = x @ coef.reshape(len(coef), -1).T / len(profiles.layers)
        np.testing.assert_allclose(sel.similarities(profiles), linear, rtol=1e-5, atol=1e-6)
        # Each target's own examples score above the pool it was fitted against.
        codes = sel.target_codes(targets.texts)["fwd_up"]
        own = bitsets(codes, sel.index.neurons["fwd_up"], profiles.layers, profiles.top_k) @ \
            coef.reshape(len(coef), -1).T / len(profiles.layers)
        for m, rows_ in enumerate(targets.groups().values()):
            assert own[rows_, m].mean() > linear[:, m].max()


def test_the_negative_sample_is_deterministic_and_seeded(demo_index, demo_corpus):
    sel = Selector(demo_index)
    targets = read_targets(demo_corpus / "targets.jsonl")
    a = sel.profiles(targets, ScoreSpec(weighting="classifier", negatives=30)).table
    np.testing.assert_array_equal(a, sel.profiles(targets, ScoreSpec(weighting="classifier", negatives=30)).table)
    assert not np.array_equal(a, sel.profiles(targets, ScoreSpec(weighting="classifier", negatives=30, seed=1)).table)
    rows_ = sample_rows(1000, 10, seed=3)
    assert len(set(rows_)) == 10 and list(rows_) == sorted(rows_) and rows_.max() < 1000
    assert len(sample_rows(5, 4096)) == 5


def test_the_query_command_selects_with_every_option(demo_index, ordered_index, demo_corpus):
    targets = demo_corpus / "targets.jsonl"
    best = rows(query(demo_index, targets, "-k", "10", "--weighting", "classifier").output)
    assert len(best) == 10 and {r["target"] for r in best} == {"science_qa", "word_problems"}
    for target in ("science_qa", "word_problems"):
        mine = [r for r in best if r["target"] == target]
        assert [r["distance"] for r in mine] == sorted(r["distance"] for r in mine)
        assert all(r["distance"] == pytest.approx(1 - r["similarity"]) for r in mine)
    assert rows(query(ordered_index, targets, "--weighting", "classifier", "-k", "10", "--top-k", "5").output)
    for args in (["-k", "10", "--layers", "last"],
                 ["-k", "10", "--negatives", "20", "--negatives-seed", "2"], ["-k", "10", "--quality-field", "quality"],
                 ["--tokens", "900"], ["-k", "10", "--search", "approx", "--oversample", "60"]):
        out = rows(query(demo_index, targets, "--weighting", "classifier", *args).output)
        assert out and {r["target"] for r in out} == {"science_qa", "word_problems"}, args
    out = query(demo_index, targets, "-k", "10", "--weighting", "classifier", "--power", "2", ok=False).output
    assert "--power applies to frequency weightings" in out
    assert "--negatives" in query(demo_index, targets, "-k", "10", "--negatives", "0", ok=False).output


def test_approximate_search_finds_the_exact_selection(demo_index, demo_corpus):
    sel = Selector(demo_index)
    targets = read_targets(demo_corpus / "targets.jsonl")
    exact = sel.select(targets, Budget(documents=8), CLASSIFIER, search="exact").table
    approx = sel.select(targets, Budget(documents=8), CLASSIFIER, search="approx", oversample=60)
    assert approx.table.equals(exact) and "re-scored exactly" in approx.notes[0]


def test_explain_lists_the_strongest_positive_and_negative_neurons(demo_index, demo_corpus):
    ex = explain(Selector(demo_index), read_targets(demo_corpus / "targets.jsonl"), CLASSIFIER, neurons=4, documents=1)
    for t in ex.targets:
        assert len(t.strongest) == 4 and all(n.weight > 0 for n in t.strongest)
        assert len(t.opposing) == 4 and all(n.weight < 0 for n in t.opposing)
        assert [n.weight for n in t.opposing] == sorted(n.weight for n in t.opposing)
        assert all(0 < s <= 1 for s in t.top_share)
    assert "strongest negative neurons" in format_text(ex)
    assert "strongest negative neurons" not in format_text(
        explain(Selector(demo_index), read_targets(demo_corpus / "targets.jsonl"), neurons=4, documents=1))
    out = run("explain", demo_corpus / "targets.jsonl", "-i", demo_index, "--weighting", "classifier", "--json").stdout
    assert json.loads(out)["spec"]["weighting"] == "classifier"


def test_ablate_zeroes_the_largest_positive_coefficients(demo_index, demo_corpus):
    results = ablate(Selector(demo_index), read_targets(demo_corpus / "targets.jsonl"), CLASSIFIER, per_layer=3,
                     seeds=1, control_docs=3)
    assert [r.weighting for r in results] == ["classifier"] * 2
    assert results[0].rows[1].target[0] != results[0].rows[0].target[0]
    out = run("ablate", demo_corpus / "targets.jsonl", "-i", demo_index, "--weighting", "classifier", "--seeds", "1",
              "--per-layer", "2").output
    assert "by highest classifier weight" in out
