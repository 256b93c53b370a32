"""``nagindex ablate`` and the selection-quality tool, on the tiny model."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nagindex.analyses.ablate import ablate, channels, format_table, lm_loss, nag_neurons, random_neurons, split_targets, zeroed
from nagindex.backbone import load_backbone
from nagindex.errors import NagindexError
from nagindex.extract import Extractor
from nagindex.neurons import NEURON_TYPES
from nagindex.settings import ExtractSettings
from query import Selector, read_targets
from query.targets import Targets

from helpers import build, run


@pytest.fixture(scope="module")
def extractor(tiny_model):
    # float32: zeroing a few channels of the tiny model moves its logits by less than a bfloat16 step
    return Extractor(load_backbone(str(tiny_model), "cpu", "float32"), ExtractSettings(NEURON_TYPES))


def outputs(extractor, neuron_type, text="cell energy flour water"):
    """The module's output in every layer, captured after any zeroing hook."""
    seen = {}
    handles = [layer.get_submodule(extractor.backbone.layout.modules[neuron_type]).register_forward_hook(
        lambda mod, inp, out, i=i: seen.__setitem__(i, out.detach().clone()))
        for i, layer in enumerate(extractor.backbone.layers)]
    ids, mask = extractor.pad(extractor.tokenize([text])[0])
    try:
        with torch.inference_mode():
            logits = extractor.backbone.model(input_ids=ids, attention_mask=mask).logits
    finally:
        for h in handles:
            h.remove()
    return seen, logits


@pytest.mark.parametrize("neuron_type", ["fwd_up", "att_k", "att_o"])
def test_zeroing_silences_exactly_the_chosen_channels_and_restores_the_model(extractor, neuron_type):
    before, logits = outputs(extractor, neuron_type)
    width = extractor.neurons[neuron_type]
    chosen = {0: np.array([0, 5, width - 1]), 2: np.array([3])}
    hooks = [len(layer.get_submodule(extractor.backbone.layout.modules[neuron_type])._forward_hooks)
             for layer in extractor.backbone.layers]
    with zeroed(extractor, neuron_type, chosen) as chans:
        during, changed = outputs(extractor, neuron_type)
    after, restored = outputs(extractor, neuron_type)
    for layer, out in during.items():
        zero = chans.get(layer, np.array([], int))
        kept = np.setdiff1d(np.arange(out.shape[-1]), zero)
        assert torch.all(out[..., zero] == 0)
        assert torch.all(out[..., kept].abs().sum((0, 1)) > 0)
    assert not torch.equal(changed, logits)
    assert torch.equal(restored, logits) and all(torch.equal(after[i], before[i]) for i in before)
    assert hooks == [len(layer.get_submodule(extractor.backbone.layout.modules[neuron_type])._forward_hooks)
                     for layer in extractor.backbone.layers]


def test_grouped_neurons_map_to_their_key_value_channel(extractor):
    hd = extractor.head_dim                      # 16; 4 query heads share 2 key/value heads
    neurons = np.array([0, hd + 1, 2 * hd + 2, 3 * hd + 3])
    assert channels(extractor, "att_k", neurons).tolist() == [0, 1, hd + 2, hd + 3]
    assert channels(extractor, "fwd_up", neurons).tolist() == neurons.tolist()


def test_neuron_choice_and_split():
    counts = np.array([[0, 3, 3, 1, 0], [5, 0, 0, 0, 2]], float)
    chosen = nag_neurons(counts, [1, 3], 2)
    assert {k: v.tolist() for k, v in chosen.items()} == {1: [1, 2], 3: [0, 4]}
    rand = random_neurons(5, chosen, np.random.default_rng(0))
    assert all(len(rand[k]) == 2 and not set(rand[k]) & set(chosen[k]) for k in chosen)
    profile, held = split_targets(Targets(list("abcde"), ["x", "y", "x", "x", "y"]))
    assert (profile.texts, held.texts) == (["a", "b", "d"], ["c", "e"])
    with pytest.raises(NagindexError, match="at least 2"):
        split_targets(Targets(["a"], ["x"]))


def test_lm_loss_is_the_mean_token_cross_entropy(extractor):
    texts = ["cell energy flour water", "flour"]
    ids = extractor.tokenize(texts)[0][0]
    with torch.inference_mode():
        logits = extractor.backbone.model(input_ids=torch.tensor([ids])).logits[0, :-1]
    expected = torch.nn.functional.cross_entropy(logits, torch.tensor(ids[1:])).item()
    assert lm_loss(extractor, texts) == pytest.approx(expected, rel=1e-5)   # one-token texts carry no loss


