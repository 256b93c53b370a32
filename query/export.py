"""Target profiles saved to one file, to score documents where the index is not.

``nagindex profile targets.jsonl -i my.index -o profiles.npz`` writes what
scoring a new document needs, and nothing of the pool: the profiles, the
identity of the backbone and the extraction settings that made them (a
document must be seen as the targets were), and the quantiles of the pool's
similarities to each target, so that "the best fifth of the pool" means the
same outside the index as in it. A datatrove pipeline step
(:mod:`nagindex.datatrove`) reads it on every worker.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
from dataclasses import dataclass

import numpy as np

from nagindex.atomic import atomic_path
from nagindex.errors import InputError, NagindexError
from nagindex.storage import is_url, location, open_file

from .profile import Profiles, ScoreSpec
from .targets import Targets

FORMAT = "nagindex-profiles"
FORMAT_VERSION = 1
# The pool's similarity quantiles kept per target: every 0.1 percent.
QUANTILES = np.linspace(0.0, 1.0, 1001)


@dataclass
class SavedProfiles:
    """Profiles with what scoring against them needs: backbone, settings, the pool's quantiles."""

    profiles: Profiles
    backbone: dict            # the index's backbone identity: name, sha256, architecture
    settings: dict            # the index's extraction settings
    spec: ScoreSpec
    pool_quantiles: np.ndarray    # float64 [len(QUANTILES), M]: the pool's similarity at each quantile
    about: dict               # index path, documents, nagindex version: for the record

    @property
    def names(self) -> list[str]:
        return self.profiles.names

    def pool_cut(self, quantile: float) -> np.ndarray:
        """Per target, the similarity at ``quantile`` of the pool (0.8: the best fifth is above it)."""
        if not 0.0 <= quantile <= 1.0:
            raise InputError(f"quantile {quantile}: must be in [0, 1]")
        return np.array([np.interp(quantile, QUANTILES, self.pool_quantiles[:, m]) for m in range(len(self.names))])

    def save(self, path: str | os.PathLike) -> None:
        """Write one ``.npz`` file (atomically where local; through fsspec for a URL)."""
        p = self.profiles
        meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "backbone": self.backbone,
                "settings": self.settings, "spec": dataclasses.asdict(self.spec), "about": self.about,
                "names": p.names, "top_k": p.top_k}
        buffer = io.BytesIO()
        np.savez_compressed(buffer, meta=np.array(json.dumps(meta)), table=p.table, scale=p.scale, layers=p.layers,
                            counts=p.counts, examples=p.examples, pool_quantiles=self.pool_quantiles)
        loc = location(str(path))
        if is_url(loc):
            with open_file(loc, "wb") as f:
                f.write(buffer.getvalue())
            return
        with atomic_path(loc) as tmp:
            tmp.write_bytes(buffer.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SavedProfiles":
        """Read a file that :meth:`save` wrote; anything else is a one-line error naming it."""
        try:
            with open_file(location(str(path)), "rb") as f:
                arrays = dict(np.load(io.BytesIO(f.read()), allow_pickle=False))
            meta = json.loads(str(arrays.pop("meta")))
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"{path}: not a profiles file written by `nagindex profile` ({e})") from None
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise InputError(f"{path}: format {meta.get('format')!r} version {meta.get('format_version')!r}; "
                             f"this nagindex reads {FORMAT!r} version {FORMAT_VERSION}")
        spec = meta["spec"]
        spec = ScoreSpec(**{**spec, "layers": tuple(spec["layers"]) if spec["layers"] is not None else None})
        profiles = Profiles(meta["names"], arrays["table"], arrays["scale"], arrays["layers"], int(meta["top_k"]),
                            arrays["counts"], arrays["examples"])
        return cls(profiles, meta["backbone"], meta["settings"], spec, arrays["pool_quantiles"], meta["about"])


def export_profiles(selector, targets: Targets, spec: ScoreSpec = ScoreSpec()) -> SavedProfiles:
    """The profiles of ``targets`` in ``selector``'s index, with the pool's similarity quantiles.

    One exact scan of the pool gives the quantiles.
    """
    import importlib.metadata

    if spec.weighting == "bm25":
        raise NagindexError("--weighting bm25: a saved profile holds the codes' weight tables alone, not BM25; "
                            "name paper, idf, classifier or auto")
    profiles = selector.profiles(targets, spec, bm25=False)       # auto chooses among the tables alone
    sims = selector.similarities(profiles, spec.neuron_type)
    index = selector.index
    about = {"index": str(index.path.resolve()), "documents": index.documents, "dtype": selector.dtype,
             "nagindex": importlib.metadata.version("nagindex")}
    return SavedProfiles(profiles, index.backbone, index.settings, spec, np.quantile(sims, QUANTILES, axis=0), about)
