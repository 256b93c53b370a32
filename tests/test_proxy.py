"""``nagindex proxy``: continued pretraining of a proxy on each selection, loss on held-out target examples."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import run
from nagindex.analyses.proxy import Recipe, format_table, proxy
from query import Selector, read_targets

TOKENS = 400
FAST = Recipe(learning_rate=2e-3, epochs=2, batch_size=4)


@pytest.fixture(scope="module")
def result(demo_index, demo_corpus):
    return proxy(Selector(demo_index), read_targets(demo_corpus / "targets.jsonl"), TOKENS,
                 ["paper", "classifier", "random", "bm25", "embedding", "heldout"], seeds=2, recipe=FAST,
                 progress=False)


def test_training_on_the_held_out_examples_beats_random(result):
    assert result.targets == ["science_qa", "word_problems"] and result.held_out == {"science_qa": 6, "word_problems": 6}
    for t in result.targets:
        assert len(result.after["random"][t]) == 2 and result.after["random"][t][0] != result.after["random"][t][1]
        assert all(len(result.after[m][t]) == 1 for m in result.methods if m != "random")
        # Training on the test text itself is the ceiling: below random, and below the untrained proxy.
        assert result.after["heldout"][t][0] < min(result.after["random"][t]) < result.before[t]
        gain, spread = result.gain("heldout", t)
        assert gain > 0 and spread >= 0
    assert result.gain("heldout")[0] > 0


def test_every_method_trains_within_the_same_budget(result):
    for m in result.methods:
        for t in result.targets:
            assert 0.5 * TOKENS < result.trained[m][t] <= TOKENS, (m, t)


def test_the_table_shows_every_method_and_the_gain_over_random(result):
    table = format_table(result)
    assert table.count("== ") == 3 and "mean over 2 targets" in table
    for m in result.methods:
        assert any(line.startswith(m) for line in table.splitlines())
    assert "gain over random" in table and "±" in table


def test_the_same_run_gives_the_same_numbers(demo_index, demo_corpus, result):
    again = proxy(Selector(demo_index), read_targets(demo_corpus / "targets.jsonl"), TOKENS, ["paper", "random"],
                  seeds=2, recipe=FAST, progress=False)
    assert again.before == result.before
    for m in ("paper", "random"):
        np.testing.assert_allclose([again.after[m][t] for t in again.targets],
                                   [result.after[m][t] for t in result.targets], rtol=1e-5)


def test_the_proxy_command_writes_json_and_a_plot(tiny_model, demo_index, demo_corpus, tmp_path):
    png = tmp_path / "proxy.png"
    out = run("proxy", demo_corpus / "targets.jsonl", "-i", demo_index, "--tokens", "200", "--methods",
              "idf,random,heldout", "--seeds", "2", "--epochs", "1", "--proxy-model", tiny_model, "--json",
              "--quiet", "--plot", png).stdout
    data = json.loads(out)
    assert data["methods"] == ["idf", "random", "heldout"] and data["tokens"] == 200
    assert set(data["gain_over_random"]["heldout"]) == {"science_qa", "word_problems", "mean"}
    assert data["precision"] in {"bfloat16 autocast", "float32"}   # what the losses were trained in
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = run("proxy", demo_corpus / "targets.jsonl", "-i", demo_index, "--methods", "paper,magic", ok=False)
    assert bad.exit_code == 1 and "--methods: unknown magic" in bad.output


def test_the_bm25_baseline_without_bm25s_says_what_to_install(monkeypatch):
    from nagindex.analyses.baselines import bm25_scores
    from nagindex.errors import NagindexError

    monkeypatch.setitem(__import__("sys").modules, "bm25s", None)   # as if it were not installed
    with pytest.raises(NagindexError, match=r"nagindex\[eval\]"):
        bm25_scores(["a pool text"], {"t": ["a target"]})