def test_ablation_table(tiny_model, demo, tmp_path):
    index = tmp_path / "i"
    build(tiny_model, demo / "corpus", index)
    results = ablate(Selector(index), read_targets(demo / "targets.jsonl"), seeds=2, control_docs=5)
    assert [r.target for r in results] == ["science_qa", "word_problems"]
    r = results[0]
    assert (r.profile_examples, r.held_out, r.layers, r.width, r.per_layer, r.channels) == (6, 6, 4, 96, 20, 80)
    assert [row.name for row in r.rows] == ["none", "NAG neurons", "random (2 seeds)"]
    assert len(r.rows[2].target) == 2 and r.rows[1].target[0] != r.rows[0].target[0]
    table = format_table(r)
    assert "target loss" in table and "control loss" in table and "±" in table and "5 pool documents" in table
    assert "by highest paper weight" in table
    out = run("ablate", demo / "targets.jsonl", "-i", index, "--seeds", 1, "--per-layer", 3, "--weighting", "idf",
              "--control", demo / "targets.jsonl").output
    assert out.count("NAG neurons") == 2 and "24 given texts" in out and "3 of the 96 fwd_up" in out
    assert "by highest idf weight" in out


def test_selection_quality_tool_runs_end_to_end(tiny_model, tmp_path, capsys):
    from tools import eval_selection
    from tools.labelled_corpus import TOPICS, make_corpus

    sizes = make_corpus(tmp_path / "lab", per_label=12, targets=3)
    assert set(sizes) == set(TOPICS) and all(v == 12 for v in sizes.values())
    eval_selection.main([str(tmp_path / "lab"), "--model", str(tiny_model), "-k", "5,10", "--no-sentence-embedding"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["method", "P@5", "P@10"]
    methods = [line[:29].strip() for line in lines[1:]]
    assert methods == ["random (expected)", "NAG (paper)", "NAG (idf)", "NAG (classifier)", "NAG (auto)", "BM25",
                       "DSIR (hashed n-grams)", "embedding (mean hidden state)"]
    values = np.array([line.split()[-2:] for line in lines[1:]], float)
    assert np.all((values >= 0) & (values <= 1))
    assert values[0] == pytest.approx([1 / 6, 1 / 6], abs=1e-3)
    assert values[5].mean() > 2 * values[0].mean()   # BM25 reads the words; a random tiny model's NAGs need not help


def test_control_text_is_read_by_the_targets_template(tiny_model, demo_index, tmp_path):
    # Records with no "text" field: only the template says where their text is, for targets and control alike.
    records = [json.loads(line) for line in (demo_index.parent / "demo" / "targets.jsonl").read_text().splitlines()]
    targets, control = tmp_path / "targets.jsonl", tmp_path / "control.jsonl"
    targets.write_text("".join(json.dumps({"question": r["text"], "target": r["target"]}) + "\n" for r in records))
    control.write_text("".join(json.dumps({"question": r["text"]}) + "\n" for r in records[:7]))
    out = run("ablate", targets, "-i", demo_index, "--seeds", 1, "--per-layer", 3, "--template", "{{question}}",
              "--control", control).output
    assert out.count("NAG neurons") == 2 and "7 given texts" in out


def test_control_of_several_splits_is_read_by_its_own_split_option(tiny_model, demo_index, tmp_path):
    # The targets hold one split and the control folder two: --split must not decide the control's.
    records = [json.loads(line) for line in (demo_index.parent / "demo" / "targets.jsonl").read_text().splitlines()]
    control = tmp_path / "control"
    for split, rows in (("train", records[:5]), ("test", records[5:8])):
        (control / split).mkdir(parents=True)
        (control / split / "part.jsonl").write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in rows))
    args = ("ablate", demo_index.parent / "demo" / "targets.jsonl", "-i", demo_index, "--seeds", 1, "--per-layer", 3,
            "--control", control)
    refused = run(*args, ok=False)
    assert refused.exit_code != 0 and "several splits (test, train): choose one with --control-split NAME" in refused.output
    assert "3 given texts" in run(*args, "--control-split", "test").output
    assert "no such split" in run(*args, "--control-split", "dev", ok=False).output
    alone = run("ablate", demo_index.parent / "demo" / "targets.jsonl", "-i", demo_index, "--control-split", "test", ok=False)
    assert alone.exit_code == 2 and "give --control too" in alone.output
