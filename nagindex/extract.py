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

import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

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


W = TypeVar("W")
_END = object()

#: Tokens per packed row: a few texts of ``max_length`` 120 share one row, and
#: attention, quadratic in the row's length, stays a small part of the forward.
PACK_LENGTH = 512


class _Stop(Exception):
    """Raised by the last needed hook: nothing after it influences the NAG."""


class Extractor:
    """Computes NAGs with one backbone and fixed settings."""

    def __init__(self, backbone: Backbone, settings: ExtractSettings = ExtractSettings(), token_budget: int | None = None,
                 packing: bool | None = None):
        """``token_budget``: tokens per forward (batch x longest text) [default: 4096 on CPU, 65536 on CUDA].
        ``packing``: pack texts into rows without padding, positions restarting with each text
        [default: on CUDA, where padding is pure waste; on CPU, length-sorted batches pad little].
        """
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
        self.packing = backbone.device.type == "cuda" if packing is None else packing
        self.pack_length = max(PACK_LENGTH, self.settings.max_length)
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
        """Token ids truncated to ``max_length``, and the full token counts (see :func:`tokenize`)."""
        return tokenize(self.backbone.tokenizer, texts, self.settings.max_length)

    def truncate(self, texts: Sequence[str]) -> list[str]:
        """The texts as far as the backbone reads them (see :func:`truncate`)."""
        return truncate(self.backbone.tokenizer, texts, self.settings.max_length)

    def extract(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> NAGs:
        """NAGs of ``texts``; ``progress(texts, tokens)`` after each forward batch (see :meth:`run`)."""
        ids, tokens = self.tokenize(texts)
        codes, impacts = self.run(self.plan(ids), progress)
        return NAGs(codes, impacts, tokens)

    def extract_stream(self, windows: Iterable[W], texts_of: Callable[[W], Sequence[str]],
                       progress: Callable[[W, int, int], None] | None = None) -> Iterator[tuple[W, NAGs]]:
        """``(window, its NAGs)`` for each window of a stream, in order.

        Reading the next window (``next`` on ``windows``), tokenizing it and
        laying out its batches happen in a background thread while the current
        window runs: tokenizers and torch release the GIL, so host work overlaps
        with the forward instead of adding to it. ``texts_of`` gives a window's
        texts; ``progress(window, texts, tokens)`` is called after each forward
        batch of a window, so a bar moves batch by batch rather than window by window.
        """
        def prepare(it):
            window = next(it, _END)
            if window is _END:
                return None
            ids, tokens = self.tokenize(texts_of(window))
            return window, tokens, self.plan(ids)

        it = iter(windows)
        with ThreadPoolExecutor(1, thread_name_prefix="nagindex-prepare") as pool:
            pending = pool.submit(prepare, it)
            while (ready := pending.result()) is not None:
                pending = pool.submit(prepare, it)
                window, tokens, plan = ready
                done = None if progress is None else functools.partial(progress, window)
                codes, impacts = self.run(plan, done)
                yield window, NAGs(codes, impacts, tokens)

    def extract_ids(self, ids: Sequence[Sequence[int]]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """NAGs of pre-tokenized texts, batched by length, returned in input order."""
        return self.run(self.plan(ids))

    def batches(self, ids: Sequence[Sequence[int]]) -> Iterator[np.ndarray]:
        """Index batches of texts of similar length, each within the token budget."""
        lengths = _lengths(ids)
        order = np.argsort(-lengths, kind="stable")
        start = 0
        while start < len(order):
            longest = lengths[order[start]]
            size = max(1, self.token_budget // longest)
            yield order[start:start + size]
            start += size

    def pad(self, ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """A right-padded batch on the backbone's device: ``(input_ids, attention_mask)``."""
        input_ids, mask = self._padded(ids)
        return self._to_device(input_ids), self._to_device(mask)

    # -- batch layout (host side, off the critical path) ----------------------

    def plan(self, ids: Sequence[Sequence[int]]) -> list[Batch]:
        """Every batch of ``ids`` as the extractor runs them, laid out as host tensors."""
        if self.packing:
            return [self._packed(ids, rows) for rows in self._packs(ids)]
        return [Batch(batch, *self._padded([ids[i] for i in batch]), tokens=sum(len(ids[i]) for i in batch))
                for batch in self.batches(ids)]

    def _padded(self, ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        B, T = len(ids), max(1, max(len(i) for i in ids))
        input_ids = np.full((B, T), self.pad_id, dtype=np.int64)
        mask = np.zeros((B, T), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return self._pinned(input_ids), self._pinned(mask)

    def _packs(self, ids: Sequence[Sequence[int]]) -> Iterator[list[list[int]]]:
        """Texts packed into rows of ``pack_length`` tokens, grouped into batches within the token budget.

        First fit, longest first: each text goes into the first row with room
        for it, so the rows are nearly full and a text never spans two rows.
        """
        lengths = _lengths(ids)
        rows: list[list[int]] = []
        free: list[int] = []
        for i in np.argsort(-lengths, kind="stable").tolist():
            n = lengths[i]
            for r, room in enumerate(free):
                if room >= n:
                    rows[r].append(i)
                    free[r] -= n
                    break
            else:
                rows.append([i])
                free.append(self.pack_length - n)
        per_batch = max(1, self.token_budget // self.pack_length)
        for start in range(0, len(rows), per_batch):
            yield rows[start:start + per_batch]

    def _packed(self, ids: Sequence[Sequence[int]], rows: list[list[int]]) -> Batch:
        """One batch of packed rows: positions restart at 0 with each text.

        Without an attention mask, transformers reads the restarts in
        ``position_ids`` as sequence boundaries and gives SDPA a block-diagonal
        causal mask, so no text sees another. A row's unused tail is one more
        sequence of padding that no text's mean counts.
        """
        R, T = len(rows), self.pack_length
        input_ids = np.full((R, T), self.pad_id, dtype=np.int64)
        positions = np.zeros((R, T), dtype=np.int64)
        texts = [i for row in rows for i in row]
        segment = np.full((R, T), len(texts), dtype=np.int64)     # the tail's slot, dropped
        weight = np.zeros((R, T), dtype=np.float32)
        s = 0
        for r, row in enumerate(rows):
            at = 0
            for i in row:
                n = max(1, len(ids[i]))
                input_ids[r, at:at + len(ids[i])] = ids[i]
                positions[r, at:at + n] = np.arange(n)
                segment[r, at:at + n] = s
                weight[r, at:at + n] = 1.0 / n if len(ids[i]) else 0.0     # an empty text: all zero, as padded
                at, s = at + n, s + 1
            positions[r, at:] = np.arange(T - at)
        return Batch(np.asarray(texts, np.int64), self._pinned(input_ids), None, self._pinned(positions),
                     self._pinned(segment.reshape(-1)), self._pinned(weight.reshape(-1)),
                     sum(len(ids[i]) for i in texts))

    def _pinned(self, array: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(array)
        return tensor.pin_memory() if self.backbone.device.type == "cuda" else tensor

    def _to_device(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        if tensor is None or self.backbone.device.type != "cuda":
            return tensor
        return tensor.to(self.backbone.device, non_blocking=True)

    # -- the forward pass -----------------------------------------------------

    def run(self, plan: list[Batch], progress: Callable[[int, int], None] | None = None
            ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Codes and impacts of a plan's texts, per type, in the order of the ids it was made from.

        ``progress(texts, tokens)`` follows each batch with its texts and the tokens the backbone read.
        On CUDA a batch is then queued, not finished: the device catches up when the results are copied
        back, at the end of the plan.
        """
        # Results stay on the device until the end: copying them back batch by
        # batch would make the host wait for every batch instead of queueing the next.
        order, found = [], {t: ([], []) for t in self.neurons}
        for batch in plan:
            top = self._run(batch)
            if progress is not None:
                progress(len(batch.texts), batch.tokens)
            order.append(batch.texts)
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

    @torch.inference_mode()
    def _run(self, batch: Batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per type, the top-K ``(indices, impacts)`` of one batch, left on the device."""
        dev = self.backbone.device
        S = len(batch.texts)
        input_ids, mask = self._to_device(batch.input_ids), self._to_device(batch.attention_mask)
        if batch.segment is None:
            # Mean over real tokens as one batched product: [B, 1, T] @ [B, T, N].
            mean = _PaddedMean((mask / mask.sum(1, keepdim=True).clamp(min=1)).float().unsqueeze(1))
        else:
            mean = _SegmentMean(self._to_device(batch.segment), self._to_device(batch.weight), S)
        impact = {t: torch.empty((S, self.num_layers, n), dtype=torch.float32, device=dev) for t, n in self.neurons.items()}
        handles = self._hooks(mean, impact)
        try:
            self.backbone.body(input_ids=input_ids, attention_mask=mask, position_ids=self._to_device(batch.positions),
                               use_cache=False)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        tops = {t: imp.topk(self.settings.top_k, dim=-1, sorted=True) for t, imp in impact.items()}
        return {t: (top.indices, top.values) for t, top in tops.items()}

    def _hooks(self, mean: Callable[[torch.Tensor], torch.Tensor], impact: dict[str, torch.Tensor]):
        layout = self.backbone.layout
        order = _forward_order(layout.modules, self.neurons)
        last = (self.num_layers - 1, order[-1])
        handles = []
        for layer_idx, layer in enumerate(self.backbone.layers):
            for t in order:
                module = layer.get_submodule(layout.modules[t])
                handles.append(module.register_forward_hook(
                    self._hook(t, layer_idx, mean, impact[t], stop=(layer_idx, t) == last)))
        return handles

    def _hook(self, neuron_type: str, layer: int, mean_of: Callable[[torch.Tensor], torch.Tensor], out: torch.Tensor,
              stop: bool):
        grouped = neuron_type in self.backbone.layout.grouped
        kv, group, hd = self.kv_heads, self.num_heads // self.kv_heads, self.head_dim

        def hook(module, inputs, output):
            mean = mean_of(output)
            if grouped:
                # Repeat each key/value head over the query heads that share it.
                mean = mean.view(-1, kv, 1, hd).expand(-1, kv, group, hd).reshape(mean.shape[0], -1)
            out[:, layer] = mean
            if stop:
                raise _Stop

        return hook


@dataclass
class Batch:
    """One forward's inputs, as host tensors; ``texts`` are the input rows of its texts, in output order."""

    texts: np.ndarray
    input_ids: torch.Tensor
    attention_mask: torch.Tensor | None          # padded batches
    positions: torch.Tensor | None = None        # packed batches: restart at 0 with each text
    segment: torch.Tensor | None = None          # packed: each token's text (its slot in ``texts``)
    weight: torch.Tensor | None = None           # packed: 1 / its text's length, 0 for the tail
    tokens: int = 0                              # real tokens, padding left out


class _PaddedMean:
    """Per text, the mean of ``|output|`` over its real tokens, in float32 whatever the model's dtype.

    Summing in float32 keeps the impacts apart: bfloat16 sums of 120 terms
    would round many of a layer's neurons to the same value and tie the top-K.
    """

    def __init__(self, weights: torch.Tensor):
        self.weights = weights                   # float32 [B, 1, T], 1 / length on real tokens

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return torch.bmm(self.weights, output.abs().float()).squeeze(1)


class _SegmentMean:
    """The same mean over packed rows: each token adds ``|output| / length`` to its text's row."""

    def __init__(self, segment: torch.Tensor, weight: torch.Tensor, texts: int):
        self.segment, self.weight, self.texts = segment, weight.unsqueeze(1), texts

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        flat = output.reshape(-1, output.shape[-1]).abs().float() * self.weight
        sums = torch.zeros((self.texts + 1, flat.shape[1]), dtype=torch.float32, device=flat.device)
        return sums.index_add_(0, self.segment, flat)[: self.texts]


def _lengths(ids: Sequence[Sequence[int]]) -> np.ndarray:
    return np.fromiter((max(1, len(i)) for i in ids), np.int64, len(ids))


#: Characters of a long text tokenized at once: its token ids, as Python ints,
#: take about 30 times the text, so a whole 50 MB text would take gigabytes.
SLICE_CHARS = 1 << 16


def tokenize(tokenizer, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], np.ndarray]:
    """Token ids truncated to ``max_length``, and the full token counts.

    Budgets count every token of a text, but the NAG reads only the first
    ``max_length``: texts longer than ``SLICE_CHARS`` are counted slice by
    slice, so memory stays bounded whatever the text's length.
    """
    texts = list(texts)
    ids: list[list[int]] = [[] for _ in texts]
    counts = np.zeros(len(texts), np.int64)
    short = [i for i, t in enumerate(texts) if len(t) <= SLICE_CHARS]
    if short:
        enc = tokenizer([texts[i] for i in short], add_special_tokens=False, return_attention_mask=False)["input_ids"]
        for i, e in zip(short, enc):
            ids[i], counts[i] = e[:max_length], len(e)
    for i in sorted(set(range(len(texts))) - set(short)):
        for start, end in _slices(texts[i], SLICE_CHARS):
            piece = tokenizer(texts[i][start:end], add_special_tokens=False, return_attention_mask=False)["input_ids"]
            if len(ids[i]) < max_length:
                ids[i] += piece[:max_length - len(ids[i])]
            counts[i] += len(piece)
    return ids, counts


def truncate(tokenizer, texts: Sequence[str], max_length: int) -> list[str]:
    """Each text up to the end of its ``max_length``-th token: what the NAG reads of it, which BM25 reads
    too (term statistics, docs/design.md §2.4, and the baselines). Long texts are read slice by slice, as
    :func:`tokenize` counts them, so memory stays bounded."""
    texts = list(texts)
    out = [""] * len(texts)
    short = [i for i, t in enumerate(texts) if len(t) <= SLICE_CHARS]
    if short:
        enc = tokenizer([texts[i] for i in short], add_special_tokens=False, return_offsets_mapping=True,
                        truncation=True, max_length=max_length)["offset_mapping"]
        for i, spans in zip(short, enc):
            out[i] = texts[i][: spans[-1][1]] if spans else ""
    for i in sorted(set(range(len(texts))) - set(short)):
        left, end = max_length, 0
        for start, stop in _slices(texts[i], SLICE_CHARS):
            spans = tokenizer(texts[i][start:stop], add_special_tokens=False, return_offsets_mapping=True,
                              truncation=True, max_length=left)["offset_mapping"]
            if spans:
                end, left = start + spans[-1][1], left - len(spans)
            if left <= 0:
                break
        out[i] = texts[i][:end]
    return out


def _slices(text: str, size: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` slices of ``text`` of at most ``size`` characters, cut before a space that follows a
    non-space.

    Tokenizers that split words at spaces (the byte-level BPE of GPT-2, Llama 3,
    Qwen, SmolLM; whitespace pre-tokenizers) never join tokens across such a
    cut, so the slices' tokens are the text's. A text with no such space in a
    half-slice is cut where it must: a token may then be counted as two.
    """
    start = 0
    while len(text) - start > size:
        cut = start + size
        while True:
            cut = text.rfind(" ", start + size // 2, cut)
            if cut < 0 or not text[cut - 1].isspace():
                break
        if cut < 0:
            cut = start + size
        yield start, cut
        start = cut
    yield start, len(text)


def _forward_order(modules: dict[str, str], types: Iterable[str]) -> list[str]:
    """The requested types in the order their modules run inside a layer."""
    run_order = ["att_q", "att_k", "att_v", "att_o", "fwd_up", "fwd_down"]
    return sorted(types, key=run_order.index)
