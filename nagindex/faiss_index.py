"""The FAISS side of an index: what kind of index a file holds, and GPUs where FAISS has them.

GPUs need faiss-gpu (``pip install 'nagindex[gpu]'``).

faiss-cpu sees no GPU, and then nothing here changes what runs. With faiss-gpu
and a GPU:

- building an IVF index trains its coarse quantizer on the GPUs: a k-means over
  up to 10^5 sketches of 2048 dimensions into thousands of lists, which takes
  minutes of CPU per shard;
- approximate search runs on the GPUs for the index types FAISS implements
  there (``Flat``, ``IVF…,Flat``, ``IVF…,SQ8``, ``IVF…,PQ<m>`` for the
  sub-quantizer counts FAISS supports), each shard's vectors split among the
  GPUs. The default ``PQ512x4fs``, like every fast-scan type, has no GPU
  version and stays on the CPU, whose SIMD scan it is made for.

FAISS's GPU search returns at most ``MAX_K`` results per query and visits at
most ``MAX_K`` lists, so a search that asks for more runs on the CPU copy,
which every shard keeps. Where a search runs changes only which candidates
whose vectors nearly tie are found: every candidate is re-scored exactly.
``--device cpu``, or ``CUDA_VISIBLE_DEVICES=``, keeps FAISS off the GPUs.

faiss-cpu, which nagindex needs, and faiss-gpu both install the module
``faiss``, and whichever pip wrote last is the one imported: ``gpus`` says so
when faiss-gpu is installed but faiss-cpu's module is the one loaded.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version

import faiss

MAX_K = 2048    # FAISS's GPU k-selection limit, which bounds nprobe too
SWAP = "pip uninstall -y faiss-cpu && pip install --force-reinstall --no-deps faiss-gpu"


def ivf_of(index) -> faiss.IndexIVF | None:
    """The inverted-file part of an index, if it has one (through any pre-transform)."""
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


@functools.cache
def gpus() -> int:
    """GPUs the installed FAISS can use: always 0 with faiss-cpu."""
    if not hasattr(faiss, "StandardGpuResources"):
        try:
            version("faiss-gpu")
        except PackageNotFoundError:
            return 0
        warnings.warn(f"faiss-gpu is installed, but the faiss module loaded is faiss-cpu's, which "
                      f"was installed after it; FAISS stays on the CPU. To use the GPUs: {SWAP}", stacklevel=2)
        return 0
    return faiss.get_num_gpus()


@contextmanager
def clustering_on_gpus(ivf: faiss.IndexIVF | None, enabled: bool = True) -> Iterator[None]:
    """Train ``ivf``'s coarse quantizer on every GPU while the block runs.

    The assignment index has the IVF's own metric, as FAISS's CPU training
    uses, so the lists are the ones a CPU build would find. FAISS holds only a
    pointer to it: it lives here until training is done, then is detached.
    """
    if ivf is None or not enabled or not gpus():
        yield
        return
    assign = faiss.index_cpu_to_all_gpus(faiss.IndexFlat(ivf.d, ivf.metric_type))
    ivf.clustering_index = assign
    try:
        yield
    finally:
        ivf.clustering_index = None
        del assign


def to_gpus(index: faiss.Index) -> faiss.Index | None:
    """A copy of ``index`` split among the GPUs; None without GPUs, or where FAISS has no GPU
    version of its type or its vectors do not fit."""
    if not gpus():
        return None
    options = faiss.GpuMultipleClonerOptions()
    options.shard = True
    try:
        return faiss.index_cpu_to_all_gpus(index, options)
    except RuntimeError:
        return None


def set_nprobe(index: faiss.Index, nprobe: int) -> None:
    """Set the lists an IVF copy on the GPUs visits, through however many GPUs it is split over."""
    faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", nprobe)
