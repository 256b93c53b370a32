"""The FAISS file of a shard: one vector per document (see nagindex.sketch).

The index type is a FAISS ``index_factory`` string, so users pick the trade-off
between memory, speed and recall in FAISS's own vocabulary. The default,
``PQ512x4fs``, is a flat scan over product-quantized vectors, 4 bits per 4
dimensions (256 bytes a document for 2048 dimensions), which FAISS scans with
SIMD lookups about ten times as fast as 4-bit scalar quantization (``SQ4``,
1 KB a document) and, on the vectors of nagindex.sketch, with about the same
recall. For 10^8 documents, an IVF over the same codes (``IVF4096,PQ512x4fs``,
or ``IVF4096,PQ256x4fs`` at half the memory) visits a share of its lists per
target (``--nprobe``) instead of every document. Quantizers are trained on a
sample of the shard, an IVF's lists on the GPUs where FAISS has them
(nagindex.faiss_index).
"""
from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from nagindex.atomic import atomic_path
from nagindex.errors import NagindexError
from nagindex.faiss_index import clustering_on_gpus, ivf_of
from nagindex.progress import bar, phase
from nagindex.sketch import Sketch, SlotMap
from nagindex.store import CHUNK_ROWS, CodeStore

TRAIN_SAMPLE = 100_000
TRAIN_PER_LIST = 40      # FAISS asks for at least 39 training points per IVF list
TRAIN_MIN = 1_024        # and per codebook entry: 16 entries for 4-bit codes


def build_vectors(store: CodeStore, neuron_type: str, sketch: Sketch, spec: str, path: Path, chunk_rows: int = 65536,
                  gpus: bool = True) -> None:
    """Sketch every document of ``store`` into a FAISS index written at ``path``; ``gpus``: train
    an IVF's lists on the GPUs, if FAISS sees any."""
    layout = sketch.shard_layout(store, neuron_type)
    index = faiss.index_factory(sketch.dim, spec, faiss.METRIC_INNER_PRODUCT)
    ivf = ivf_of(index)
    if ivf is not None and store.rows < ivf.nlist:
        raise NagindexError(f"--faiss {spec}: {ivf.nlist} lists need at least as many documents to train on, "
                            f"and this shard holds {store.rows:,}; choose fewer lists or a flat type such as SQ4")
    if not index.is_trained:
        sample = _training_sample(store, neuron_type, layout, _sample_size(ivf))
        with phase(f"training FAISS ({spec}) on {min(len(sample), store.rows):,} vectors"), \
                clustering_on_gpus(ivf, gpus):
            _train(index, sample)
    with phase(f"adding {store.rows:,} vectors to FAISS"), \
            bar(total=store.rows, unit="doc", unit_scale=True, desc="adding vectors", leave=False) as added:
        for _, codes in store.iter_codes(neuron_type, chunk_rows):
            index.add(layout.documents(codes))
            added.update(len(codes))
    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))


def _train(index, sample: np.ndarray) -> None:
    """Train on one thread.

    Product-quantizer codebooks are hundreds of k-means runs too small to share
    among threads: FAISS's threads mostly wait on each other, and on a busy
    two-core machine training took 30 s on two threads against 0.6 s on one.
    IVF centroids would gain from threads, but minutes of training per shard
    are little beside the backbone's pass over the same shard, and with
    faiss-gpu their k-means runs on the GPUs.
    """
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        index.train(sample)
    finally:
        faiss.omp_set_num_threads(threads)


def _sample_size(ivf: faiss.IndexIVF | None) -> int:
    return TRAIN_SAMPLE if ivf is None else max(TRAIN_SAMPLE, TRAIN_PER_LIST * ivf.nlist)


def _training_sample(store: CodeStore, neuron_type: str, layout: SlotMap, size: int) -> np.ndarray:
    """Whole chunks spread evenly over the shard: a strided sample would read every chunk of the store."""
    if store.rows == 0:
        raise ValueError("cannot train a FAISS index on an empty shard")
    chunks = -(-store.rows // CHUNK_ROWS)
    picked = np.unique(np.linspace(0, chunks - 1, min(chunks, -(-size // CHUNK_ROWS))).astype(np.int64))
    sample = layout.documents(np.concatenate([store.read_codes(neuron_type, c * CHUNK_ROWS, (c + 1) * CHUNK_ROWS)
                                              for c in picked]))
    # A shard smaller than that is repeated: its own vectors then become the codebook entries.
    return np.resize(sample, (max(len(sample), TRAIN_MIN), sample.shape[1]))
