"""Exact scoring on a GPU: the same sums as ``query.scoring``, with torch.

On a GPU the table lookup is an ``embedding_bag`` in sum mode: each document is
a bag of its ``L_sel x K'`` slot ids, each slot a row of M target weights. The
codes still stream from disk in chunks, read in a background thread while the
device scores the previous chunk (``query.scoring.prefetched``), so the scan runs at the speed of reading.
Integer tables (the paper's counts) are summed exactly here too, in float32.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from nagindex.codec import SetCodes
from nagindex.errors import CodeOutOfRange

from .scoring import gather_chunks, prefetched


def cuda_available() -> bool:
    """Whether a CUDA device can be used, without importing torch where no driver is loaded."""
    if not os.path.exists("/proc/driver/nvidia"):
        return False
    import torch

    return torch.cuda.is_available()


def score_chunks_torch(chunks: Iterable[tuple[int, np.ndarray]], table: np.ndarray, layers,
                       top_k: int, device: str = "cuda") -> Iterator[tuple[int, np.ndarray]]:
    """``query.scoring.score_chunks`` on a torch device: ``(first_row, float32 sums)`` chunk by chunk."""
    import torch
    import torch.nn.functional as F

    dev = torch.device(device)
    n_sel, neurons, targets = table.shape
    weights = torch.from_numpy(np.ascontiguousarray(table.reshape(n_sel * neurons, targets))).to(dev)
    layers_t = torch.as_tensor(np.asarray(layers, dtype=np.int64), device=dev)
    offsets = (torch.arange(n_sel, device=dev, dtype=torch.int64) * neurons).view(1, n_sel, 1)
    with torch.inference_mode():
        for first, codes in prefetched(_as_codes(chunks)):
            c = torch.from_numpy(codes.astype(np.int32, copy=False)).to(dev, non_blocking=True)
            picked = c.index_select(1, layers_t)[:, :, :top_k].long()
            if picked.numel() and int(picked.max()) >= neurons:
                row = int(torch.nonzero((picked >= neurons).flatten(1).any(1))[0])
                raise CodeOutOfRange(first + row, int(picked[row].max()), neurons)
            sums = F.embedding_bag((picked + offsets).reshape(len(codes), -1), weights, mode="sum")
            yield first, sums.cpu().numpy()


def _as_codes(chunks: Iterable[tuple[int, np.ndarray | SetCodes]]) -> Iterator[tuple[int, np.ndarray]]:
    """A sets store's rows decoded (in the reading thread: ``prefetched`` runs this generator there),
    as ``embedding_bag`` takes bags of slot ids."""
    for first, codes in chunks:
        yield first, codes if isinstance(codes, np.ndarray) else codes.decoded()


def score_stream_torch(chunks: Iterable[tuple[int, np.ndarray]], n: int, table: np.ndarray, layers,
                       top_k: int, device: str = "cuda") -> np.ndarray:
    """``query.scoring.score_stream`` on a torch device; returns float32 ``[n, M]``."""
    return gather_chunks(score_chunks_torch(chunks, table, layers, top_k, device), n, table.shape[2])
