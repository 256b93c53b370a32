"""The FAISS file of a shard: one sketch per document (see nagindex.sketch).

The index type is a FAISS ``index_factory`` string, so users pick the trade-off
between memory and recall in FAISS's own vocabulary: ``SQ8`` (default, exact
inner products over 8-bit sketches, ``dim`` bytes a document), ``Flat``, or for
pools of 10^8 documents an IVF over product-quantized sketches such as
``IVF4096,PQ32`` (32 bytes a document), trained on a sample of the shard.
"""
from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from nagindex.atomic import atomic_path
from nagindex.sketch import Sketch
from nagindex.store import CodeStore, take_rows

TRAIN_SAMPLE = 100_000


def build_vectors(store: CodeStore, neuron_type: str, sketch: Sketch, spec: str, path: Path, chunk_rows: int = 65536) -> None:
    """Sketch every document of ``store`` into a FAISS index written at ``path``."""
    index = faiss.index_factory(sketch.dim, spec, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(_training_sample(store, neuron_type, sketch, index))
    for _, codes in store.iter_codes(neuron_type, chunk_rows):
        index.add(sketch.documents(codes))
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))


def _training_sample(store: CodeStore, neuron_type: str, sketch: Sketch, index) -> np.ndarray:
    """An evenly spaced sample: enough for IVF centroids and PQ codebooks."""
    need = min(store.rows, TRAIN_SAMPLE)
    if need == 0:
        raise ValueError("cannot train a FAISS index on an empty shard")
    rows = np.linspace(0, store.rows - 1, need).astype(np.int64)
    return sketch.documents(take_rows(store.codes(neuron_type), rows))
