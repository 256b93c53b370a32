"""``nagindex build --engine ray``: the same index, with the backbone spread over a Ray cluster.

Only the forward passes move. The corpus is read as a local build reads it, in
one stream and in the same order (so ids, record checks and windows are the
same, and windows written by an earlier run are passed over), by a Ray Data
task pinned to this node, where the index is written. Ray Data carries the
windows to a pool of actors, each holding one backbone replica: one per GPU,
or without GPUs one per node using all its cores but one (a forward pass
parallelises well over cores, and one copy of the weights per node is enough). The codes
come back here, about a kilobyte a document, to the part writer of the local
build. So a Ray build and a local build resume each other and give the same
index; workers need the backbone and nagindex installed, not the corpus or the
index.
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from nagindex.backbone import load_backbone
from nagindex.cluster import connect, worker_errors
from nagindex.corpus import Record, Skipped, text_hashes
from nagindex.extract import ExtractSettings, Extractor
from nagindex.indexdir import ShardDir
from nagindex.progress import CorpusBar, phase
from nagindex.store import Rows

from .options import BuildOptions
from .parts import PartWriter, Resume, kept_fields, pending_windows, read_skipped, write_skipped

_NODE_LABEL = "ray.io/node-id"


def extract_windows(read: Callable[..., Iterator[Record]], files: list[Path], work: ShardDir, options: BuildOptions,
                    skipped: list[Skipped], resume: Resume) -> int:
    """Write every missing part of ``work``; return how many documents were already done.

    ``read(skipped=list)`` yields the records of the shard's ``files`` from ``resume`` on, as in
    a local build; ``options.dtype`` is the one the index records, which every
    replica computes in.
    """
    ray = connect(options.ray_address)
    # The build's bar shows progress; Ray Data's own reports go to the session's logs unless asked for.
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")
    importlib.import_module("ray.data")
    ray.data.DataContext.get_current().enable_progress_bars = False
    work = ShardDir(work.name, work.path.absolute())
    here = {_NODE_LABEL: ray.get_runtime_context().get_node_id()}
    replicas, resources = _replicas(ray)
    work.skipped.unlink(missing_ok=True)      # what the reader of a killed run left
    # One seed row starts the one reader, on this node (the ids read before are in ``read`` already).
    where = Resume(resume.windows, resume.documents)
    windows = ray.data.from_items([{"reader": 0}]).map_batches(
        _read_windows, fn_args=(read, work, options.window, options.keep_fields, where), batch_size=None, num_cpus=0,
        label_selector=here)
    # One window a block, not Ray's 128 MB: a replica's task is then one window, written as soon as it is done.
    windows = windows.repartition(target_num_rows_per_block=options.window)
    nags = windows.map_batches(
        _Replica, fn_constructor_args=(_portable(options.model), options.dtype, options.settings,
                                       options.token_budget, options.store_impacts),
        batch_size=options.window, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=replicas),
        **resources)
    parts = PartWriter(work)
    # Windows come back in any order: the bar counts documents, against the files' own count if they give one.
    with worker_errors(), CorpusBar(files, by_position=False, done=parts.done) as bar, \
            phase(f"reading {bar.describe()}, extracting their NAGs on {replicas} Ray replicas"):
        gathered = _Windows()
        for batch in nags.iter_batches(batch_size=None, batch_format="numpy"):
            for k, rows, end, where in gathered.add(batch):
                parts.write(k, rows, end, where)
                bar.advance([], len(rows), int(np.minimum(rows.tokens, options.settings.max_length).sum()))
        bar.finish()
    if work.skipped.exists():
        skipped.extend(read_skipped(work.skipped))
    return parts.done


def _replicas(ray) -> tuple[int, dict]:
    """How many backbone replicas the cluster holds, and what each one takes.

    Without GPUs a replica takes all the cores of a node but one: that one
    re-blocks the stream into windows, and would otherwise never be scheduled.
    """
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus:
        return gpus, {"num_gpus": 1}
    cpus = [int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node["Alive"]]
    per = max(1, min(c for c in cpus if c) - 1)
    return max(1, sum((c - 1) // per for c in cpus if c > 1)), {"num_cpus": per}


def _portable(model: str | None) -> str | None:
    """A model given as a relative path must still be found from a worker's directory."""
    return str(Path(model).absolute()) if model and Path(model).exists() else model


