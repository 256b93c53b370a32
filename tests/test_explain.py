"""``nagindex explain``: profiles, characteristic neurons, overlaps, ranking samples, the plot."""
from __future__ import annotations

import json

import numpy as np
import pytest

from query import ScoreSpec, Selector, read_targets
from nagindex.analyses.explain import explain, format_text

from helpers import run


@pytest.mark.parametrize("weighting", ["paper", "idf"])
def test_explanation_describes_each_target(demo_index, demo_corpus, weighting):
    targets = read_targets(demo_corpus / "targets.jsonl")
    ex = explain(Selector(demo_index), targets, ScoreSpec(weighting=weighting), neurons=5, documents=2)
    names = list(targets.groups())
    assert [t.name for t in ex.targets] == names and len(names) == 2
    np.testing.assert_allclose(ex.weights.sum(-1), 1.0, rtol=1e-5)
    for t in ex.targets:
        assert len(t.top_share) == len(t.entropy) == 4
        assert all(0 < s <= 1 for s in t.top_share)
        assert all(0 <= e <= np.log2(96) + 1e-9 for e in t.entropy)
        assert 0 <= t.generic_share <= 1 and t.tied >= 1
        assert len(t.strongest) == 5 and all(0 <= n.layer < 4 and 0 <= n.neuron < 96 for n in t.strongest)
        assert [n.weight for n in t.strongest] == sorted((n.weight for n in t.strongest), reverse=True)
        assert t.distinctive and all(n.lift > 0 and n.target_share * t.examples >= t.support for n in t.distinctive)
        assert [d.position for d in t.documents] == ["top"] * 2 + ["middle"] * 2 + ["bottom"] * 2
        assert [d.rank for d in t.documents][::2] == [1, 30, 59]
        distances = [d.distance for d in t.documents]
        assert distances[0] <= distances[1] <= distances[2] <= distances[4] <= distances[5]
        assert t.distance["min"] == pytest.approx(distances[0]) and t.distance["max"] == pytest.approx(distances[-1])
        assert all(d.snippet and len(d.snippet) <= 100 for d in t.documents)
    jaccard, cosine = np.array(ex.jaccard), np.array(ex.cosine)
    np.testing.assert_allclose(np.diag(jaccard), 1.0)
    np.testing.assert_allclose(np.diag(cosine), 1.0)
    np.testing.assert_allclose(jaccard, jaccard.T)
    assert 0 <= jaccard[0, 1] < 1 and 0 <= jaccard[0, 1] <= cosine[0, 1] + 1e-9


def test_middle_and_bottom_samples_follow_the_ranking(demo_index, demo_corpus):
    sel = Selector(demo_index)
    targets = read_targets(demo_corpus / "targets.jsonl")
    ex = explain(sel, targets, neurons=3, documents=3)
    distance = ex.distances[:, 0]
    ordered = np.sort(distance)
    for d in ex.targets[0].documents:
        assert d.distance == pytest.approx(ordered[d.rank - 1])
    assert "== science_qa" in format_text(ex) and "overlap between targets" in format_text(ex)


def test_explain_command_prints_text_json_and_a_png(demo_index, demo_corpus, tmp_path):
    out = run("explain", demo_corpus / "targets.jsonl", "-i", demo_index, "--neurons", 4).output
    for part in ("concentration per layer", "strongest neurons", "distinctive neurons", "ranking samples",
                 "top ", "middle", "bottom", "overlap between targets", "science_qa", "word_problems"):
        assert part in out
    facts = json.loads(run("explain", demo_corpus / "targets.jsonl", "-i", demo_index, "--json").stdout)   # stdout: the steps go to stderr
    assert {t["name"] for t in facts["targets"]} == {"science_qa", "word_problems"}
    assert {"lift", "layer", "neuron", "weight"} <= set(facts["targets"][0]["distinctive"][0])
    png = tmp_path / "explain.png"
    result = run("explain", demo_corpus / "targets.jsonl", "-i", demo_index, "--plot", png, "--weighting", "idf")
    assert "plot written" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
