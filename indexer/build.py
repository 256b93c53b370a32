"""``nagindex build``: turn a corpus into an index, resumably.

The corpus is read in a fixed order and cut into windows of ``window``
documents. Each window's NAGs are written as a part file, atomically, inside
the shard's ``.partial`` directory; rerunning the same command skips the
windows whose parts exist, so a build killed at any moment (kill -9 included)
resumes with no document lost or doubled. Finishing joins the parts into the
shard's code store, writes its FAISS file and metadata, renames the shard into
place and only then rewrites the manifest: a finished index is never seen half
rewritten. With ``--engine ray`` only the windows' NAGs are computed elsewhere
(:mod:`indexer.ray_build`); the parts, and all that follows, are the same.
"""
from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from nagindex.atomic import atomic_path, write_json
from nagindex.backbone import dtype_name, load_backbone
from nagindex.cluster import check_engine
from nagindex.corpus import Record, Skipped, find_files, read_records, text_hashes
from nagindex.errors import IndexStateError, InputError, NagindexError
from nagindex.extract import Extractor
from nagindex.index import (CODES, MANIFEST, PARTIAL, SHARD_META, VECTORS, Index, KnownIds, comparable, manifest_for,
                            part_name, read_json, shards_dir, write_manifest)
from nagindex.sketch import Sketch
from nagindex.store import CodeStore, Rows, add_slot_counts, concat_stores

from .options import BuildOptions
from .parts import SKIPPED, PartWriter, kept_fields, pending_windows, write_skipped
from .vectors import build_vectors

PLAN = "plan.json"


@dataclass
class BuildReport:
    index: Path
    shard: str
    documents: int
    tokens: int
    resumed: int                 # documents found already done
    skipped: list[Skipped]
    seconds: float
    status: str                  # "built", "up to date"


def corpus_files(files: Sequence[Path]) -> list[dict]:
    """The identity of the corpus: a changed file means a different corpus."""
    out = []
    for p in files:
        st = p.stat()
        out.append({"path": str(p), "size": st.st_size, "mtime": st.st_mtime})
    return out


def select_shard(files: list[Path], shard: tuple[int, int] | None) -> list[Path]:
    """Part ``i`` of ``N`` takes every N-th file, so workers need no coordination."""
    if shard is None:
        return files
    i, n = shard
    if not 0 <= i < n:
        raise NagindexError(f"--shard {i}/{n}: i must be in 0..{n - 1}")
    if len(files) < n:
        raise NagindexError(f"--shard {i}/{n}: the corpus has only {len(files)} files; split it into at least {n}")
    return files[i::n]


