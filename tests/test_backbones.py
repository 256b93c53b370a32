"""The paper's backbones (Qwen3 with its q/k norms, Llama-3.2) through the layout table.

Each test model is a tiny random one of the architecture, built from its
transformers config. Its NAGs are checked against the impacts recomputed
without hooks: each layer's projections redone by hand from the hidden states
the model returns (``output_hidden_states``) and its weights, the attention
included, then the mean of ``|.|`` over the text's tokens and the top K.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nagindex.backbone import load_backbone
from nagindex.extract import ExtractSettings, Extractor
from nagindex.neurons import NEURON_TYPES

K = 6
LENGTHS = (17, 5, 30, 1, 12, 23)


def _qwen3(vocab: int):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    # head_dim is not hidden / heads, as in Qwen3-0.6B (1024 hidden, 16 heads of 128).
    return Qwen3ForCausalLM(Qwen3Config(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                                        num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                                        max_position_embeddings=256, tie_word_embeddings=True, pad_token_id=0))


def _llama32(vocab: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    # Llama-3.2's shape: tied embeddings, grouped key-value heads, llama3 rope scaling.
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                                        num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=256,
                                        rope_parameters=rope, tie_word_embeddings=True, pad_token_id=0))


@pytest.fixture(scope="module", params=[_qwen3, _llama32], ids=["qwen3", "llama-3.2"])
def backbone(request, tiny_model, tmp_path_factory):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    torch.manual_seed(1)
    model = request.param(len(tokenizer))
    path = tmp_path_factory.mktemp(request.param.__name__.strip("_"))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return load_backbone(str(path), "cpu", "float32")


def _rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@torch.inference_mode()
def reference_impacts(backbone, ids: list[int]) -> dict[str, np.ndarray]:
    """Per type ``[L, N]``: the impacts of one text, recomputed from hidden states and weights."""
    model, cfg = backbone.model, backbone.config
    H, KV = cfg.num_attention_heads, cfg.num_key_value_heads
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // H
    x = torch.tensor([ids])
    out = model.model(input_ids=x, output_hidden_states=True, use_cache=False)
    positions = torch.arange(len(ids))[None]
    cos, sin = model.model.rotary_emb(out.hidden_states[0], positions)
    causal = torch.ones(len(ids), len(ids), dtype=torch.bool).tril()
    impacts: dict[str, list[np.ndarray]] = {t: [] for t in NEURON_TYPES}
    for l, layer in enumerate(model.model.layers):
        attn, mlp = layer.self_attn, layer.mlp
        h = out.hidden_states[l][0]
        a = layer.input_layernorm(h)
        q, k, v = (F.linear(a, p.weight, p.bias) for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        qh, kh, vh = (t.view(len(ids), -1, hd).transpose(0, 1) for t in (q, k, v))
        if hasattr(attn, "q_norm"):      # Qwen3: RMS norm over each head, before rotary
            qh, kh = attn.q_norm(qh), attn.k_norm(kh)
        qh = qh * cos + _rotate_half(qh) * sin
        kh = kh * cos + _rotate_half(kh) * sin
        kh, vh = kh.repeat_interleave(H // KV, 0), vh.repeat_interleave(H // KV, 0)
        scores = (qh @ kh.transpose(1, 2)) * hd ** -0.5
        o = (scores.masked_fill(~causal, float("-inf")).softmax(-1) @ vh).transpose(0, 1).reshape(len(ids), -1)
        o = F.linear(o, attn.o_proj.weight, attn.o_proj.bias)
        mid = h + o
        b = layer.post_attention_layernorm(mid)
        up = F.linear(b, mlp.up_proj.weight)
        down = F.linear(F.silu(F.linear(b, mlp.gate_proj.weight)) * up, mlp.down_proj.weight)
        after = mid + down
        # The recomputation is the model's own layer: it lands on the next hidden state.
        expected = out.hidden_states[l + 1][0]
        torch.testing.assert_close(model.model.norm(after) if l == len(model.model.layers) - 1 else after, expected,
                                   rtol=1e-4, atol=1e-5)

        def grouped(t):
            return t.view(len(ids), KV, 1, hd).expand(len(ids), KV, H // KV, hd).reshape(len(ids), -1)

        for t, value in (("att_q", q), ("att_k", grouped(k)), ("att_v", grouped(v)), ("att_o", o),
                         ("fwd_up", up), ("fwd_down", down)):
            impacts[t].append(value.abs().mean(0).numpy())
    return {t: np.stack(v) for t, v in impacts.items()}


def texts(vocab: int) -> list[list[int]]:
    rng = np.random.default_rng(0)
    return [rng.integers(2, vocab, n).tolist() for n in LENGTHS]


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_nags_match_a_hook_free_computation(backbone, packing):
    ids = texts(len(backbone.tokenizer))
    # A small budget: several batches, each padded (or packed) differently.
    extractor = Extractor(backbone, ExtractSettings(NEURON_TYPES, top_k=K, max_length=64), token_budget=64,
                          packing=packing)
    codes, impacts = extractor.extract_ids(ids)
    for i, one in enumerate(ids):
        ref = reference_impacts(backbone, one)
        for t in NEURON_TYPES:
            assert codes[t].shape == (len(ids), backbone.config.num_hidden_layers, K)
            want = np.sort(ref[t], axis=1)[:, ::-1][:, :K]
            np.testing.assert_allclose(impacts[t][i], want, rtol=1e-4, atol=1e-6, err_msg=f"text {i} {t}")
            got = np.take_along_axis(ref[t], codes[t][i].astype(np.int64), axis=1)
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6, err_msg=f"text {i} {t}")


def test_widths_follow_the_config(backbone):
    cfg = backbone.config
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    ex = Extractor(backbone, ExtractSettings(NEURON_TYPES))
    assert ex.neurons["att_q"] == ex.neurons["att_k"] == ex.neurons["att_v"] == cfg.num_attention_heads * hd
    assert ex.neurons["fwd_up"] == cfg.intermediate_size and ex.neurons["att_o"] == cfg.hidden_size
