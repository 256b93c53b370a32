"""From texts to Neuron-Activated Graphs, with forward hooks on the stock model.

For every layer and every neuron of a type, the impact of a text is the mean,
over its non-padding tokens, of the absolute output of that neuron; the NAG
keeps, per layer, the K most impactful neurons in descending order.

Speed comes from running as little as possible: the decoder body only (never
the LM head), stopped right after the last hooked module fires, computing only
the requested types, over batches of texts of similar length bounded by a
token budget so that padding stays small. The top-K is taken on the device, so
only ``L x K`` small integers per text leave it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from .backbone import Backbone
from .errors import NagindexError
from .neurons import parse_types
from .settings import ExtractSettings


@dataclass
class NAGs:
    """The NAGs of a list of texts, in the order the texts were given."""

    codes: dict[str, np.ndarray]      # type -> uint16 [n, L, K], descending impact
    impacts: dict[str, np.ndarray]    # type -> float32 [n, L, K]
    tokens: np.ndarray                # int64 [n], full (untruncated) token counts


class _Stop(Exception):
    """Raised by the last needed hook: nothing after it influences the NAG."""


class Extractor:
    """Computes NAGs with one backbone and fixed settings."""

    def __init__(self, backbone: Backbone, settings: ExtractSettings = ExtractSettings(), token_budget: int | None = None):
        self.backbone = backbone
        self.settings = ExtractSettings(parse_types(settings.neuron_types), settings.top_k, settings.max_length)
        cfg = backbone.config
        self.num_layers = cfg.num_hidden_layers
        self.num_heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.num_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.num_heads
        self.token_budget = token_budget or (65536 if backbone.device.type == "cuda" else 4096)
        self.neurons = {t: self._width(t) for t in self.settings.neuron_types}
        for t, n in self.neurons.items():
            if self.settings.top_k > n:
                raise NagindexError(f"--top-k {self.settings.top_k}: {t} has {n} neurons per layer in this backbone; "
                                    f"choose 1..{n}")
        pad = backbone.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (backbone.tokenizer.eos_token_id or 0)

    def _width(self, neuron_type: str) -> int:
        module = self.backbone.layers[0].get_submodule(self.backbone.layout.modules[neuron_type])
        width = module.out_features
        if neuron_type in self.backbone.layout.grouped:
            width = width * self.num_heads // self.kv_heads
        return width

    # -- public ---------------------------------------------------------------

    def tokenize(self, texts: Sequence[str]) -> tuple[list[list[int]], np.ndarray]:
        """Token ids truncated to ``max_length``, and the full token counts."""
        enc = self.backbone.tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)["input_ids"]
        return [ids[: self.settings.max_length] for ids in enc], np.fromiter((len(i) for i in enc), np.int64, len(enc))

    def extract(self, texts: Sequence[str]) -> NAGs:
        ids, tokens = self.tokenize(texts)
        codes, impacts = self.extract_ids(ids)
        return NAGs(codes, impacts, tokens)

    def extract_ids(self, ids: Sequence[Sequence[int]]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """NAGs of pre-tokenized texts, batched by length, returned in input order."""
        # Results stay on the device until the end: copying them back batch by
        # batch would make the host wait for every batch instead of queueing the next.
        order, found = [], {t: ([], []) for t in self.neurons}
        for batch in self.batches(ids):
            top = self._run([ids[i] for i in batch])
            order.append(batch)
            for t, (indices, values) in top.items():
                found[t][0].append(indices)
                found[t][1].append(values)
        where = np.argsort(np.concatenate(order)) if order else np.zeros(0, np.int64)
        codes, impacts = {}, {}
        for t, (indices, values) in found.items():
            if not order:
                shape = (0, self.num_layers, self.settings.top_k)
                codes[t], impacts[t] = np.zeros(shape, np.uint16), np.zeros(shape, np.float32)
                continue
            codes[t] = torch.cat(indices).cpu().numpy().astype(np.uint16)[where]
            impacts[t] = torch.cat(values).cpu().numpy()[where]
        return codes, impacts

    def batches(self, ids: Sequence[Sequence[int]]) -> Iterator[np.ndarray]:
        """Index batches of texts of similar length, each within the token budget."""
        lengths = np.fromiter((max(1, len(i)) for i in ids), np.int64, len(ids))
        order = np.argsort(-lengths, kind="stable")
        start = 0
        while start < len(order):
            longest = lengths[order[start]]
            size = max(1, self.token_budget // longest)
            yield order[start:start + size]
            start += size

    def pad(self, ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """A right-padded batch on the backbone's device: ``(input_ids, attention_mask)``."""
        B, T = len(ids), max(1, max(len(i) for i in ids))
        input_ids = np.full((B, T), self.pad_id, dtype=np.int64)
        mask = np.zeros((B, T), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        dev = self.backbone.device
        if dev.type == "cuda":
            return (torch.from_numpy(input_ids).pin_memory().to(dev, non_blocking=True),
                    torch.from_numpy(mask).pin_memory().to(dev, non_blocking=True))
        return torch.from_numpy(input_ids), torch.from_numpy(mask)

    # -- the forward pass -----------------------------------------------------

    @torch.inference_mode()
    def _run(self, ids: list[Sequence[int]]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per type, the top-K ``(indices, impacts)`` of one batch, left on the device."""
        dev = self.backbone.device
        B = len(ids)
        input_ids, mask = self.pad(ids)
        # Mean over real tokens as one batched product: [B, 1, T] @ [B, T, N].
        weights = (mask / mask.sum(1, keepdim=True).clamp(min=1)).to(self.backbone.dtype).unsqueeze(1)
        impact = {t: torch.empty((B, self.num_layers, n), dtype=torch.float32, device=dev) for t, n in self.neurons.items()}
        handles = self._hooks(weights, impact)
        try:
            self.backbone.body(input_ids=input_ids, attention_mask=mask, use_cache=False)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        tops = {t: imp.topk(self.settings.top_k, dim=-1, sorted=True) for t, imp in impact.items()}
        return {t: (top.indices, top.values) for t, top in tops.items()}

    def _hooks(self, weights: torch.Tensor, impact: dict[str, torch.Tensor]):
        layout = self.backbone.layout
        order = _forward_order(layout.modules, self.neurons)
        last = (self.num_layers - 1, order[-1])
        handles = []
        for layer_idx, layer in enumerate(self.backbone.layers):
            for t in order:
                module = layer.get_submodule(layout.modules[t])
                handles.append(module.register_forward_hook(
                    self._hook(t, layer_idx, weights, impact[t], stop=(layer_idx, t) == last)))
        return handles

    def _hook(self, neuron_type: str, layer: int, weights: torch.Tensor, out: torch.Tensor, stop: bool):
        grouped = neuron_type in self.backbone.layout.grouped
        kv, group, hd = self.kv_heads, self.num_heads // self.kv_heads, self.head_dim

        def hook(module, inputs, output):
            mean = torch.bmm(weights, output.abs()).squeeze(1).float()
            if grouped:
                # Repeat each key/value head over the query heads that share it.
                mean = mean.view(-1, kv, 1, hd).expand(-1, kv, group, hd).reshape(mean.shape[0], -1)
            out[:, layer] = mean
            if stop:
                raise _Stop

        return hook


def _forward_order(modules: dict[str, str], types: Iterable[str]) -> list[str]:
    """The requested types in the order their modules run inside a layer."""
    run_order = ["att_q", "att_k", "att_v", "att_o", "fwd_up", "fwd_down"]
    return sorted(types, key=run_order.index)