def build(corpus, index_path: str | os.PathLike, options: BuildOptions = BuildOptions()) -> BuildReport:
    """Run the backbone over ``corpus`` once and write (or extend) the index at ``index_path``.

    Args:
        corpus: what to read: a directory (searched recursively), a file, a glob, or a list of these.
        index_path: the index directory; created if absent.
        options: backbone, NAG settings, fields, engine and the rest (:class:`BuildOptions`).

    Returns:
        A :class:`BuildReport`: the shard written, its documents and tokens, how many were found
        already done (a resumed build), the records skipped, and ``status`` ``"built"`` or
        ``"up to date"``.

    Raises:
        InputError: a bad corpus record or file (named with its line or row), unless
            ``options.skip_bad``.
        IndexStateError: an index is already there and the request does not fit it.
        NagindexError: any other option that cannot be honoured.

    Killed at any point, the same call resumes where it stopped (docs/design.md §5).
    """
    started = time.perf_counter()
    check_engine(options.engine, options.ray_address)
    index_path = Path(index_path)
    skipped: list[Skipped] = []
    everything = find_files(corpus, on_error="skip" if options.skip_bad else "raise", skipped=skipped)
    files = select_shard(everything, options.shard)
    fingerprint = corpus_files(files)
    manifest = read_json(index_path / MANIFEST, "manifest") if (index_path / MANIFEST).exists() else None
    existing = _existing_shards(index_path, manifest)
    indexed = {f["path"]: f for s in existing for f in s["files"]}

    if manifest and options.shard is None and not options.append:
        if [f for f in fingerprint if indexed.get(f["path"]) != f] == []:
            return BuildReport(index_path, "", manifest["documents"], manifest["tokens"], manifest["documents"], [], 0.0, "up to date")
        raise IndexStateError(
            f"{index_path}: an index is already here, built from other files; "
            "pass --append to add this corpus to it, or -o to write a new index")
    if options.append:
        again = [f["path"] for f in fingerprint if f["path"] in indexed]
        if again:
            raise InputError(f"--append: {again[0]} is already in {index_path}" + (f" (and {len(again) - 1} more)" if len(again) > 1 else ""))

    # With Ray the replicas run the backbone; here it only tells what the index will hold.
    # Appending keeps the index's precision unless told otherwise: its codes must stay comparable.
    dtype = options.dtype or (manifest.get("dtype", "float32") if manifest else None)
    backbone = load_backbone(options.model, "cpu" if options.engine == "ray" else options.device, dtype)
    extractor = Extractor(backbone, options.settings, options.token_budget)
    header = _header(backbone.identity.as_dict(), extractor, options)
    if manifest:
        _check_compatible(index_path, manifest, header)

    name = _shard_name(index_path, existing, options.shard)
    final = shards_dir(index_path) / name
    plan = {**header, "files": fingerprint, "text_field": options.text_field, "id_field": options.id_field,
            "window": options.window, "skip_bad": options.skip_bad}
    if options.keep_fields:
        plan["fields"] = list(options.keep_fields)
    if (final / SHARD_META).exists():
        # Finished, but stopped before the manifest listed it.
        meta = read_json(final / SHARD_META, "shard metadata")
        if meta["files"] != fingerprint or comparable(meta) != comparable(header):
            raise IndexStateError(f"{final}: a finished shard of another corpus is here, not listed in the manifest; delete it")
        if options.shard is None:
            write_manifest(index_path, manifest_for(existing + [meta], header))
        return BuildReport(index_path, name, meta["documents"], meta["tokens"], meta["documents"], [], 0.0, "built")
    work = shards_dir(index_path) / f"{name}{PARTIAL}"
    _prepare(work, plan)

    seen = KnownIds(Index(index_path), f"{index_path} (already indexed)") if manifest else {}
    # Ids name files relative to the whole corpus: a part built with --shard
    # gives each document the id that an unsharded build gives it.
    read = functools.partial(read_records, files, options.text_field, options.id_field,
                             extra_fields=options.keep_fields, on_error="skip" if options.skip_bad else "raise", seen_ids=seen,
                             root=_common_root(everything))
    done = 0
    if not (work / SHARD_META).exists():
        if options.engine == "ray":
            from .ray_build import extract_windows
            done = extract_windows(read, work, options, skipped)
        else:
            done = _extract_windows(read(skipped=skipped), work, extractor, options)
    meta = _finish_shard(work, name, header, plan, skipped, options)
    os.rename(work, final)
    if options.shard is None:
        write_manifest(index_path, manifest_for(existing + [meta], header))
    return BuildReport(index_path, name, meta["documents"], meta["tokens"], done, skipped, time.perf_counter() - started, "built")


def _header(identity: dict, extractor: Extractor, options: BuildOptions) -> dict:
    """What every shard of an index must share for its codes to be comparable."""
    types = extractor.settings.neuron_types
    return {
        "backbone": identity,
        "dtype": dtype_name(extractor.backbone.dtype),
        "settings": extractor.settings.as_dict(),
        "layers": extractor.num_layers,
        "neurons": dict(extractor.neurons),
        "vectors": {"neuron_type": types[0], "faiss": options.faiss,
                    "sketch": Sketch(extractor.num_layers, extractor.neurons[types[0]], options.sketch_dim).as_dict()},
    }


