"""``nagindex proxy``: continued pretraining of a proxy on each selection, loss on held-out target examples."""
from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import run
from nagindex.analyses.bootstrap import paired_intervals
from nagindex.analyses.proxy import Recipe, format_tables, proxy
from query import Selector, read_targets

BUDGETS = [150, 300]
FAST = Recipe(learning_rate=2e-3, epochs=2, batch_size=4, sequence_length=32)


@pytest.fixture(scope="module")
def results(demo_index, demo_corpus):
    return proxy(Selector(demo_index), read_targets(demo_corpus / "targets.jsonl"), BUDGETS,
                 ["auto", "paper", "classifier", "random", "bm25", "embedding", "heldout"], seeds=2, recipe=FAST,
                 progress=False)


def test_a_sweep_reports_each_budget_within_its_tokens(results):
    assert [r.tokens for r in results] == BUDGETS
    for r in results:
        for m in r.methods:
            for t in r.targets:
                # Selections stop before the first document that would not fit.
                assert 0 < r.trained[m][t] <= r.tokens, (r.tokens, m, t)
    # The larger budget's selection extends the smaller one's: it trains on more tokens of each.
    small, large = results
    assert all(large.trained[m][t] > small.trained[m][t] for m in small.methods for t in small.targets)
    assert np.mean([large.trained[m][t] for m in large.methods for t in large.targets]) > 0.6 * large.tokens


def test_training_on_the_held_out_examples_beats_random(results):
    r = results[-1]
    assert r.targets == ["science_qa", "word_problems"] and r.held_out == {"science_qa": 6, "word_problems": 6}
    for t in r.targets:
        # Training on the test text itself is the ceiling: below random, and below the untrained proxy.
        assert max(r.after["heldout"][t]) < min(r.after["random"][t]) < r.before[t]
        assert r.intervals("heldout")[t].low > 0
    assert r.intervals("heldout")["mean"].estimate > 0


def test_seeds_vary_the_training_order_of_every_method(results):
    for r in results:
        for m in r.methods:
            for t in r.targets:
                # The same selection (random: not even that) trained in two orders ends at two losses; a
                # selection of one document has one order.
                several = m in ("random", "heldout") or r is results[-1]
                assert len(r.after[m][t]) == 2 and (r.after[m][t][0] != r.after[m][t][1] or not several), (m, t)


def test_each_interval_holds_its_paired_gain(results):
    for r in results:
        for m in r.methods:
            cells = r.intervals(m)
            assert set(cells) == {*r.targets, "mean"}
            for t, cell in cells.items():
                names = r.targets if t == "mean" else [t]
                paired = np.mean([np.subtract(r.after["random"][n], r.after[m][n]) for n in names])
                assert cell.estimate == pytest.approx(paired)
                assert cell.low <= cell.estimate <= cell.high
    # Pairs that disagree give a real interval; one seed gives the point itself per task.
    each, mean = paired_intervals(np.array([[0.1, 0.3], [0.2, 0.5], [0.0, 0.4]]))
    assert each[0].low < each[0].estimate < each[0].high and mean.low < 0.25 < mean.high
    one, _ = paired_intervals(np.array([[0.1, 0.3]]))
    assert one[0].low == one[0].estimate == one[0].high == 0.1


def test_auto_is_trained_as_the_query_would_choose_it(results):
    # The demo's tasks keep 6 examples each to choose with, fewer than auto's folds need: it falls back to paper,
    # selects what paper selects, and says so.
    for r in results:
        assert r.chosen == {"science_qa": "paper", "word_problems": "paper"}
        assert r.trained["auto"] == r.trained["paper"]
        assert "auto chose paper" in format_tables([r])


def test_the_table_shows_every_budget_method_and_interval(results):
    table = format_tables(results)
    assert table.count("== ") == 6 and table.count("mean over 2 targets") == 2
    assert "150 tokens per target" in table and "300 tokens per target" in table
    for m in results[0].methods:
        assert any(line.startswith(m) for line in table.splitlines())
    assert "gain over random [95%]" in table and "±" in table


def test_the_same_run_gives_the_same_numbers(demo_index, demo_corpus, results):
    again = proxy(Selector(demo_index), read_targets(demo_corpus / "targets.jsonl"), BUDGETS[-1:],
                  ["paper", "random"], seeds=2, recipe=FAST, progress=False)[0]
    assert again.before == results[-1].before
    for m in ("paper", "random"):
        np.testing.assert_allclose([again.after[m][t] for t in again.targets],
                                   [results[-1].after[m][t] for t in again.targets], rtol=1e-5)


def test_the_proxy_command_writes_json_and_a_plot(tiny_model, demo_index, demo_corpus, tmp_path):
    png = tmp_path / "proxy.png"
    out = run("proxy", demo_corpus / "targets.jsonl", "-i", demo_index, "--tokens", "100,200", "--methods",
              "idf,random,heldout", "--seeds", "2", "--epochs", "1", "--sequence-length", "32", "--proxy-model",
              tiny_model, "--json", "--quiet", "--plot", png).stdout
    data = json.loads(out)
    assert [d["tokens"] for d in data] == [100, 200]
    for d in data:
        assert d["methods"] == ["idf", "random", "heldout"] and d["seeds"] == 2
        assert d["precision"] in {"bfloat16 autocast", "float32"}   # what the losses were trained in
        assert d["interval"]["level"] == 0.95
        for m in d["methods"]:
            assert set(d["gain_over_random"][m]) == {"science_qa", "word_problems", "mean"}
            assert all(len(d["after"][m][t]) == 2 for t in d["targets"])
        cell = d["gain_over_random"]["heldout"]["mean"]
        assert set(cell) == {"estimate", "low", "high"} and cell["low"] <= cell["estimate"] <= cell["high"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = run("proxy", demo_corpus / "targets.jsonl", "-i", demo_index, "--methods", "paper,magic", ok=False)
    assert bad.exit_code == 1 and "--methods: unknown magic" in bad.output
    bad = run("proxy", demo_corpus / "targets.jsonl", "-i", demo_index, "--methods", "paper,heldout", ok=False)
    assert bad.exit_code == 1 and "add random" in bad.output


def test_the_bm25_baseline_without_bm25s_says_what_to_install(monkeypatch):
    from nagindex.analyses.baselines import bm25_scores
    from nagindex.errors import NagindexError

    monkeypatch.setitem(__import__("sys").modules, "bm25s", None)   # as if it were not installed
    with pytest.raises(NagindexError, match=r"nagindex\[eval\]"):
        bm25_scores(["a pool text"], {"t": ["a target"]})
