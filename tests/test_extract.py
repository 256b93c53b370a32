"""NAG extraction: the reference's features exactly, whatever the batching."""
from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from nagindex.backbone import load_backbone
from nagindex.errors import NagindexError
from nagindex.extract import ExtractSettings, Extractor
from nagindex.neurons import NEURON_TYPES

TEXTS = [
    "The mitochondria is the powerhouse of the cell .",
    "Add two cups of flour and stir .",
    "Shares rose three percent on Monday after strong earnings .",
    "A",
    "The team won the match in the final minute after a long season of hard training .",
]


@pytest.fixture(scope="module")
def tiny(tiny_model):
    # float32: the comparisons below are exact, whatever this CPU's default dtype
    return load_backbone(str(tiny_model), "cpu", "float32")


def test_codes_are_top_k_of_impacts_in_descending_order(tiny):
    nags = Extractor(tiny, ExtractSettings(NEURON_TYPES, top_k=5)).extract(TEXTS)
    for t in NEURON_TYPES:
        assert nags.codes[t].shape == (len(TEXTS), 4, 5)
        assert np.all(np.diff(nags.impacts[t], axis=-1) <= 0)
        if t not in ("att_k", "att_v"):   # grouped types repeat each key/value channel
            assert all(len(set(row)) == 5 for row in nags.codes[t].reshape(-1, 5).tolist())


def test_grouped_types_count_every_query_head(tiny):
    ex = Extractor(tiny, ExtractSettings(NEURON_TYPES))
    assert ex.neurons["att_k"] == ex.neurons["att_q"] == 64
    assert ex.neurons["fwd_up"] == 96 and ex.neurons["fwd_down"] == 64


def test_batching_and_order_do_not_change_nags(tiny):
    settings = ExtractSettings(("fwd_up", "att_v"))
    alone = [Extractor(tiny, settings).extract([t]) for t in TEXTS]
    batched = Extractor(tiny, settings, token_budget=64).extract(TEXTS)
    for i, one in enumerate(alone):
        for t in settings.neuron_types:
            np.testing.assert_array_equal(batched.codes[t][i], one.codes[t][0])


def test_only_requested_types_are_computed_and_early_stop_is_exact(tiny):
    full = Extractor(tiny, ExtractSettings(NEURON_TYPES)).extract(TEXTS)
    for t in NEURON_TYPES:
        alone = Extractor(tiny, ExtractSettings((t,))).extract(TEXTS)
        assert set(alone.codes) == {t}
        np.testing.assert_array_equal(alone.codes[t], full.codes[t])


def test_token_counts_are_of_the_whole_text(tiny):
    long = " ".join(["cell"] * 300)
    nags = Extractor(tiny, ExtractSettings(max_length=16)).extract([long, "cell"])
    assert nags.tokens.tolist() == [300, 1]


def test_batches_respect_the_token_budget(tiny):
    ex = Extractor(tiny, token_budget=40)
    ids = [[1] * n for n in (3, 30, 10, 12, 1, 29)]
    seen = []
    for batch in ex.batches(ids):
        assert len(batch) * max(len(ids[i]) for i in batch) <= 40 or len(batch) == 1
        seen.extend(batch.tolist())
    assert sorted(seen) == list(range(len(ids)))


def test_top_k_larger_than_a_layer_is_refused(tiny):
    with pytest.raises(NagindexError, match=r"--top-k 97: fwd_up has 96 neurons per layer"):
        Extractor(tiny, ExtractSettings(top_k=97))


@pytest.mark.backbone
def test_parity_with_reference_features(parity_dir):
    """The paper's own code's features: every fwd_up layer set, >= 99% of the others."""
    extractor = Extractor(load_backbone(dtype="float32"), ExtractSettings(NEURON_TYPES))
    for name in ("pool", "target"):
        docs = pq.read_table(parity_dir / f"{name}.parquet").to_pylist()
        ref = {}
        for line in (parity_dir / f"{name}_features.jsonl").read_text().splitlines():
            rec = json.loads(line)
            ref[rec["docid"]] = rec
        nags = extractor.extract([d["doc"] for d in docs])
        for t in NEURON_TYPES:
            expected = np.array([ref[d["docid"]][f"{t}_feature"]["layer_topk_value_index"] for d in docs]).reshape(len(docs), 30, 20)
            same_set = np.array([[set(a) == set(b) for a, b in zip(x, y)] for x, y in zip(nags.codes[t].tolist(), expected.tolist())])
            if t == "fwd_up":
                assert same_set.all(), f"{name}: {(~same_set).sum()} fwd_up layer sets differ"
                np.testing.assert_array_equal(nags.codes[t], expected)
            else:
                assert same_set.mean() >= 0.99, f"{name} {t}: {same_set.mean():.3%} of layer sets match"


def test_packed_rows_give_the_padded_nags(tiny):
    """Texts packed without padding (positions restarting per text) see only themselves."""
    settings = ExtractSettings(NEURON_TYPES, top_k=5)
    texts = TEXTS + ["", "cell"]
    padded = Extractor(tiny, settings, token_budget=64, packing=False).extract(texts)
    packed = Extractor(tiny, settings, token_budget=1024, packing=True).extract(texts)
    for t in NEURON_TYPES:
        np.testing.assert_array_equal(packed.codes[t][:-2], padded.codes[t][:-2])
        np.testing.assert_allclose(packed.impacts[t], padded.impacts[t], rtol=1e-5, atol=1e-6)


def test_a_stream_of_windows_comes_back_in_order(tiny):
    ex = Extractor(tiny, ExtractSettings(("fwd_up",)))
    windows = [TEXTS[:2], TEXTS[2:], [TEXTS[0]]]
    out = list(ex.extract_stream(iter(windows), lambda w: w))
    assert [w for w, _ in out] == windows
    for window, nags in out:
        np.testing.assert_array_equal(nags.codes["fwd_up"], ex.extract(window).codes["fwd_up"])


def _byte_level_bpe():
    """A byte-level BPE tokenizer (the GPT-2 / Llama 3 / SmolLM kind), trained here on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXTS * 20, trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return PreTrainedTokenizerFast(tokenizer_object=tok)


LONG = [
    " ".join(TEXTS) * 7,
    "  leading spaces,\n\nnew lines\tand tabs   between   words 12345678 , 3.14159 !!! " * 9,
    "x" * 300 + " and then words " * 5,
]


@pytest.mark.parametrize("which", ["word-level", "byte-level BPE"])
def test_long_texts_are_tokenized_in_slices_with_the_same_tokens(tiny, monkeypatch, which):
    from nagindex import extract

    tokenizer = tiny.tokenizer if which == "word-level" else _byte_level_bpe()
    whole = tokenizer(LONG, add_special_tokens=False)["input_ids"]
    monkeypatch.setattr(extract, "SLICE_CHARS", 64)
    ids, counts = extract.tokenize(tokenizer, LONG + ["short one ."], max_length=40)
    assert len(LONG[0]) > 10 * 64
    assert [len(w) for w in whole[:2]] == counts[:2].tolist()
    assert ids[:2] == [w[:40] for w in whole[:2]]
    # 300 characters without a space are cut where they must be: a token may be counted twice there.
    assert 0 <= counts[2] - len(whole[2]) <= len(LONG[2]) // 32
    assert counts[3] == len(tokenizer("short one .", add_special_tokens=False)["input_ids"])