def _check_compatible(index_path: Path, manifest: dict, header: dict) -> None:
    built, asked = comparable(manifest), comparable(header)
    for key, value in asked.items():
        if built[key] != value:
            raise IndexStateError(
                f"{index_path}: built with {key} {built[key]}, this build asks for {value}; "
                "an index holds one backbone and one set of settings; write a new index with -o")


def _existing_shards(index_path: Path, manifest: dict | None) -> list[dict]:
    if not manifest:
        return []
    return [read_json(shards_dir(index_path) / s["name"] / SHARD_META, "shard metadata") for s in manifest["shards"]]


def _shard_name(index_path: Path, existing: list[dict], shard: tuple[int, int] | None) -> str:
    if shard is not None:
        return part_name(*shard)
    partial = sorted(shards_dir(index_path).glob(f"*{PARTIAL}"))
    if partial:
        return partial[0].name[: -len(PARTIAL)]
    return f"{len(existing):05d}"


def _prepare(work: Path, plan: dict) -> None:
    """Start a shard, or check that the unfinished one is the same build."""
    if (work / PLAN).exists():
        before = read_json(work / PLAN, "build plan")
        before, asked = {**before, **comparable(before)}, {**plan, **comparable(plan)}
        if before != asked:
            changed = sorted(k for k in asked if before.get(k) != asked[k])
            raise IndexStateError(
                f"{work}: an unfinished build with other {', '.join(changed)} is here; "
                f"rerun that build to finish it, or delete {work} to start over")
        return
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / PLAN, plan)


def _extract_windows(records: Iterator[Record], work: Path, extractor: Extractor, options: BuildOptions) -> int:
    """Write every missing part; return how many documents were already done."""
    with PartWriter(work, options.progress, extractor.settings.max_length) as parts:
        windows = pending_windows(records, work, options.window)
        for (k, window), nags in extractor.extract_stream(windows, lambda kw: [r.text for r in kw[1]]):
            parts.write(k, Rows(
                ids=[r.id for r in window],
                tokens=nags.tokens,
                source_file=np.fromiter((r.file_index for r in window), np.uint32, len(window)),
                source_offset=np.fromiter((r.offset for r in window), np.int64, len(window)),
                codes=nags.codes,
                impacts=nags.impacts if options.store_impacts else {},
                fields=kept_fields(window, options.keep_fields),
                text_hash=text_hashes(r.text for r in window),
            ))
    return parts.done


def _finish_shard(work: Path, name: str, header: dict, plan: dict, skipped: list[Skipped], options: BuildOptions) -> dict:
    """Join the parts into the shard's store, FAISS file and metadata (idempotent)."""
    if (work / SHARD_META).exists():
        meta = read_json(work / SHARD_META, "shard metadata")
    else:
        parts = sorted(work.glob("part-*.h5"))
        if not parts:
            raise InputError("the corpus holds no usable document" + (f" ({len(skipped)} skipped)" if skipped else ""))
        with atomic_path(work / CODES) as tmp:
            documents = concat_stores(parts, tmp)
            add_slot_counts(tmp, header["neurons"])
        with CodeStore(work / CODES) as store:
            tokens = int(store.tokens().sum())
            vec = header["vectors"]
            build_vectors(store, vec["neuron_type"], Sketch.from_dict(vec["sketch"]), vec["faiss"], work / VECTORS,
                          gpus=options.device != "cpu")
        if skipped:
            write_skipped(work / SKIPPED, skipped)
        meta = {"name": name, **header, "documents": documents, "tokens": tokens, "files": plan["files"],
                "text_field": plan["text_field"], "id_field": plan["id_field"], "fields": plan.get("fields", []),
                "skipped": len(skipped)}
        write_json(work / SHARD_META, meta)
    for p in work.glob("part-*.h5"):
        p.unlink()
    (work / PLAN).unlink(missing_ok=True)
    return meta


def _common_root(files: list[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in files])) if files else Path.cwd()