def _read_windows(_, read: Callable[..., Iterator[Record]], work: ShardDir, size: int,
                  fields: tuple[str, ...], resume: Resume) -> Iterator[dict]:
    """The one reader: the pending windows of the corpus, as batches of rows."""
    skipped: list[Skipped] = []
    for w in pending_windows(read(skipped=skipped), work, size, skipped, resume):
        k, window, n = w.k, w.records, len(w.records)
        yield {
            # Where each row comes from: its window, its place in the window, the window's length.
            "window": np.full(n, k, np.int64),
            "row": np.arange(n, dtype=np.int64),
            "size": np.full(n, n, np.int64),
            "id": np.array([r.id for r in window], dtype=object),
            "text": np.array([r.text for r in window], dtype=object),
            "file": np.fromiter((r.file_index for r in window), np.uint32, n),
            "offset": np.fromiter((r.offset for r in window), np.int64, n),
            "where": np.array([r.where for r in window], dtype=object),
            # The window's end, for its part, travels on its first row.
            "end": np.array([json.dumps(w.end)] + [""] * (n - 1), dtype=object),
            **{f"field:{name}": values for name, values in kept_fields(window, fields).items()},
        }
    if skipped:
        # The reader runs on this node: the driver picks the list up from the shard's directory.
        write_skipped(work.skipped, skipped)


class _Replica:
    """One backbone, loaded once per actor, turning batches of texts into NAGs."""

    def __init__(self, model: str | None, dtype: str | None, settings: ExtractSettings,
                 token_budget: int | None, impacts: bool):
        self.extractor = Extractor(load_backbone(model, None, dtype), settings, token_budget)
        self.impacts = impacts

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        nags = self.extractor.extract(batch["text"].tolist())
        out = {name: column for name, column in batch.items() if name != "text"}
        out["tokens"] = nags.tokens
        out["text_hash"] = text_hashes(batch["text"])
        out.update({f"codes:{t}": c for t, c in nags.codes.items()})
        if self.impacts:
            out.update({f"impacts:{t}": v.astype(np.float16) for t, v in nags.impacts.items()})
        return out


class _Windows:
    """Puts windows back together from rows arriving in any pieces and any order."""

    def __init__(self):
        self.pieces: dict[int, list[dict[str, np.ndarray]]] = {}

    def add(self, batch: dict[str, np.ndarray]) -> Iterator[tuple[int, Rows, dict, list[str]]]:
        for k in np.unique(batch["window"]):
            mine = batch["window"] == k
            pieces = self.pieces.setdefault(int(k), [])
            pieces.append({name: column[mine] for name, column in batch.items()})
            if sum(len(p["row"]) for p in pieces) == pieces[0]["size"][0]:
                del self.pieces[int(k)]
                yield int(k), *_rows(pieces)


def _rows(pieces: list[dict[str, np.ndarray]]) -> tuple[Rows, dict, list[str]]:
    """A window's rows, its end and where each row was read."""
    columns = {name: np.concatenate([p[name] for p in pieces]) for name in pieces[0]}
    order = np.argsort(columns["row"])
    columns = {name: column[order] for name, column in columns.items()}

    def typed(prefix: str) -> dict[str, np.ndarray]:
        return {name.split(":", 1)[1]: column for name, column in columns.items() if name.startswith(prefix)}

    return Rows(ids=columns["id"].tolist(), tokens=columns["tokens"], source_file=columns["file"],
                source_offset=columns["offset"], codes=typed("codes:"), impacts=typed("impacts:"),
                fields=typed("field:"), text_hash=columns["text_hash"]), \
        json.loads(columns["end"][0]), columns["where"].tolist()
