"""NAG ranking as a datatrove pipeline step (``pip install 'nagindex[datatrove]'``).

Score the documents flowing through an existing datatrove pipeline against
target profiles saved by ``nagindex profile``; each document's similarity to
each target goes into its metadata, and the step can keep only the documents
above a threshold or above a quantile of the index's pool::

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import JsonlWriter
    from nagindex.datatrove import NAGScorer

    LocalPipelineExecutor(pipeline=[
        ParquetReader("s3://my-bucket/pool/"),
        NAGScorer("profiles.npz", quantile=0.8),   # keep what the best fifth of the pool would hold
        JsonlWriter("selected/"),
    ], tasks=16).run()

The step is picklable and light until it runs: each worker loads the backbone
once, on its first batch, checks that it is the backbone the profiles were
made with, and runs it with the index's settings (as ``Selector.score_texts``
does), so a document scores here exactly as it would in the index. It runs on
datatrove's Local and Slurm executors alike.
"""
from __future__ import annotations

import os

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.pipeline.base import PipelineStep
from datatrove.utils.batching import batched
from datatrove.utils.typeshelper import StatHints

from query.export import SavedProfiles

from .errors import InputError

METADATA_KEY = "nag_similarity"


class NAGScorer(PipelineStep):
    """Writes ``metadata[metadata_key] = {target: similarity}`` and optionally filters.

    Args:
        profiles: a file written by ``nagindex profile`` (local path or fsspec URL).
        threshold: keep a document if its similarity to some target is at least this
            (one number, or one per target name: only the targets named then count).
        quantile: keep a document if, for some target, it is at least as similar as
            this quantile of the index's pool (0.8 keeps what the pool's best fifth
            would). At most one of ``threshold`` and ``quantile``; neither keeps all.
        model: where the backbone's weights are now, if they moved since the index
            was built (they are checked by hash) [default: the name recorded].
        device, dtype: for the backbone, as in ``nagindex build`` [default dtype: the index's].
        batch_size: documents per forward pass batch (each batch is cut further by tokens).
        metadata_key: the metadata entry written.
    """

    name = "🧠 NAG similarity"
    type = "🔢 - SCORER"

    def __init__(self, profiles: str | os.PathLike, *, threshold: float | dict[str, float] | None = None,
                 quantile: float | None = None, model: str | None = None, device: str | None = None,
                 dtype: str | None = None, batch_size: int = 256, metadata_key: str = METADATA_KEY):
        super().__init__()
        if threshold is not None and quantile is not None:
            raise InputError("NAGScorer: give a threshold or a quantile, not both")
        self.saved = SavedProfiles.load(profiles)
        self.cut = _cut(self.saved, threshold, quantile)
        self.model, self.device, self.dtype = model, device, dtype
        self.batch_size = batch_size
        self.metadata_key = metadata_key
        self._extractor = None

    def __getstate__(self) -> dict:
        """What travels to the workers: everything but a loaded backbone."""
        return {**self.__dict__, "_extractor": None}

    def score(self, texts: list[str]) -> np.ndarray:
        """``[len(texts), M]`` similarities to the saved targets."""
        if self._extractor is None:
            from .backbone import load_recorded
            from .extract import Extractor
            from .settings import ExtractSettings

            dtype = self.dtype or self.saved.about.get("dtype")     # the dtype the index's NAGs were computed in
            backbone = load_recorded(self.saved.backbone, self.model, self.device, dtype,
                                     what="the profiles' index")
            self._extractor = Extractor(backbone, ExtractSettings.from_dict(self.saved.settings))
        codes = self._extractor.extract(texts).codes[self.saved.spec.neuron_type]
        return self.saved.profiles.score(codes)

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        names = self.saved.names
        for batch in batched(data, self.batch_size):
            with self.track_time("batch"):
                sims = self.score([doc.text for doc in batch])
            for doc, row in zip(batch, sims):
                self.stat_update(StatHints.total)
                doc.metadata[self.metadata_key] = dict(zip(names, row.tolist()))
                if self.cut is not None and not (row >= self.cut).any():
                    self.stat_update(StatHints.dropped)
                    continue
                self.stat_update(StatHints.forwarded)
                yield doc


def _cut(saved: SavedProfiles, threshold, quantile) -> np.ndarray | None:
    """Per target, the least similarity that keeps a document (+inf: that target keeps none)."""
    if quantile is not None:
        return saved.pool_cut(quantile)
    if threshold is None:
        return None
    if isinstance(threshold, dict):
        unknown = sorted(set(threshold) - set(saved.names))
        if unknown:
            raise InputError(f"NAGScorer threshold: no target named {', '.join(unknown)}; "
                             f"the profiles hold {', '.join(saved.names)}")
        return np.array([float(threshold.get(n, np.inf)) for n in saved.names])
    return np.full(len(saved.names), float(threshold))
